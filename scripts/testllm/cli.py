"""The test LLM's command line, `python -m scripts.testllm --host 127.0.0.1 --port 0`: the
start-up behaviour from flags, then the server in its own event loop (uvloop if installed)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import Any

from scripts.testllm.answers import DEFAULT_MODEL
from scripts.testllm.app import create_app
from scripts.testllm.faults import STREAM_REPLIES, Behaviour
from scripts.testllm.server import run


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.testllm",
        description="A fake OpenAI-compatible LLM server that stands in for vLLM.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001, help="0 picks a free port")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--token-latency-ms", type=float, default=0.0)
    parser.add_argument("--first-token-latency-ms", type=float, default=0.0)
    parser.add_argument("--embedding-dim", type=int, default=64)
    parser.add_argument(
        "--answer-tokens",
        type=int,
        default=None,
        help="make every answer exactly this many streamed tokens (default: as it comes)",
    )
    parser.add_argument(
        "--stream-reply",
        choices=STREAM_REPLIES,
        default="sse",
        help="the shape of the reply to streaming requests (a fault to inject)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    args = _parse_args(argv)
    try:
        behaviour = Behaviour(
            token_latency_ms=args.token_latency_ms,
            first_token_latency_ms=args.first_token_latency_ms,
            embedding_dim=args.embedding_dim,
            answer_tokens=args.answer_tokens,
            stream_reply=args.stream_reply,
        )
    except ValueError as exc:
        print(f"testllm: {exc}", file=sys.stderr)
        return 2
    app = create_app(behaviour, args.model)
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(run(app, args.host, args.port))


def _loop_factory() -> Any:
    """uvloop's loop factory when installed (faster for benchmarks), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
