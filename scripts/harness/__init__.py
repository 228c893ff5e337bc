"""One process harness for everything that runs ragq as real processes on this machine:
`ragq dev`, the deploy gate (`scripts/eval_gate.py`), the benchmarks under `scripts/bench/`
and the end-to-end tests.

- `processes`: start named processes with their logs, stop them cleanly (SIGTERM, then
  SIGKILL after a bound), never outliving the harness.
- `waiting`: a bounded wait for a condition that holds in another process.
- `stack`: the ragq stack on top: the test LLM, `ragq serve`, `ragq worker`, each ready
  when it says so, and keys issued with `ragq keys create`.
- `corpus`: a document corpus posted through the API and waited on until indexed.
"""

from scripts.harness.corpus import (
    INDEX_TIMEOUT_S,
    CorpusDoc,
    document_statuses,
    ingest,
    post_documents,
    read_corpus,
    wait_indexed,
)
from scripts.harness.processes import ROOT, STOP_TIMEOUT_S, Child, HarnessError, free_port
from scripts.harness.stack import START_TIMEOUT_S, Stack
from scripts.harness.waiting import POLL_S, wait_until

__all__ = [
    "INDEX_TIMEOUT_S",
    "POLL_S",
    "ROOT",
    "START_TIMEOUT_S",
    "STOP_TIMEOUT_S",
    "Child",
    "CorpusDoc",
    "HarnessError",
    "Stack",
    "document_statuses",
    "free_port",
    "ingest",
    "post_documents",
    "read_corpus",
    "wait_indexed",
    "wait_until",
]
