"""What the test LLM answers: deterministic text that imitates a model quoting its sources,
the tokens it is streamed as, and the prompt's token count.

The last user message is scanned for sources, i.e. lines starting `[n] `; a source runs
until the next `[n] ` line or the `Question: ...` line. From each source a leading `(...)`
title and a `Title: ...` line are dropped, and so are code-fence lines and Markdown
heading/list/quote marks; its sentences end at `.`, `!` or `?` followed by white space.
The sentences sharing most words with the question (the first on a tie) are quoted. The
answer is `According to the sources, <sentence> [n] <sentence> [m] ...` over the first
`ANSWER_SOURCES` sources in prompt order; without sources it is `NO_ANSWER`. Tokens are
`re.findall(r"\\S+\\s*", answer)`, so they concatenate back to the answer exactly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

DEFAULT_MODEL = "qwen2.5-7b-instruct"
NO_ANSWER = "I could not find this in the provided sources."
ANSWER_PREFIX = "According to the sources, "
ANSWER_SOURCES = 5
SENTENCES_PER_SOURCE = 2

_SOURCE_START = re.compile(r"^\s*\[(\d+)\](?:\s+(.*))?$")
_QUESTION_LINE = re.compile(r"^\s*Question:")
_PAREN_TITLE = re.compile(r"^\([^()]*\)\s*(.*)$")
_TITLE_LINE = re.compile(r"^Title:", re.IGNORECASE)
_SENTENCES = re.compile(r".+?[.!?](?=\s|$)|.+$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_MARKUP = re.compile(r"^\s*(#{1,6}\s+|[-*+]\s+|\d+\.\s+|>\s*)")
_HEADING = re.compile(r"^\s*#{1,6}\s")
# a few function words, kept here: this server must not import ragq code
_STOPWORD_TEXT = (
    "a an and are as at be by can do does for from how i in is it of on or that the this "
    "to what when where which who why will with you your my our we"
)
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_TOKEN = re.compile(r"\S+\s*")
_WORD = re.compile(r"\w+")


def text_of(content: object) -> str:
    """The text of an OpenAI message `content`: a string or a list of text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        ]
        return "\n".join(parts)
    return ""


def _terms(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS}


def _source_sentence(lines: list[str], wanted: set[str]) -> str:
    """The sentences of a source that share most words with the question (at most
    `SENTENCES_PER_SOURCE`, in source order; the first sentence when none shares a word),
    after dropping a leading title, headings, code fence lines and list/quote marks."""
    body = [line.strip() for line in lines]
    while body and not body[0]:
        body.pop(0)
    if body and (match := _PAREN_TITLE.match(body[0])):
        body[0] = match.group(1)
    if body and _TITLE_LINE.match(body[0]):
        body.pop(0)
    body = [
        _MARKUP.sub("", line)
        for line in body
        if not _FENCE.match(line) and not _HEADING.match(line)
    ]
    text = " ".join(" ".join(body).split())
    sentences = [s.strip() for s in _SENTENCES.findall(text)] or [text]
    scored = sorted(enumerate(sentences), key=lambda p: (-len(wanted & _terms(p[1])), p[0]))
    best = [p for p in scored[:SENTENCES_PER_SOURCE] if wanted & _terms(p[1])] or scored[:1]
    return " ".join(s for _, s in sorted(best))


def _sources(text: str) -> list[tuple[int, str]]:
    """`(number, best sentence)` of each non-empty source in `text`, in order."""
    found: list[tuple[int, list[str]]] = []
    current: list[str] | None = None
    question = ""
    for line in text.splitlines():
        if match := _SOURCE_START.match(line):
            current = [match.group(2) or ""]
            found.append((int(match.group(1)), current))
        elif _QUESTION_LINE.match(line):
            current = None
            question = line.split(":", 1)[1]
        elif current is not None:
            current.append(line)
    wanted = _terms(question)
    pairs = [(number, _source_sentence(lines, wanted)) for number, lines in found]
    return [(number, sentence) for number, sentence in pairs if sentence]


def answer_for(messages: Sequence[Mapping[str, Any]], *, cite: bool = True) -> str:
    """The full answer the server gives to these chat messages (see the module docstring);
    without `cite`, the same sentences without their markers."""
    user = [m for m in messages if m.get("role") == "user"]
    sources = _sources(text_of(user[-1].get("content"))) if user else []
    if not sources:
        return NO_ANSWER
    quoted = sources[:ANSWER_SOURCES]
    cited = " ".join(f"{sentence} [{n}]" if cite else sentence for n, sentence in quoted)
    return ANSWER_PREFIX + cited


def split_tokens(text: str) -> list[str]:
    """The streamed tokens of `text`; they concatenate back to `text` (less leading space)."""
    return _TOKEN.findall(text)


def exact_tokens(tokens: list[str], count: int) -> list[str]:
    """`tokens` cycled (one space between two rounds) and cut to exactly `count` tokens."""
    if count <= len(tokens) or not tokens:
        return tokens[:count]
    round_ = [*tokens[:-1], tokens[-1].rstrip() + " "]
    cycled = (round_ * (count // len(round_) + 1))[:count]
    return [*cycled[:-1], cycled[-1].rstrip()]


def prompt_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    """The prompt's token count the server reports: its words, plus 4 per message."""
    return sum(len(text_of(m.get("content")).split()) + 4 for m in messages)
