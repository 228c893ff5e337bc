"""From a project's sections to an evaluation set: the rules every set is built by.

A FAQ entry whose heading asks something becomes a question; its answer section (with any
sub-sections that are not questions themselves) is the gold document, titled by the FAQ
chapter it sits in, never by the question. Every other section of the FAQ and of the rest
of the project's documentation is a distractor titled by its own heading. Then, in order:
documents shorter than `MIN_CHARS` are dropped (with their question), duplicate texts are
dropped (the first stays), a non-gold document that quotes three or more questions
verbatim is dropped as a table of contents, and a question that appears in its gold
document's title or text is dropped (retrieving it would be trivial). Last, where another
document quotes a question verbatim (a cross-reference whose link text is the entry's
heading: "see Section 12.1, “What other documentation exists ...?”") the quote becomes
`…`: the queries are those headings word for word, which a user's question never is, so a
quote would hand that document the query.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass, field

MIN_CHARS = 40  # the same floor as scripts/bench/retrieval_eval.py's python-faq set
TOC_QUOTES = 3  # a non-gold document quoting this many questions is a table of contents

# "1.1. ", "3.1: ", "7.30 ", "Chapter 2: ", "A.1 " before a heading's words
_NUMBER = re.compile(
    r"^(?:(?:chapter|appendix|section)\s+)?(?:\d+|[A-Z](?=[.:]|\s*$|\.\d))(?:\.\d+)*[.:]?(?:\s+|$)",
    re.IGNORECASE,
)
_ASKS = re.compile(
    r"^(?:how|why|what|when|where|which|who|can|could|should|is|are|do|does|did|will|would"
    r"|i|i['’]m|i['’]ve|i['’]d|my)\b",
    re.IGNORECASE,
)
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"))
_SPACES = re.compile(r"[ \t\u00a0]+")


@dataclass(frozen=True)
class Section:
    """A heading and its text, wherever it came from."""

    path: str  # the source file, relative to the documentation's root
    level: int  # nesting depth: 1 for a page or chapter title, higher for sub-sections
    heading: str
    anchor: str  # unique within `path` (an HTML id, a slug, a section number)
    text: str


@dataclass(frozen=True)
class Doc:
    """One passage of the set."""

    id: str
    title: str
    text: str


@dataclass(frozen=True)
class Question:
    """A query and the ids of the documents that answer it."""

    question: str
    expected_doc_ids: tuple[str, ...]


@dataclass
class EvalSet:
    """Documents and questions, with what was dropped on the way and why."""

    name: str
    docs: list[Doc] = field(default_factory=list)
    questions: list[Question] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)


def clean(text: str) -> str:
    """Text without zero-width characters; no-break spaces as spaces."""
    return text.translate(_INVISIBLE).replace("\u00a0", " ")


def strip_number(heading: str) -> str:
    """The heading without its section number (users do not type "3.1:")."""
    return _SPACES.sub(" ", clean(_NUMBER.sub("", heading.strip(), count=1))).strip()


def is_question(heading: str) -> bool:
    """A FAQ heading a user could have typed: it asks, or it states a problem as a sentence."""
    h = strip_number(heading)
    if "?" in h or _ASKS.match(h):
        return True
    return h.endswith((".", "!")) and len(h.split()) >= 4


def _key(text: str) -> str:
    """Comparison form: case-folded, whitespace collapsed, final punctuation dropped."""
    return " ".join(clean(text).casefold().split()).rstrip("?.!:… ")


def faq_docs(
    sections: Iterable[Section],
    *,
    levels: Container[int] = range(1, 7),
    doc_id: Callable[[Section], str] = lambda s: f"{s.path}#{s.anchor}",
) -> tuple[list[Doc], list[Question]]:
    """The documents and questions of one FAQ file's sections, in order; only a section at
    one of `levels` is an entry that can be a question (a chapter title never is)."""
    secs = list(sections)

    def asks(s: Section) -> bool:
        return s.level in levels and is_question(s.heading)

    docs: list[Doc] = []
    questions: list[Question] = []
    i = 0
    while i < len(secs):
        s = secs[i]
        if not asks(s):
            docs.append(Doc(doc_id(s), strip_number(s.heading), clean(s.text).strip()))
            i += 1
            continue
        parts = [s.text.strip()]
        j = i + 1
        while j < len(secs) and secs[j].level > s.level and not asks(secs[j]):
            sub = secs[j]
            parts.append(f"{strip_number(sub.heading)}\n\n{sub.text.strip()}".strip())
            j += 1
        chapter = next((p for p in reversed(secs[:i]) if p.level < s.level), None)
        title = strip_number(chapter.heading) if chapter else ""
        gold = Doc(doc_id(s), title, clean("\n\n".join(p for p in parts if p)))
        docs.append(gold)
        questions.append(Question(strip_number(s.heading), (gold.id,)))
        i = j
    return docs, questions


def section_docs(
    sections: Iterable[Section],
    doc_id: Callable[[Section], str] = lambda s: f"{s.path}#{s.anchor}",
) -> list[Doc]:
    """Distractors: every section as a document titled by its heading."""
    return [Doc(doc_id(s), strip_number(s.heading), clean(s.text).strip()) for s in sections]


def finalize(
    name: str,
    docs: Iterable[Doc],
    questions: Iterable[Question],
    out_of_context: Container[str] = (),
) -> EvalSet:
    """Apply the set's rules (the module docstring) and return the set; `out_of_context`
    lists questions that mean nothing without the FAQ around them ("What is it?")."""
    out = EvalSet(name)
    qs = list(questions)
    gold_ids = {d for q in qs for d in q.expected_doc_ids}
    seen_ids: set[str] = set()
    seen_texts: set[str] = set()
    q_keys = [_key(q.question) for q in qs]
    kept: list[Doc] = []
    for d in docs:
        if d.id in seen_ids:
            raise ValueError(f"{name}: duplicate document id {d.id}")
        seen_ids.add(d.id)
        key = _key(d.text)
        if len(d.text) < MIN_CHARS:
            out.dropped["document shorter than 40 characters"] += 1
            continue
        if key in seen_texts and d.id not in gold_ids:
            out.dropped["document with the same text as an earlier one"] += 1
            continue
        if d.id not in gold_ids and sum(k in key for k in q_keys) >= TOC_QUOTES:
            out.dropped[f"table of contents (quotes ≥ {TOC_QUOTES} questions)"] += 1
            continue
        seen_texts.add(key)
        kept.append(d)
    by_id = {d.id: d for d in kept}
    merged: dict[str, set[str]] = {}
    for q, k in zip(qs, q_keys, strict=True):
        golds = [by_id[i] for i in q.expected_doc_ids if i in by_id]
        if q.question in out_of_context:
            out.dropped["question that needs the FAQ around it (listed by the set)"] += 1
        elif not golds:
            out.dropped["question whose answer was dropped"] += 1
        elif any(k in _key(g.text) or k in _key(g.title) for g in golds):
            out.dropped["question quoted in its gold document"] += 1
        elif len(k.split()) < 2:
            out.dropped["question of one word"] += 1
        elif q.question in merged:
            merged[q.question].update(g.id for g in golds)
            out.dropped["question asked twice (gold documents merged)"] += 1
        else:
            merged[q.question] = {g.id for g in golds}
    out.questions = [Question(q, tuple(sorted(ids))) for q, ids in merged.items()]
    out.docs = _mask_quotes(kept, out.questions, out.dropped)
    return out


def _quote_pattern(question: str) -> re.Pattern[str]:
    """The question's words in order and in its case (a link text copies the heading), any
    whitespace between them, whole words only."""
    words = clean(question).rstrip("?.!:… ").split()
    body = r"\s+".join(map(re.escape, words))
    start = r"\b" if re.match(r"\w", words[0]) else ""
    end = r"\b" if re.search(r"\w$", words[-1]) else ""
    return re.compile(f"{start}{body}{end}[?.!]?")


def _mask_quotes(docs: list[Doc], questions: list[Question], counts: Counter[str]) -> list[Doc]:
    patterns = [(_quote_pattern(q.question), set(q.expected_doc_ids)) for q in questions]
    out = []
    for d in docs:
        text = d.text
        for pattern, gold in patterns:
            if d.id not in gold:
                text, n = pattern.subn("…", text)
                counts["quote of a question in another document, masked as …"] += n
        out.append(d if text == d.text else Doc(d.id, d.title, text))
    return out


def leaks(es: EvalSet) -> int:
    """How many questions are quoted verbatim by some non-gold document (cross-references
    whose link text is the question's heading): a measure, not a rule."""
    keys = {d.id: _key(d.text) for d in es.docs}
    n = 0
    for q in es.questions:
        k = _key(q.question)
        n += any(k in t for i, t in keys.items() if i not in q.expected_doc_ids)
    return n
