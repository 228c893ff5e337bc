"""Citation markers checked as the answer streams: `CitationFilter` rewrites the markers
that cite a given passage as `[n]` and removes the others, chunk by chunk; `AnswerGate`
holds an answer back until it cites one; `grounding` and `is_refusal` judge a whole answer.

A marker is `[n]`, `[n, m]`, `[n; m]` or `[Source n]` (any case); markers separated only by
white space are one run, in which a number is kept once. Text inside inline code or fenced
code is never touched. Markdown links with a number as their text (`[7](url)`) are taken for
markers: a model citing a passage does not write them."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable

from workers.rag.attribution import markers

_ITEM = r"(?:sources?\s*)?-?[0-9]+"
_MARKER = re.compile(rf"\[\s*{_ITEM}(?:\s*[,;]\s*{_ITEM})*\s*\]", re.IGNORECASE)
# what a marker not yet closed can be: "[", "[1", "[1, ", "[Sour", "[Source 1 " ...
_OPEN_MARKER = re.compile(
    rf"\[\s*(?:{_ITEM}\s*[,;]\s*)*(?:(?:sources?\s*)?-?[0-9]*|s(?:o(?:u(?:r(?:c)?)?)?)?|{_ITEM}\s*)",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"-?[0-9]+")
MAX_MARKER_CHARS = 64  # a longer bracket is text, whatever follows: this bounds the hold-back

# How answers that found nothing open, normalised (lower case, straight apostrophes, single
# spaces); the prompt's own refusal (shared/prompting.py REFUSAL) is the first.
REFUSAL_OPENINGS: tuple[str, ...] = (
    "i could not find",
    "i couldn't find",
    "i cannot find",
    "i can't find",
    "i can not find",
    "i did not find",
    "i didn't find",
    "i could not locate",
    "i couldn't locate",
    "i do not know",
    "i don't know",
    "the sources do not",
    "the sources don't",
    "the provided sources do not",
    "the provided sources don't",
    "the given sources do not",
    "the documents do not",
    "the provided documents do not",
    "the provided context does not",
    "the context does not",
    "there is no information",
    "none of the sources",
)
_APOLOGY = re.compile(r"^(?:(?:i'm |i am )?sorry|unfortunately)\s*[,.!:]?\s*(?:but\s+)?")
_LEADING_MARKUP = re.compile(r"^[\W_]+")
OPENING_CHARS = 200  # what is read of an answer for its opening (a held one is read often)


def is_refusal(answer: str) -> bool:
    """True when the answer opens by saying it found nothing (`REFUSAL_OPENINGS`), after any
    leading markup or apology ("Sorry, ", "Unfortunately, ")."""
    text = " ".join(answer[:OPENING_CHARS].replace("\u2019", "'").lower().split())
    text = _APOLOGY.sub("", _LEADING_MARKUP.sub("", text))
    return text.startswith(REFUSAL_OPENINGS)


def grounding(answer: str, valid_indices: Collection[int]) -> bool | None:
    """True when the answer cites a given passage with a valid marker; False when passages
    were given and it cites none without being a refusal; None when there is nothing to
    check (no passages, or a refusal)."""
    if not valid_indices:
        return None
    checker = CitationFilter(valid_indices)
    checker.feed(answer)
    checker.finish()
    if checker.cited:
        return True
    return None if is_refusal(answer) else False


class CitationFilter:
    """Rewrites citation markers of a text fed in chunks; the output does not depend on
    where the chunks split. `cited`: the valid numbers in order of first use; `removed`: the
    markers that cited no given passage, as written (in a marker of several numbers, each
    such number as `[n]`)."""

    def __init__(self, valid_indices: Iterable[int]) -> None:
        self._valid = frozenset(valid_indices)
        self.cited: list[int] = []
        self.removed: list[str] = []
        self._out: list[str] = []
        self._space = ""  # white space not yet written: it goes if the marker after it goes
        self._lead = ""  # the white space before the current run, until a marker of it stays
        self._bracket = ""  # a marker in progress, from its "["
        self._run: set[int] | None = None  # numbers kept in the current run; None: no run
        self._kept = False  # the current run has kept a marker
        self._fence = 0  # backticks that opened the code span we are in (0: prose)
        self._ticks = 0  # backticks just read, their meaning not yet known
        self._written = False  # any text went out (a removed run at the start takes none)

    def feed(self, text: str) -> str:
        """The text that can be written now; only a possible marker in progress (and the
        white space before it) is held back."""
        for char in text:
            self._char(char)
        return self._drain()

    def finish(self) -> str:
        """The rest: an unclosed `[12` is text, and so is trailing white space."""
        if self._bracket:
            self._not_a_marker()
        self._end_run()
        self._out.append(self._space)
        self._space = ""
        return self._drain()

    def _drain(self) -> str:
        text = "".join(self._out)
        self._out.clear()
        return text

    def _char(self, char: str) -> None:
        if self._bracket:
            self._bracket += char
            if char == "]":
                if _MARKER.fullmatch(self._bracket):
                    self._marker(self._bracket)
                    self._bracket = ""
                    return
            elif len(self._bracket) <= MAX_MARKER_CHARS and _OPEN_MARKER.fullmatch(self._bracket):
                return
            self._not_a_marker()
            return
        if char == "`":
            self._text(char)
            self._ticks += 1
            return
        if self._ticks:
            self._code(self._ticks)
            self._ticks = 0
        if self._fence:
            self._out.append(char)
        elif char.isspace():
            self._space += char
        elif char == "[":
            self._bracket = char
        else:
            self._text(char)

    def _code(self, ticks: int) -> None:
        """A run of backticks opens a code span, or closes the open one: one of as many
        (a fence of three or more closes on at least as many)."""
        if not self._fence:
            self._fence = ticks
        elif ticks == self._fence or (self._fence >= 3 and ticks > self._fence):
            self._fence = 0

    def _not_a_marker(self) -> None:
        """The bracket held is no marker: its `[` is text, and what follows is read again."""
        rest, self._bracket = self._bracket[1:], ""
        self._text("[")
        for char in rest:
            self._char(char)

    def _text(self, text: str) -> None:
        if self._run is not None and not self._kept and not self._written:
            self._space = ""  # "[9] Text" opening the answer: "Text"
        self._end_run()
        self._out.append(self._space + text)
        self._space = ""
        self._written = True

    def _end_run(self) -> None:
        """A run whose every marker went takes the white space before it along."""
        self._run, self._kept, self._lead = None, False, ""

    def _marker(self, raw: str) -> None:
        if self._run is None:
            self._run, self._lead, self._space = set(), self._space, ""
        between, self._space = self._space, ""
        items = re.split(r"[,;]", raw[1:-1])
        kept: list[int] = []
        for item in items:
            number = int(_NUMBER.findall(item)[0])
            if number not in self._valid:
                self.removed.append(raw if len(items) == 1 else f"[{item.strip()}]")
            elif number not in self._run:
                self._run.add(number)
                kept.append(number)
                if number not in self.cited:
                    self.cited.append(number)
        if not kept:
            return
        self._out.append(between if self._kept else self._lead)
        self._out.append("".join(f"[{n}]" for n in kept))
        self._kept, self._lead, self._written = True, "", True


class AnswerGate:
    """The LLM's deltas through a `CitationFilter`; with `hold`, nothing is released until
    the answer cites a given passage or opens as a refusal (then everything held at once).
    `text` is the whole filtered answer, released or not."""

    def __init__(self, valid_indices: Collection[int], *, hold: bool) -> None:
        self.filter = CitationFilter(valid_indices)
        self.released = not hold
        self.text = ""
        self._valid = valid_indices
        self._held: list[str] = []
        self.added: list[int] = []  # markers appended by `attribute`

    def feed(self, delta: str) -> str:
        """What to stream now of this delta (and of the text held before it)."""
        return self._through(self.filter.feed(delta))

    def finish(self) -> str:
        """What to stream at the end; under `hold`, nothing unless the answer was released."""
        return self._through(self.filter.finish())

    def attribute(self, indices: list[int]) -> str:
        """Append the markers of `indices` (given passages the uncited answer was found in:
        workers/rag/attribution.py) and release the answer: what to stream now."""
        self.added = list(indices)
        suffix = markers(self.added, self.text)
        self.text += suffix
        if self.released:
            return suffix
        self.released = True
        held, self._held = "".join(self._held), []
        return held + suffix

    @property
    def grounded(self) -> bool | None:
        """The filtered answer's `grounding` so far."""
        if not self._valid:
            return None
        if self.filter.cited or self.added:
            return True
        return None if is_refusal(self.text) else False

    def _through(self, text: str) -> str:
        self.text += text
        if self.released:
            return text
        self._held.append(text)
        if self.filter.cited or is_refusal(self.text):
            self.released = True
            held, self._held = "".join(self._held), []
            return held
        return ""
