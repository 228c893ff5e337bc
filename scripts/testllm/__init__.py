"""A fake OpenAI-compatible LLM server that stands in for vLLM in tests and benchmarks.

One module per concern: `answers` (the deterministic answer text and its tokens),
`condense` (the deterministic rewrite of a follow-up, for ragq's condensation prompt),
`embeddings` (hashed bag-of-words vectors and their endpoint), `faults` (the `Behaviour`:
latency and injected faults), `state` (counters and the runtime of one app), `chat` and
`responder` (a chat request, planned on arrival and answered, streamed or not), `replies`
and `connection` (JSON errors; how a reply ends), `app` (routes and the control
endpoints), `server` (uvicorn, in-process or as a process) and `cli` (the command line).

The package must not import ragq code, so it tests ragq from outside. Run it as
`python -m scripts.testllm --host 127.0.0.1 --port 0` (from the repository root): it prints
one line `READY http://HOST:PORT` on stdout once it listens, and exits 0 on SIGTERM/SIGINT.
"""

from __future__ import annotations

from scripts.testllm.answers import (
    ANSWER_PREFIX,
    DEFAULT_MODEL,
    NO_ANSWER,
    answer_for,
    split_tokens,
)
from scripts.testllm.app import create_app
from scripts.testllm.cli import main
from scripts.testllm.embeddings import embed_text
from scripts.testllm.faults import STREAM_REPLIES, Behaviour, StreamReply
from scripts.testllm.server import serve_testllm

__all__ = [
    "ANSWER_PREFIX",
    "DEFAULT_MODEL",
    "NO_ANSWER",
    "STREAM_REPLIES",
    "Behaviour",
    "StreamReply",
    "answer_for",
    "create_app",
    "embed_text",
    "main",
    "serve_testllm",
    "split_tokens",
]
