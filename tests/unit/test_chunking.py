"""Chunking: offsets always point back into the source, and cuts follow the text's structure."""

from __future__ import annotations

import dataclasses
import itertools
import random
import unicodedata

import pytest

from workers.rag.chunking import Chunk, ChunkOffsetError, chunk_text, validate_chunks

WORDS = [
    "the", "key", "rotation", "policy", "applies", "to", "every", "tenant", "café", "naïve",
    "élan", "日本語", "テキスト", "データ", "emoji😀", "👩‍💻", "e\u0301te\u0301", "ok", "a",
    "configuration", "server",
]  # fmt: skip
SIZES = [(100, 0), (160, 40), (400, 120), (1200, 150)]


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(3, 18))]
    text = "".join(w + rng.choice([" ", " ", " ", "\t"]) for w in words).rstrip()
    return text + rng.choice([".", "!", "?", "。", "...", '."'])


def _document(seed: int) -> tuple[str, list[str]]:
    """A varied Markdown-ish document and the code fences it contains."""
    rng = random.Random(seed)
    blocks: list[str] = []
    fences: list[str] = []
    for n in range(rng.randint(1, 14)):
        kind = rng.choice(["heading", "para", "para", "para", "fence", "table", "run", "list"])
        if kind == "heading":
            blocks.append("#" * rng.randint(1, 6) + " " + " ".join(rng.sample(WORDS, 3)))
        elif kind == "para":
            blocks.append(" ".join(_sentence(rng) for _ in range(rng.randint(1, 12))))
        elif kind == "fence":
            lines = [f"# fence-{seed}-{n}: not a heading"]
            lines += [f"x = {rng.choice(WORDS)!r}  # {i}" for i in range(rng.randint(1, 40))]
            fence = "```python\n" + "\n".join(lines) + "\n```"
            fences.append(fence)
            blocks.append(fence)
        elif kind == "table":
            rows = [f"| {rng.choice(WORDS)} | {rng.randint(0, 99)} |" for _ in range(8)]
            blocks.append("| word | n |\n|---|---|\n" + "\n".join(rows))
        elif kind == "run":
            blocks.append(rng.choice(["z", "日", "é"]) * rng.randint(50, 2500))
        else:
            blocks.append("\n".join(f"- {_sentence(rng)}" for _ in range(rng.randint(2, 9))))
    text = rng.choice(["", "\n", "  \n\t\n"])
    text += "".join(b + rng.choice(["\n\n", "\n\n", "\n", "\n \n\n"]) for b in blocks)
    if seed % 2:
        text = text.replace("\n", "\r\n")
        fences = [f.replace("\n", "\r\n") for f in fences]
    return text, fences


@pytest.mark.parametrize("seed", range(60))
def test_chunks_keep_every_invariant_on_varied_documents(seed: int) -> None:
    """Citations stay exact and chunks well-formed for CRLF, tabs, non-ASCII, fences, tables."""
    text, fences = _document(seed)
    for max_chars, overlap_chars in SIZES:
        chunks = chunk_text(text, max_chars=max_chars, overlap_chars=overlap_chars)
        validate_chunks(text, chunks)
        for chunk in chunks:
            assert len(chunk.text) <= max_chars
            assert chunk.text == chunk.text.strip()
        for previous, chunk in itertools.pairwise(chunks):
            if chunk.start < previous.end:
                assert previous.end - chunk.start <= overlap_chars
                assert text[chunk.start - 1].isspace()
        for fence in fences:
            if len(fence) <= max_chars:
                fence_start = text.index(fence)
                fence_end = fence_start + len(fence)
                offsets = [o for c in chunks for o in (c.start, c.end)]
                assert [o for o in offsets if fence_start < o < fence_end] == []
        assert chunk_text(text, max_chars=max_chars, overlap_chars=overlap_chars) == chunks


def test_heading_starts_a_chunk_and_names_its_section() -> None:
    """A chunk never mixes two sections, so its section label is the heading it is under."""
    text = "Intro line.\n\n# Setup ##\n\nInstall it.\n\n## Keys\n\nRotate keys.\n"
    chunks = chunk_text(text, max_chars=1200, overlap_chars=150)
    actual = [(c.text, c.section) for c in chunks]
    assert actual == [
        ("Intro line.", None),
        ("# Setup ##\n\nInstall it.", "Setup"),
        ("## Keys\n\nRotate keys.", "Keys"),
    ]


def test_heading_without_body_joins_the_next_section() -> None:
    """A parent heading is kept with its first subsection, labelled by the most specific one."""
    text = "# Guide\n\n## Install\n\nRun the installer.\n"
    chunks = chunk_text(text, max_chars=200, overlap_chars=20)
    assert [(c.text, c.section) for c in chunks] == [(text.strip(), "Install")]


def test_continuation_chunks_keep_the_section_label() -> None:
    """Every chunk of a long section cites the section's heading."""
    text = "## Limits\n\n" + " ".join(f"Rule {i} applies here." for i in range(60))
    chunks = chunk_text(text, max_chars=200, overlap_chars=40)
    assert len(chunks) > 3
    assert {c.section for c in chunks} == {"Limits"}


def test_hash_lines_inside_code_fences_are_not_headings() -> None:
    """A shell comment in a code block does not start a section or a chunk."""
    text = "## Run\n\n```sh\n# install\npip install x\n```\n"
    chunks = chunk_text(text, max_chars=200, overlap_chars=20)
    assert [(c.text, c.section) for c in chunks] == [(text.strip(), "Run")]


def test_cut_prefers_a_blank_line_over_a_later_sentence_end() -> None:
    """Paragraphs stay whole when a chunk can end at a paragraph break."""
    first = "First paragraph. " * 5 + "Its end."
    second = "Second paragraph goes on. " * 6
    chunks = chunk_text(f"{first}\n\n{second}", max_chars=150, overlap_chars=0)
    assert chunks[0].text == first


def test_cut_prefers_a_sentence_end_over_a_later_space() -> None:
    """Without a paragraph break, chunks end at a sentence end rather than mid-sentence."""
    text = "One two three four five six seven. " * 3 + "eight nine ten " * 10
    chunks = chunk_text(text, max_chars=120, overlap_chars=0)
    assert chunks[0].text.endswith("seven.")


def test_cjk_text_is_cut_at_full_width_sentence_ends() -> None:
    """Japanese text without spaces is split after 。 rather than mid-word."""
    text = "これは日本語の文章です。" * 30
    chunks = chunk_text(text, max_chars=100, overlap_chars=0)
    validate_chunks(text, chunks)
    assert all(c.text.endswith("。") for c in chunks)


def test_table_rows_are_not_cut_mid_row() -> None:
    """A table longer than a chunk is split between rows."""
    table = "| name | value |\n|---|---|\n" + "\n".join(f"| k{i} | v{i} |" for i in range(80))
    chunks = chunk_text(table, max_chars=200, overlap_chars=0)
    assert len(chunks) > 1
    assert all(
        line.startswith("|") and line.endswith("|") for c in chunks for line in c.text.splitlines()
    )


def test_code_fence_that_fits_moves_whole_to_the_next_chunk() -> None:
    """A code block that fits in a chunk is never cut, even if text before it fills most of one."""
    code = "```python\n" + "\n".join(f"value_{i} = {i}" for i in range(10)) + "\n```"
    text = "Lead-in sentence here. " * 6 + "\n" + code + "\nAfter."
    chunks = chunk_text(text, max_chars=200, overlap_chars=30)
    validate_chunks(text, chunks)
    assert any(code in c.text for c in chunks)


def test_oversized_code_fence_is_split_at_line_ends() -> None:
    """A code block longer than a chunk is split between its lines, not mid-line."""
    code = "```\n" + "\n".join(f"print('line {i}')" for i in range(100)) + "\n```"
    text = f"Intro.\n\n{code}\n\nOutro."
    chunks = chunk_text(text, max_chars=300, overlap_chars=0)
    validate_chunks(text, chunks)
    inner = [c for c in chunks if "print" in c.text]
    assert len(inner) > 2
    assert all(c.text.endswith((")", "```")) for c in inner)
    assert max(len(c.text) for c in chunks) <= 300


def test_text_without_spaces_is_hard_cut_at_max_chars() -> None:
    """A run with no break point is cut at exactly max_chars, with no overlap to snap to."""
    text = "x" * 1000
    chunks = chunk_text(text, max_chars=300, overlap_chars=50)
    assert [(c.start, c.end) for c in chunks] == [(0, 300), (300, 600), (600, 900), (900, 1000)]


def test_hard_cut_keeps_accents_and_emoji_sequences_whole() -> None:
    """A forced cut never separates a combining accent or a ZWJ emoji from its base."""
    for text in ("e\u0301" * 200, "👩\u200d💻" * 150):
        chunks = chunk_text(text, max_chars=101, overlap_chars=0)
        validate_chunks(text, chunks)
        for chunk in chunks[1:]:
            assert unicodedata.category(chunk.text[0]) not in ("Mn", "Mc", "Me")
            assert chunk.text[0] != "\u200d"
            assert text[chunk.start - 1] != "\u200d"


def test_overlap_is_about_overlap_chars_and_starts_at_a_word() -> None:
    """Consecutive chunks share roughly overlap_chars of text, starting on a word boundary."""
    text = " ".join(f"w{i:03d}" for i in range(600))
    chunks = chunk_text(text, max_chars=300, overlap_chars=60)
    overlaps = [p.end - c.start for p, c in itertools.pairwise(chunks)]
    assert all(55 <= o <= 60 for o in overlaps)
    assert all(text[c.start - 1] == " " for c in chunks[1:])


def test_leading_and_trailing_whitespace_is_trimmed_by_offsets() -> None:
    """Chunks start and end on text, and their offsets still index the untouched source."""
    text = "\r\n\t  Hello,\tworld — ça va? 日本語 👍  \r\n\r\n"
    chunks = chunk_text(text)
    start, end = text.index("Hello"), len(text.rstrip())
    assert [(c.start, c.end, c.text) for c in chunks] == [(start, end, text.strip())]


@pytest.mark.parametrize("text", ["", " ", "\r\n\t \n", "\u3000\n"])
def test_blank_text_gives_no_chunks(text: str) -> None:
    """A blank document produces no (empty) chunks."""
    assert chunk_text(text) == []


@pytest.mark.parametrize(("max_chars", "overlap_chars"), [(0, 0), (100, -1), (100, 100)])
def test_invalid_sizes_are_rejected(max_chars: int, overlap_chars: int) -> None:
    """Sizes that could not make progress fail loudly instead of looping."""
    with pytest.raises(ValueError, match="_chars"):
        chunk_text("text", max_chars=max_chars, overlap_chars=overlap_chars)


def _chunks() -> tuple[str, list[Chunk]]:
    text = "Alpha beta gamma. " * 40
    return text, chunk_text(text, max_chars=150, overlap_chars=30)


def test_validate_chunks_names_the_first_chunk_with_wrong_text() -> None:
    """A chunk whose offsets drifted from its text is reported by index."""
    text, chunks = _chunks()
    chunks[2] = dataclasses.replace(chunks[2], start=chunks[2].start + 1)
    chunks[3] = dataclasses.replace(chunks[3], text="tampered")
    with pytest.raises(ChunkOffsetError, match=r"^chunk 2 .*differs from source"):
        validate_chunks(text, chunks)


def test_validate_chunks_rejects_out_of_range_offsets() -> None:
    """Offsets past the end of the source are reported."""
    text, chunks = _chunks()
    last = chunks[-1]
    chunks[-1] = dataclasses.replace(last, end=len(text) + 5, text=text[last.start :])
    with pytest.raises(ChunkOffsetError, match=f"^chunk {last.index} .*out of range"):
        validate_chunks(text, chunks)


def test_validate_chunks_rejects_chunks_that_go_backwards() -> None:
    """A chunk inside or before the previous one is reported."""
    text, chunks = _chunks()
    chunks[2] = dataclasses.replace(chunks[1], index=2)
    with pytest.raises(ChunkOffsetError, match=r"^chunk 2 .*does not move forward"):
        validate_chunks(text, chunks)


def test_validate_chunks_rejects_text_left_out() -> None:
    """A dropped chunk that leaves text uncovered is reported at the chunk after the gap."""
    text = "First part here.\n\nSecond part here.\n\nThird part here."
    chunks = chunk_text(text, max_chars=20, overlap_chars=0)
    kept = [dataclasses.replace(chunks[0]), dataclasses.replace(chunks[2], index=1)]
    with pytest.raises(ChunkOffsetError, match=r"^chunk 1 .*in no chunk"):
        validate_chunks(text, kept)


def test_every_sample_document_chunks_with_exact_offsets() -> None:
    """Every chunk of every sample document (code blocks, tables, CRLF, non-ASCII) is
    exactly text[start:end] of its source, at the default and at a small chunk size."""
    from pathlib import Path

    corpus = Path(__file__).resolve().parents[2] / "data" / "corpus"
    texts = [p.read_bytes().decode("utf-8") for p in sorted(corpus.glob("*.md"))]
    counted = 0
    for text in texts:
        for max_chars, overlap in ((1200, 150), (300, 60)):
            chunks = chunk_text(text, max_chars=max_chars, overlap_chars=overlap)
            validate_chunks(text, chunks)
            assert all(text[c.start : c.end] == c.text for c in chunks)
            counted += len(chunks)
    assert len(texts) >= 30
    assert any("\r\n" in t for t in texts)
    assert any("```" in t for t in texts)
    assert any(not t.isascii() for t in texts)
    assert counted > 600
