"""The deploy-gate evaluation: send every question of a JSONL set through `POST /v1/rag`
and score the answers (expected keywords) and the citations (hit@k, MRR, precision@k).

`ragq eval`, `scripts/deploy_eval.py` and `scripts/eval_gate.py` all run `run`/`run_async`.
Exit codes: 0 every threshold met, 1 below a threshold, 2 usage or connection error.

- `questions`: the question file and its validation.
- `metrics`: keyword matching and the rank metrics of one answer.
- `scoring`: one record per question, and the means over a set.
- `options`: what a run asks and the thresholds it checks.
- `report`: thresholds into an exit code; the JSON report and the printed table.
- `runner`: the run against a ragq URL.
- `arguments`: the command-line options shared by the tools above.
"""

from scripts.evaluation.arguments import add_eval_arguments, options_from_args, run_from_args
from scripts.evaluation.options import EvalOptions, Thresholds
from scripts.evaluation.questions import DataError, EvalQuestion, load_questions
from scripts.evaluation.report import (
    EXIT_BELOW_THRESHOLD,
    EXIT_PASS,
    EXIT_USAGE,
    EvalReport,
    format_report,
)
from scripts.evaluation.runner import EvalSetupError, evaluate, run, run_async
from scripts.evaluation.scoring import QuestionResult, score_response

__all__ = [
    "EXIT_BELOW_THRESHOLD",
    "EXIT_PASS",
    "EXIT_USAGE",
    "DataError",
    "EvalOptions",
    "EvalQuestion",
    "EvalReport",
    "EvalSetupError",
    "QuestionResult",
    "Thresholds",
    "add_eval_arguments",
    "evaluate",
    "format_report",
    "load_questions",
    "options_from_args",
    "run",
    "run_async",
    "run_from_args",
    "score_response",
]
