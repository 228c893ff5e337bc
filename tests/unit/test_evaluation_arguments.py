"""`ragq eval` on the command line: its defaults, a missing key, thresholds out of range."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.cli import build_parser


def test_ragq_eval_defaults_match_the_operator_contract() -> None:
    """`ragq eval` with no options targets the local API, the shipped set and 0.85."""
    args = build_parser().parse_args(["eval"])
    assert args.url == "http://127.0.0.1:8000"
    assert args.data == Path("data/deploy_eval.jsonl")
    assert args.threshold == 0.85
    assert (args.min_hit_at_k, args.min_mrr, args.min_precision) == (None, None, None)
    assert (args.top_k, args.concurrency, args.json_out) == (5, 4, "eval-report.json")


def test_ragq_eval_without_a_key_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --key or RAGQ_API_KEY the command says what is missing and exits 2."""
    from scripts.cli import main

    monkeypatch.delenv("RAGQ_API_KEY", raising=False)
    assert main(["eval"]) == 2
    assert "pass --key or set RAGQ_API_KEY" in capsys.readouterr().err


def test_thresholds_outside_0_1_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """A threshold of 85 (meant as 85 %) is refused by the parser with exit 2."""
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["eval", "--threshold", "85"])
    assert exc.value.code == 2
    assert "between 0 and 1" in capsys.readouterr().err
