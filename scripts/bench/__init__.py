"""Benchmarks that start a real ragq stack on this machine; results go to docs/BENCHMARKS.md.

Each benchmark is one script (`pickup.py`, `priority.py`, `admission.py`,
`retrieval_eval.py`), with its load generator and its report section beside it
(`pickup_load.py`, `pickup_report.py`, ...). What they share: `stack.py` (the process
harness's stack on Redis DB 14, one run's set-up and tear-down), `client.py` (the API and
test LLM over HTTP), `corpus.py` (documents and questions), `idle.py` (idle Redis cost),
`stats.py` (quantiles) and `reportfile.py` (the Markdown file and the run's facts).
"""
