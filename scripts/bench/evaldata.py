"""The data sets of the retrieval evaluation: the sample corpus with `data/deploy_eval.jsonl`,
the Python FAQ over the Python docs that Debian's `python3.11-doc` ships (PSF licence; every
FAQ question heading is a query, its answer section the gold document, every other section of
the FAQ, tutorial, how-tos, language reference and "using" guides a distractor), and the sets
`scripts.evalsets` builds into data/evalsets/.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from scripts.evalsets.load import load as load_evalset

ROOT = Path(__file__).resolve().parents[2]
PYDOC = Path("/usr/share/doc/python3.11/html/_sources")
PYDOC_PARTS = ("faq", "tutorial", "howto", "reference", "using")
_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+])\1{2,}\s*$")


@dataclass
class DataSet:
    """Documents, and questions with the ids of the documents that answer them."""

    name: str
    docs: list[tuple[str, str, str]] = field(default_factory=list)  # id, title, text
    questions: list[tuple[str, set[str]]] = field(default_factory=list)


def _sections(text: str) -> list[tuple[str, str]]:
    """(heading, body) of each reStructuredText section, in order."""
    lines = text.splitlines()
    heads = [
        i
        for i in range(len(lines) - 1)
        if lines[i].strip()
        and _UNDERLINE.match(lines[i + 1])
        and len(lines[i + 1].strip()) >= len(lines[i].strip())
        and not _UNDERLINE.match(lines[i])
    ]
    out = []
    for n, i in enumerate(heads):
        end = heads[n + 1] if n + 1 < len(heads) else len(lines)
        body = "\n".join(lines[i + 2 : end]).strip()
        body = "\n".join(ln for ln in body.splitlines() if not _UNDERLINE.match(ln)).strip()
        out.append((lines[i].strip(), body))
    return out


def python_faq() -> DataSet:
    """The Python FAQ as queries over the Python docs (needs Debian's python3.11-doc)."""
    if not PYDOC.is_dir():
        raise SystemExit(f"{PYDOC} is missing: apt-get install python3.11-doc")
    ds = DataSet("python-faq")
    for part in PYDOC_PARTS:
        for path in sorted((PYDOC / part).rglob("*.rst.txt")):
            rel = path.relative_to(PYDOC).as_posix().removesuffix(".rst.txt")
            for n, (heading, body) in enumerate(_sections(path.read_text(encoding="utf-8"))):
                if len(body) < 40:
                    continue
                doc_id = f"{rel}#{n}"
                # the question heading is the query, so the gold text must not contain it
                ds.docs.append((doc_id, "" if part == "faq" else heading, body))
                if part == "faq" and heading.endswith("?"):
                    ds.questions.append((heading, {doc_id}))
    return ds


def sample_corpus() -> DataSet:
    """The sample corpus with the deploy eval questions."""
    ds = DataSet("sample")
    corpus = ROOT / "data" / "corpus"
    for line in (corpus / "manifest.jsonl").read_text().splitlines():
        entry = json.loads(line)
        text = (corpus / entry["path"]).read_bytes().decode("utf-8")
        ds.docs.append((entry["id"], entry["title"], text))
    for line in (ROOT / "data" / "deploy_eval.jsonl").read_text().splitlines():
        q = json.loads(line)
        ds.questions.append((q["question"], set(q["expected_doc_ids"])))
    return ds


def evalset(name: str) -> DataSet:
    """A set built by `scripts.evalsets` (data/evalsets/NAME)."""
    docs, questions = load_evalset(name)
    ds = DataSet(name, [(d.id, d.title, d.text) for d in docs])
    ds.questions = [(q.question, set(q.expected_doc_ids)) for q in questions]
    return ds


def data_set(name: str) -> DataSet:
    """A data set by name: `sample`, `python-faq`, or one of data/evalsets/."""
    builders = {"sample": sample_corpus, "python-faq": python_faq}
    return builders[name]() if name in builders else evalset(name)
