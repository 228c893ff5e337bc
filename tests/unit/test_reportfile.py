"""The report files the benchmarks and evaluations write (scripts/bench/reportfile.py): a
run replaces its own section and leaves the rest of the file as it was."""

from __future__ import annotations

from pathlib import Path

from scripts.bench.reportfile import markers, table, write_section


def test_a_section_is_replaced_in_place_and_the_rest_kept(tmp_path: Path) -> None:
    path = tmp_path / "EVAL.md"
    begin, end = markers("generated", "eval")
    path.write_text(f"# Evaluation\n\nProse.\n\n{begin}\nold figures\n{end}\n\nMore prose.\n")
    write_section(path, f"{begin}\nnew figures\n{end}", "generated", kind="eval")
    assert path.read_text() == (
        f"# Evaluation\n\nProse.\n\n{begin}\nnew figures\n{end}\n\nMore prose.\n"
    )


def test_a_missing_section_is_appended_and_a_missing_file_gets_its_intro(
    tmp_path: Path,
) -> None:
    path = tmp_path / "EVAL.md"
    begin, end = markers("retrieval", "eval")
    write_section(path, f"{begin}\nfigures\n{end}", "retrieval", kind="eval", intro="# E\n")
    assert path.read_text() == f"# E\n\n{begin}\nfigures\n{end}\n"
    assert markers("faults") == ("<!-- bench:faults -->", "<!-- /bench:faults -->")


def test_a_table_has_its_header_rule_and_rows() -> None:
    assert table(["a", "b"], [[1, "x"], [2.5, "y"]]) == [
        "| a | b |",
        "|---|---|",
        "| 1 | x |",
        "| 2.5 | y |",
    ]
