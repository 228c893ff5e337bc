"""Sources for an answer that cites none, when every sentence of it is found in one.

Small models often answer by copying the passages and forget the markers: on the sample
set, Qwen2.5-1.5B's answers to "how do I ..." questions are the steps of one passage with no
`[n]` (docs/EVAL.md). Such an answer is checkable without the model: each of its sentences
is compared with each passage, and when every sentence that says something is found in a
passage — most of its terms there, and every number or identifier of it — the answer is
attributed to those passages, and ragq appends their markers (`result.added_markers`).
One sentence that no passage holds (a fact the model made up, or the question restated)
and nothing is added: the answer stays `grounded: false`.
"""

from __future__ import annotations

import re

from shared.schemas.jobs import Citation
from workers.rag.sentences import split_sentences
from workers.rag.sparse import tokenize

# The share of a sentence's terms (stemmed, without stopwords) one passage must hold. A
# sentence copied with its words reordered or a few changed keeps it; a sentence built from
# the question's words, which are rarely the passage's, does not.
SUPPORT = 0.75
MIN_TERMS = 3  # a sentence with fewer ("Yes.", "Here is how:") says nothing to check
_TELLING = re.compile(r"\d")  # a term with a digit (64, 4031, v2.1) must be in the passage


def attribute(answer: str, citations: list[Citation]) -> list[int]:
    """The `index` of the passage each sentence of `answer` was found in, in the order the
    sentences first use them; empty when a sentence is found in none, or none says anything."""
    passages = [
        (c.index, set(tokenize(f"{c.title} {c.section or ''} {c.text}"))) for c in citations
    ]
    found: list[int] = []
    for sentence in split_sentences(answer):
        terms = set(tokenize(sentence))
        if len(terms) < MIN_TERMS:
            continue
        index = _source_of(terms, passages)
        if index is None:
            return []
        if index not in found:
            found.append(index)
    return found


def markers(indices: list[int], answer: str) -> str:
    """What to append to `answer` to cite `indices`: `[1][3]`, after a space, or after a
    blank line when the answer ends in a code fence or a list."""
    run = "".join(f"[{i}]" for i in indices)
    last = answer.rstrip().rsplit("\n", 1)[-1].lstrip()
    if last.startswith(("```", "~~~", "-", "*", "+", "|")) or re.match(r"\d+[.)]\s", last):
        return f"\n\n{run}"
    return run if not answer or answer[-1].isspace() else f" {run}"


def _source_of(terms: set[str], passages: list[tuple[int, set[str]]]) -> int | None:
    """The passage holding the largest share of `terms` (the first on a tie), if that share
    is `SUPPORT` or more and it holds every telling term."""
    telling = {t for t in terms if _TELLING.search(t)}
    best: tuple[float, int] | None = None
    for index, held in passages:
        if not telling <= held:
            continue
        share = len(terms & held) / len(terms)
        if share >= SUPPORT and (best is None or share > best[0]):
            best = (share, index)
    return None if best is None else best[1]
