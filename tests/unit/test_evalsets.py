"""The evaluation-set builder (scripts/evalsets/): its section readers and set rules on small
inline samples, the .deb reader on a package made here, and the built sets' invariants."""

from __future__ import annotations

import hashlib
import io
import lzma
import tarfile
from pathlib import Path

import pytest

from scripts.evalsets import debarchive, load, model
from scripts.evalsets.htmlsections import Skip, page_sections
from scripts.evalsets.model import MIN_CHARS, Doc, Question, Section, faq_docs, finalize
from scripts.evalsets.rstsections import rst_sections
from scripts.evalsets.textsections import text_sections

BUILT = Path(__file__).resolve().parents[2] / "data" / "evalsets"
ANSWER = "An answer long enough to be kept as a document of the set, and then some more."


def _sec(level: int, heading: str, text: str = ANSWER, anchor: str = "") -> Section:
    return Section("faq", level, heading, anchor or heading[:12], text)


@pytest.mark.parametrize(
    ("heading", "plain"),
    [
        ("1.1. What is WeeChat?", "What is WeeChat?"),
        ("3.1: Why does $var not split?", "Why does $var not split?"),
        ("7.30 I installed a package", "I installed a package"),
        ("Chapter 2: How does zsh differ from...?", "How does zsh differ from...?"),
        ("A simple command", "A simple command"),  # a word, not an appendix letter
    ],
)
def test_section_numbers_are_stripped(heading: str, plain: str) -> None:
    assert model.strip_number(heading) == plain


@pytest.mark.parametrize(
    ("heading", "asks"),
    [
        ("How can I save my workspace?", True),
        ("I installed a package but the functions are not there", True),
        ("-f jpeg doesn't work with this codec.", True),  # a problem stated as a sentence
        ("My machine goes to sleep causing Broken pipe", True),
        ("Differences from sh and ksh", False),
        ("Usage & Limitations", False),
    ],
)
def test_which_headings_are_questions(heading: str, asks: bool) -> None:
    assert model.is_question(heading) is asks


def test_gold_is_the_answer_titled_by_its_chapter_never_by_the_question() -> None:
    docs, questions = faq_docs(
        [
            _sec(1, "2. Display", "Chapter intro, long enough to be a distractor document."),
            _sec(2, "2.1. How can I use 256 colors?", anchor="colors"),
            _sec(3, "2.1.1. With tmux", "Set TERM to tmux-256color inside tmux sessions."),
            _sec(3, "2.1.2. Why not 16 colours only?", "Because 256 is more than sixteen, ok."),
        ]
    )
    assert [q.question for q in questions] == [
        "How can I use 256 colors?",
        "Why not 16 colours only?",  # a sub-entry that asks is its own question
    ]
    gold = next(d for d in docs if d.id == "faq#colors")
    assert gold.title == "Display"
    assert "With tmux" in gold.text  # the sub-section that does not ask joins the answer
    assert "256 colors?" not in gold.text
    assert docs[0].title == "Display"  # a distractor keeps its heading


def test_only_entries_at_the_given_levels_ask() -> None:
    docs, questions = faq_docs(
        [_sec(1, "Chapter 2: How does zsh differ from...?"), _sec(2, "2.3: Why do aliases fail?")],
        levels=(2,),
    )
    assert [q.question for q in questions] == ["Why do aliases fail?"]
    assert docs[1].title == "How does zsh differ from...?"


def test_finalize_keeps_gold_ids_unique_and_existing() -> None:
    docs, questions = faq_docs([_sec(1, "FAQ"), _sec(2, "How do I start?", anchor="start")])
    es = finalize("t", docs + model.section_docs([_sec(1, "Guide", anchor="guide")]), questions)
    ids = [d.id for d in es.docs]
    assert len(ids) == len(set(ids))
    assert all(i in ids for q in es.questions for i in q.expected_doc_ids)
    with pytest.raises(ValueError, match="duplicate document id"):
        finalize("t", es.docs + es.docs[:1], [])


def test_short_sections_are_dropped_with_their_question() -> None:
    docs, questions = faq_docs(
        [_sec(1, "FAQ"), _sec(2, "How do I report bugs?", "See the tracker.", anchor="bugs")]
    )
    es = finalize("t", docs, questions)
    assert len("See the tracker.") < MIN_CHARS
    assert es.questions == []
    assert all(d.id != "faq#bugs" for d in es.docs)
    assert es.dropped["question whose answer was dropped"] == 1


def test_a_question_quoted_in_its_gold_text_is_dropped() -> None:
    text = "Why is backup slow for me? Because the disk is slow, mostly; check it first."
    docs, questions = faq_docs([_sec(1, "FAQ"), _sec(2, "Why is backup slow for me?", text)])
    es = finalize("t", docs, questions)
    assert es.questions == []
    assert es.dropped["question quoted in its gold document"] == 1


def test_quotes_in_other_documents_are_masked_and_tables_of_contents_dropped() -> None:
    qs = ["How do I save my workspace?", "How do I load it?", "How do I quit R?"]
    docs, questions = faq_docs([_sec(1, "FAQ"), *(_sec(2, q, anchor=q) for q in qs)])
    toc = Doc("toc", "Contents", "\n".join(qs))
    xref = Doc("x", "Guide", "To keep objects, see How do I save\n  my workspace? in the FAQ.")
    es = finalize("t", [*docs, toc, xref], questions)
    by_id = {d.id: d for d in es.docs}
    assert "toc" not in by_id
    assert by_id["x"].text == "To keep objects, see … in the FAQ."
    for q in es.questions:
        assert q.question not in by_id[q.expected_doc_ids[0]].text


def test_out_of_context_and_repeated_questions_and_texts() -> None:
    docs, questions = faq_docs(
        [_sec(1, "FAQ"), _sec(2, "What is it?", anchor="a"), _sec(2, "How to start?", anchor="b")]
    )
    again = Question("How to start?", ("faq#a",))
    es = finalize("t", docs, [*questions, again], out_of_context={"What is it?"})
    assert es.questions == [Question("How to start?", ("faq#a", "faq#b"))]
    repeated = [Doc("a", "One", ANSWER), Doc("b", "Two", ANSWER.upper())]
    assert [x.id for x in finalize("t", repeated, []).docs] == ["a"]  # the first text stays


HTML = """<html><head><title>x</title><style>h1{}</style></head><body>
<div id="toc"><ul><li><a href="#q1">1.1. How can I copy text?</a></li></ul></div>
<h2 id="general">1. General<a class="anchor">¶</a></h2>
<div class="sect2"><h3 id="q1">1.1. How can I copy&nbsp;text?</h3>
<p>Use the <code>/copy</code>
   command, then paste.</p>
<pre>  indented
    code</pre>
<ul><li><p>first</p></li><li>second</li></ul></div>
<h3>1.2. Untitled anchor</h3><p>Body.</p>
</body></html>"""


def test_html_sections_split_at_headings_and_skip_what_they_are_told() -> None:
    secs = page_sections(HTML, "faq.html", Skip.of(ids=("toc",), classes=("anchor",)))
    assert [(s.level, s.heading, s.anchor) for s in secs] == [
        (2, "1. General", "general"),
        (3, "1.1. How can I copy\u00a0text?", "q1"),
        (3, "1.2. Untitled anchor", "s3"),
    ]
    assert secs[0].text == ""  # the table of contents was skipped
    assert secs[1].text == (
        "Use the /copy command, then paste.\n\n  indented\n    code\n\n- first\n\n- second"
    )


RST = """.. _faq:

==========================
 Frequently Asked Questions
==========================

General
=======

Can I use *Borg* on ``SMR`` drives?
-----------------------------------

.. include:: global.rst.inc

Yes, mostly::

    Not a title
    -----------

Other
=====

Text.
"""


def test_rst_sections_levels_follow_the_order_of_adornments() -> None:
    secs = rst_sections(RST, "faq.rst")
    assert [(s.level, s.heading) for s in secs] == [
        (1, "Frequently Asked Questions"),
        (2, "General"),
        (3, "Can I use Borg on SMR drives?"),
        (2, "Other"),
    ]
    assert secs[2].anchor == "can-i-use-borg-on-smr-drives"
    assert "include::" not in secs[2].text
    assert "Not a title" in secs[2].text  # indented: inside the literal block


TEXT = """The Debian FAQ

Table of Contents

1. Definitions
    1.1. What is it?

Chapter\u00a01.\u00a0Definitions and overview

1.1.\u00a0What is the difference between Debian GNU/
Linux and other distributions?

    Debian is
    \u00a0   made by volunteers.

---------------------------------------------------------------------

Chapter\u00a02.\u00a0Next
"""


def test_text_sections_read_wrapped_headings_and_indented_bodies() -> None:
    secs = text_sections(TEXT, "faq.txt")
    assert [(s.level, s.heading, s.anchor) for s in secs] == [
        (1, "1. Definitions and overview", "1"),
        (2, "1.1. What is the difference between Debian GNU/Linux and other distributions?", "1.1"),
        (1, "2. Next", "2"),
    ]
    assert secs[1].text == "Debian is\n    made by volunteers."


def _deb(files: dict[str, bytes]) -> bytes:
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"./{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    members = {"debian-binary": b"2.0\n", "data.tar.xz": lzma.compress(tar_bytes.getvalue())}
    out = bytearray(b"!<arch>\n")
    for name, data in members.items():
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode()
        out += data + (b"\n" if len(data) % 2 else b"")
    return bytes(out)


def test_deb_reader_and_pinned_hash(tmp_path: Path) -> None:
    data = _deb({"usr/share/doc/p/faq.html": b"<h1>x</h1>", "usr/share/doc/p/other": b"no"})
    pkg = debarchive.DebPackage("p", "1:2.0-1", hashlib.sha256(data).hexdigest(), "pool/p")
    (tmp_path / pkg.filename).write_bytes(data)
    assert pkg.filename == "p_1%3a2.0-1_all.deb"
    path = debarchive.fetch(pkg, tmp_path)  # in the cache already: no download
    files = debarchive.read(path, lambda p: p.endswith(".html"))
    assert files == {"usr/share/doc/p/faq.html": b"<h1>x</h1>"}
    (tmp_path / pkg.filename).write_bytes(data + b"tampered")
    with pytest.raises(SystemExit, match="SHA-256"):
        debarchive.fetch(pkg, tmp_path)


def test_load_reads_a_set_and_leaves_out_the_held_out_one(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "docs.jsonl").write_text('{"id": "d", "title": "T", "text": "x"}\n')
        (tmp_path / name / "questions.jsonl").write_text(
            '{"question": "q?", "expected_doc_ids": ["d"]}\n'
        )
    (tmp_path / "HELD_OUT").write_text("b\n")
    assert load.names(tmp_path) == ["a", "b"]
    assert load.names(tmp_path, include_held_out=False) == ["a"]
    assert load.load("a", tmp_path) == ([Doc("d", "T", "x")], [Question("q?", ("d",))])
    with pytest.raises(KeyError, match="no evaluation set"):
        load.load("c", tmp_path)


@pytest.mark.parametrize("name", load.names(BUILT))
def test_built_sets_keep_the_rules(name: str) -> None:
    assert load.held_out(BUILT) in load.names(BUILT)
    docs, questions = load.load(name, BUILT)
    by_id = {d.id: d for d in docs}
    assert len(by_id) == len(docs), "duplicate document ids"
    assert len(questions) >= 40
    for q in questions:
        assert q.expected_doc_ids
        assert all(i in by_id for i in q.expected_doc_ids)
        key = " ".join(q.question.casefold().split())
        for i in q.expected_doc_ids:
            gold = by_id[i]
            assert key not in " ".join(gold.text.casefold().split()), q.question
            assert key not in gold.title.casefold(), q.question
    assert all(len(d.text) >= MIN_CHARS for d in docs)
    assert sum(f.stat().st_size for f in (BUILT / name).iterdir()) <= 5 * 1024 * 1024
    for f in ("LICENSE", "SOURCE.md"):
        assert (BUILT / name / f).stat().st_size > 0
    if name == load.held_out(BUILT):
        assert name not in load.names(BUILT, include_held_out=False)
