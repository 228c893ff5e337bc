"""A built set as files: docs.jsonl, questions.jsonl, LICENSE and SOURCE.md.

Everything written is a pure function of the pinned packages (no dates, no paths of this
machine, keys in a fixed order), so a rebuild reproduces every byte; `render` returns the
files' contents so `build --check` can compare without writing.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from scripts.evalsets.model import EvalSet, leaks
from scripts.evalsets.spec import Files, SetSpec, licence_text

MAX_BYTES = 5 * 1024 * 1024  # a set's four files together
BUILD_COMMAND = "python -m scripts.evalsets build --only {name}"


def _jsonl(rows: list[dict[str, object]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def stats(es: EvalSet) -> dict[str, float]:
    """Counts and means of a set."""
    gold = {d for q in es.questions for d in q.expected_doc_ids}
    return {
        "docs": len(es.docs),
        "questions": len(es.questions),
        "gold docs": len(gold),
        "text characters": sum(len(d.text) for d in es.docs),
        "mean question characters": round(
            statistics.mean(len(q.question) for q in es.questions), 1
        ),
        "mean question words": round(
            statistics.mean(len(q.question.split()) for q in es.questions), 1
        ),
        "mean doc characters": round(statistics.mean(len(d.text) for d in es.docs), 1),
        "questions quoted verbatim by a non-gold doc": leaks(es),
    }


def examples(es: EvalSet, n: int = 6) -> list[tuple[str, str]]:
    """n questions spread over the set, each with its first gold document's title."""
    titles = {d.id: d.title for d in es.docs}
    step = max(1, len(es.questions) // n)
    picked = es.questions[::step][:n]
    return [(q.question, titles[q.expected_doc_ids[0]] or "(no title)") for q in picked]


def _licence_parts(spec: SetSpec) -> str:
    parts = [f"/{path} ({pkg})" for pkg, path in spec.licence_files]
    if spec.licence_notice is not None:
        parts.append("the notices in the documentation itself")
    parts += [f"the full text of {n} (/usr/share/common-licenses)" for n in spec.common_licences]
    return ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]


def _source_md(spec: SetSpec, es: EvalSet) -> str:
    lines = [
        f"# {spec.name}",
        "",
        f"{spec.project}: its FAQ as queries over its own documentation, built offline.",
        "",
        "## Source",
        "",
        "| package | version | SHA-256 of the .deb | Debian 12 archive path |",
        "| --- | --- | --- | --- |",
        *(f"| {p.name} | {p.version} | `{p.sha256}` | {p.pool_path} |" for p in spec.packages),
        "",
        f"Format: {spec.doc_format}.",
        "",
        f"Licence: {spec.licence}. LICENSE holds {_licence_parts(spec)}.",
        "",
        "Build (fetches the pinned .deb with `apt-get download` once, then reads it without",
        "installing it; the output is byte-identical on every run):",
        "",
        f"    {BUILD_COMMAND.format(name=spec.name)}",
        "",
        "The cache is $RAGQ_EVALSETS_CACHE or ~/.cache/ragq-evalsets. Once that version has",
        "left Debian's mirrors, put a .deb with that SHA-256 there by hand.",
        "",
        "## Derivation",
        "",
        spec.derivation,
        "",
        "Rules for every set (scripts/evalsets/model.py): a FAQ entry whose heading asks"
        ' something (it has a `?`, starts with a question word or "I"/"My", or is a'
        " sentence of four or more words) is a question, with its section number removed;"
        " its answer section, with its sub-sections that are not questions, is the gold"
        " document, titled by the chapter it is in, never by the question. Every other"
        " section is a distractor titled by its heading. Dropped: documents under 40"
        " characters (and their questions), repeated texts, non-gold documents quoting 3 or"
        " more questions (tables of contents), questions quoted in their gold document's"
        " text or title, one-word questions, and the few questions that name nothing without"
        ' the FAQ around them ("What is it?"; each set lists its own). Where another document'
        " quotes a question word for word (a cross-reference's link text) the quote becomes"
        " `…`, since the queries are those headings verbatim and a user's question never is.",
        "",
        "## Counts",
        "",
        "| what | n |",
        "| --- | --- |",
        *(f"| {k} | {v} |" for k, v in stats(es).items()),
        *(f"| dropped or changed: {k} | {v} |" for k, v in sorted(es.dropped.items())),
        "",
        "## Example questions (gold document's title)",
        "",
        *(f"- {q} ({t})" for q, t in examples(es)),
        "",
    ]
    return "\n".join(lines)


def render(spec: SetSpec, es: EvalSet, files: Files) -> dict[str, str]:
    """File name -> content for one set."""
    out = {
        "docs.jsonl": _jsonl([{"id": d.id, "title": d.title, "text": d.text} for d in es.docs]),
        "questions.jsonl": _jsonl(
            [
                {"question": q.question, "expected_doc_ids": list(q.expected_doc_ids)}
                for q in es.questions
            ]
        ),
        "LICENSE": licence_text(spec, files),
        "SOURCE.md": _source_md(spec, es),
    }
    size = sum(len(v.encode("utf-8")) for v in out.values())
    if size > MAX_BYTES:
        raise SystemExit(f"{spec.name}: {size} bytes, over the {MAX_BYTES} a set may have")
    return out


def write(folder: Path, contents: dict[str, str]) -> None:
    """Write the files (UTF-8, `\\n` line ends)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in contents.items():
        (folder / name).write_bytes(text.encode("utf-8"))
