"""The deterministic answerer used without an LLM: best-matching sentences with `[n]` markers."""

from __future__ import annotations

import re

from shared.schemas.jobs import Citation
from workers.rag.sparse import STOPWORDS

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+|\n|$)")
# fenced code, headings and table rows read badly as answer sentences
_NOT_PROSE = re.compile(r"(?s:```.*?(?:```|\Z))|^[ \t]*(?:#{1,6}[ \t].*|\|.*)$", re.MULTILINE)
_STOP = STOPWORDS
NOTHING_FOUND = "I could not find anything about this in your documents."


def _terms(text: str) -> set[str]:
    return {w for w in (m.group(0).lower() for m in _WORD.finditer(text)) if w not in _STOP}


def extractive_answer(question: str, citations: list[Citation], *, max_sentences: int = 3) -> str:
    """Pick the sentences of the retrieved chunks that share the most terms with the question.

    Sentences keep their source's order of rank; each ends with its source's `[n]`.
    """
    if not citations:
        return NOTHING_FOUND
    wanted = _terms(question)
    scored: list[tuple[float, int, int, str]] = []
    for c in citations:
        prose = _NOT_PROSE.sub("\n", c.text)
        for position, match in enumerate(_SENTENCE.finditer(prose)):
            sentence = " ".join(match.group(0).split())
            if len(sentence) < 12:
                continue
            overlap = len(wanted & _terms(sentence))
            scored.append((overlap / (1 + 0.1 * c.rank), c.index, position, sentence))
    if not scored:
        first = " ".join(citations[0].text.split())[:300]
        return f"{first} [{citations[0].index}]"
    best = sorted(scored, key=lambda s: (-s[0], s[1], s[2]))[:max_sentences]
    best.sort(key=lambda s: (s[1], s[2]))
    return " ".join(f"{s[3]} [{s[1]}]" for s in best)
