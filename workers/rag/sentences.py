"""Sentences for quoting: a chunk's Markdown cut into the units an extractive answer can
quote (prose sentences, list items, short lists with their lead-in), without splitting
decimals, versions, abbreviations, file names or inline code, and skipping code blocks,
headings and tables.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Kind = Literal["sentence", "item", "list"]
LIST_MAX_CHARS = 300  # a lead-in ending in ":" and its whole list up to this are one unit
ITEM_MAX_CHARS = 400  # a longer list item is quoted by its sentences

# Always followed by more of the same sentence, whatever comes next ("Dr. Smith", "e.g. Redis").
_ABBREVIATIONS = frozenset(
    {"e.g", "eg", "i.e", "ie", "cf", "vs", "viz", "approx", "ca", "dr", "mr", "mrs", "prof"}
    | {"st", "incl", "esp", "resp", "et", "al"}
)
# Abbreviations only before a number ("No. 5", "Fig. 3"); elsewhere they may end a sentence.
_NUMBERED = frozenset(("no", "nos", "fig", "figs", "eq", "eqs", "p", "pp", "vol", "ch", "sec"))
_CLOSERS = "\"'”’»)]*_"
# "." "!" "?" or an ellipsis, the quotes/brackets/emphasis closing with it, then space or end
_END = re.compile(rf"(?:\.\.\.|…|[.!?]+)[{re.escape(_CLOSERS)}]*(?=\s|$)")
_WIDE_END = re.compile(r"[。！？]+")  # scripts without spaces end sentences without one
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_PREVIOUS_WORD = re.compile(r"(\S+)$")
_INITIALS = re.compile(r"[^\W\d_](?:\.[^\W\d_])*")
_TERMINATED = re.compile(rf"(?:[.!?…:;。！？])[{re.escape(_CLOSERS)}`]*$")

_FENCE = re.compile(r"[ \t]*(`{3,}|~{3,})(.*)")  # indented too: a fence inside a list item
_HEADING = re.compile(r"[ \t]{0,3}#{1,6}(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*")
_SETEXT = re.compile(r"[ \t]{0,3}(?:=+|-+)[ \t]*")
_RULE = re.compile(r"[ \t]{0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*")
_TABLE_ROW = re.compile(r"[ \t]*\|.*")
_TABLE_RULE = re.compile(r"[ \t]*\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)+\|?[ \t]*")
_ITEM = re.compile(r"[ \t]*(?:[-*+]|\d{1,9}[.)])[ \t]+(.*)")
_QUOTE = re.compile(r"^[ \t]{0,3}(?:>[ \t]?)+")


@dataclass(frozen=True, slots=True)
class Unit:
    """One quotable piece of a text, its whitespace collapsed and list marker removed."""

    text: str
    kind: Kind
    heading: str | None  # the nearest heading above it in the text
    partial: bool = False  # it may be cut short by where the text starts or ends


@dataclass(frozen=True, slots=True)
class _Block:
    kind: Literal["para", "item", "heading", "other"]
    text: str = ""


def split_sentences(text: str) -> list[str]:
    """Prose cut into sentences, whitespace collapsed; a period inside a number, version,
    file name, URL or inline code, after an abbreviation, or before a lowercase word
    ends nothing."""
    flat = " ".join(text.split())
    masked = _CODE_SPAN.sub(lambda m: m[1] + "X" * len(m[2]) + m[1], flat)
    sentences: list[str] = []
    start = 0
    for end in _ends(masked):
        piece = flat[start:end].strip()
        if piece:
            sentences.append(piece)
        start = end
    tail = flat[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


def units(text: str) -> list[Unit]:
    """A Markdown text's quotable units in order: prose sentences, list items (each one
    unit, or one with a short lead-in ending in ":"), never code, headings or tables."""
    blocks = _blocks(text)
    out: list[Unit] = []
    heading: str | None = None
    i = 0
    while i < len(blocks):
        block = blocks[i]
        if block.kind == "heading":
            heading = block.text or None
        elif block.kind == "item":
            long = len(block.text) > ITEM_MAX_CHARS
            pieces = split_sentences(block.text) if long else [block.text]
            out.extend(Unit(piece, "item", heading) for piece in pieces)
        elif block.kind == "para":
            sentences = split_sentences(block.text)
            partial = [False] * len(sentences)
            partial[0] = i == 0 and sentences[0][0].islower()  # the text starts mid-sentence
            if i == len(blocks) - 1 and not _TERMINATED.search(sentences[-1]):
                partial[-1] = True  # the text ends mid-sentence
            kinds: list[Kind] = ["sentence"] * len(sentences)
            items = _run_of_items(blocks, i + 1)
            joined = _joined_list(sentences[-1], items)
            if joined is not None:
                sentences[-1], kinds[-1] = joined, "list"
                i += len(items)
            out.extend(map(Unit, sentences, kinds, [heading] * len(sentences), partial))
        i += 1
    return out


def _ends(masked: str) -> list[int]:
    """Where the sentences of whitespace-collapsed text end (offsets just past them)."""
    ends = [m.end() for m in _WIDE_END.finditer(masked)]
    for m in _END.finditer(masked):
        after = masked[m.end() + 1 : m.end() + 2]  # the next sentence's first character
        if after and _continues(masked[: m.start()], m.group(), after):
            continue
        ends.append(m.end())
    return sorted(set(ends))


def _continues(before: str, mark: str, after: str) -> bool:
    """Whether the sentence goes on past `mark`, judged by the word before and the next
    character (a lowercase word continues after any mark)."""
    if after.islower():
        return True
    if mark.rstrip(_CLOSERS) != ".":
        return False
    previous = _PREVIOUS_WORD.search(before)
    word = previous[1].lstrip("(\"'“‘[").lower() if previous else ""
    if word in _ABBREVIATIONS or (word in _NUMBERED and (after.isdigit() or after == "#")):
        return True
    return bool(_INITIALS.fullmatch(word))  # "J. Smith", "U.S. law"


def _run_of_items(blocks: list[_Block], i: int) -> list[str]:
    items: list[str] = []
    while i < len(blocks) and blocks[i].kind == "item":
        items.append(blocks[i].text)
        i += 1
    return items


def _joined_list(lead: str, items: list[str]) -> str | None:
    """A lead-in ending in ":" and its list as one sentence, when both together are short."""
    if not items or not lead.endswith(":"):
        return None
    parts = [item.rstrip(".;, ") for item in items]
    if len(lead) + sum(len(p) + 2 for p in parts) > LIST_MAX_CHARS:
        return None
    return f"{lead} {'; '.join(parts)}."


def _blocks(text: str) -> list[_Block]:
    """The text's lines grouped: paragraphs, list items, headings; code and tables as "other"."""
    blocks: list[_Block] = []
    lines: list[str] = []
    kind: list[Literal["para", "item"]] = ["para"]  # the open block's kind
    fence: str | None = None
    in_table = False

    def close(then: Literal["para", "item"] = "para") -> None:
        if lines:
            blocks.append(_Block(kind[0], " ".join(" ".join(lines).split())))
            lines.clear()
        kind[0] = then

    for raw in text.splitlines():
        line = _QUOTE.sub("", raw, count=1)
        if fence is not None:
            if line.strip().startswith(fence) and not line.strip().strip(fence[0]):
                fence = None
        elif not line.strip():
            close()
            in_table = False
        elif (opening := _FENCE.fullmatch(line)) and not (
            opening[1][0] == "`" and "`" in opening[2]  # "```a```" is inline code
        ):
            close()
            fence = opening[1]
            blocks.append(_Block("other"))
        elif in_table or _TABLE_ROW.fullmatch(line):
            close()
            in_table = True
            blocks.append(_Block("other"))
        elif _TABLE_RULE.fullmatch(line) and kind[0] == "para" and lines and "|" in lines[-1]:
            lines.pop()
            close()
            in_table = True
            blocks.append(_Block("other"))
        elif heading := _HEADING.fullmatch(line):
            close()
            blocks.append(_Block("heading", heading[1] or ""))
        elif _SETEXT.fullmatch(line) and kind[0] == "para" and len(lines) == 1:
            blocks.append(_Block("heading", lines.pop().strip()))
        elif _RULE.fullmatch(line):
            close()
        elif item := _ITEM.fullmatch(line):
            close("item")
            lines.append(item[1])
        else:
            lines.append(line.strip())  # a paragraph's line, or an item's continuation
    close()
    return blocks
