"""The deploy gate against a running ragq: the same evaluation as `ragq eval`.

Usage: `python scripts/deploy_eval.py --url URL --key K --data FILE.jsonl [--threshold 0.85]`;
exit 0 when every threshold is met, 1 below one, 2 on usage or connection errors.
"""

from __future__ import annotations

import argparse
import sys

from scripts import evaluation


def main(argv: list[str] | None = None) -> int:
    """Parse the `ragq eval` options and run the evaluation."""
    parser = argparse.ArgumentParser(
        prog="deploy_eval.py", description=__doc__.splitlines()[0] if __doc__ else None
    )
    evaluation.add_eval_arguments(parser)
    return evaluation.run_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
