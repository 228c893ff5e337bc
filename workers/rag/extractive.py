"""The deterministic answerer used without an LLM: the retrieved sentences that answer the
question best, as one paragraph with `[n]` markers."""

from __future__ import annotations

import re
from dataclasses import dataclass

from shared.schemas.jobs import Citation
from workers.rag.sentences import Unit, units
from workers.rag.sparse import tokenize

NOTHING_FOUND = "I could not find anything about this in your documents."
MAX_CHARS = 600  # the quoted sentences' length, markers aside
FALLBACK_CHARS = 300  # of the first passage, when it holds no quotable sentence
# A question term in the sentence's heading counts fully (the section is about it), one in
# the document's title a quarter. Terms are not weighted by rarity across the passages:
# they were retrieved for the question's terms, so the telling ones are in most of them
# and the rare ones are incidental (on data/deploy_eval.jsonl such weights lowered the
# keyword hit rate, 0.478 -> 0.449, and quoted sentences about "how long" for "how long").
HEADING_WEIGHT = 1.0
TITLE_WEIGHT = 0.25
MIN_SHARE = 0.5  # a sentence scoring under this share of the best one is off the topic
DUPLICATE = 0.7  # term-set overlap (Jaccard) from which two sentences say the same
MIN_CHARS = 12  # shorter pieces ("Yes.", "Step 1.") say nothing alone

_CLOSED = re.compile(r"[.!?…][\"'”’»)\]*_`]*$")
_OPEN_END = re.compile(r"[\s:;,—–]+$")


@dataclass(frozen=True, slots=True)
class _Candidate:
    score: float  # question terms in the sentence, plus those of its heading and title
    matched: bool  # the sentence itself holds a question term (and is not cut short)
    order: int  # the passage's place in the citations (their rank order)
    position: int  # the sentence's place in its passage
    unit: Unit
    index: int  # the passage's [n]
    terms: frozenset[str]


def extractive_answer(question: str, citations: list[Citation], *, max_sentences: int = 3) -> str:
    """The retrieved sentences sharing the most terms with the question, as a paragraph in
    passage order, each run of sentences from one passage ending with its `[n]`."""
    if not citations:
        return NOTHING_FOUND
    candidates = _candidates(frozenset(tokenize(question)), citations)
    chosen = _choose(candidates, max_sentences)
    if not chosen:
        return _fallback(citations[0])
    return _render(sorted(chosen, key=lambda c: (c.order, c.position)))


def _candidates(wanted: frozenset[str], citations: list[Citation]) -> list[_Candidate]:
    """Every quotable sentence of the passages, scored by the question terms it, its
    heading and its document's title hold."""
    candidates: list[_Candidate] = []
    headings: dict[str, frozenset[str]] = {}  # heading → the question terms in it
    for order, citation in enumerate(citations):
        title = wanted & frozenset(tokenize(citation.title))
        for position, unit in enumerate(units(citation.text)):
            if len(unit.text) < MIN_CHARS:
                continue
            name = unit.heading or citation.section or ""
            if name not in headings:
                headings[name] = wanted & frozenset(tokenize(name))
            terms = frozenset(tokenize(unit.text))
            own = len(wanted & terms)
            context = HEADING_WEIGHT * len(headings[name] - terms)
            context += TITLE_WEIGHT * len(title - terms - headings[name])
            candidates.append(
                _Candidate(
                    score=own + context,
                    matched=own > 0 and not unit.partial,
                    order=order,
                    position=position,
                    unit=unit,
                    index=citation.index,
                    terms=terms,
                )
            )
    return candidates


def _choose(candidates: list[_Candidate], max_sentences: int) -> list[_Candidate]:
    """The best sentences, no two alike, within MAX_CHARS: those holding a question term,
    else (nothing matches) the first sentences of the best-ranked passages."""
    pool = [c for c in candidates if c.matched] or [c for c in candidates if not c.unit.partial]
    ranked = sorted(pool or candidates, key=lambda c: (-c.score, c.order, c.position))
    chosen: list[_Candidate] = []
    used = 0
    for c in ranked:
        if len(chosen) == max_sentences:
            break
        if chosen and (
            c.score < MIN_SHARE * chosen[0].score or used + len(c.unit.text) > MAX_CHARS
        ):
            continue
        if not any(_alike(c, other) for other in chosen):
            chosen.append(c)
            used += len(c.unit.text)
    return chosen


def _alike(a: _Candidate, b: _Candidate) -> bool:
    if a.unit.text == b.unit.text:
        return True
    union = a.terms | b.terms
    return bool(union) and len(a.terms & b.terms) / len(union) >= DUPLICATE


def _render(chosen: list[_Candidate]) -> str:
    """One paragraph: each sentence closed by a period, a run of sentences from one
    passage followed by its marker."""
    parts: list[str] = []
    for i, c in enumerate(chosen):
        parts.append(_sentence(c.unit))
        if i + 1 == len(chosen) or chosen[i + 1].index != c.index:
            parts.append(f"[{c.index}]")
    return " ".join(parts)


def _sentence(unit: Unit) -> str:
    """The unit as a sentence: its first word capitalised when it is a list item, ending in
    a period (an ellipsis when it may continue, or past MAX_CHARS)."""
    text = unit.text
    if len(text) > MAX_CHARS:
        text = text[:MAX_CHARS].rsplit(" ", 1)[0] + " …"
    elif unit.partial and not _CLOSED.search(text):
        text += " …"
    if unit.kind == "item":
        first, _, rest = text.partition(" ")
        if first.isalpha() and first.islower():
            text = f"{first.capitalize()} {rest}".rstrip()
    if unit.partial and text[0].islower():
        text = f"… {text}"
    if not _CLOSED.search(text):
        text = _OPEN_END.sub("", text) + "."
    return text


def _fallback(citation: Citation) -> str:
    """The first passage's opening words, when it holds no sentence to quote."""
    text = " ".join(citation.text.split()) or citation.title
    if len(text) > FALLBACK_CHARS:
        text = text[:FALLBACK_CHARS].rsplit(" ", 1)[0] + " …"
    return f"{text} [{citation.index}]"
