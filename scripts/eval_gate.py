"""The CI deploy gate: start a real stack, ingest the corpus through the API, run the deploy
evaluation (the code of `ragq eval`) and exit with its code.

The stack is the e2e tests' one, from the harness (`scripts/harness/`): the test LLM
(`python -m scripts.testllm`, unless `--no-llm`) or, with `--llm local`, a real model under
llama.cpp (`scripts/localllm/`, with the local mode's settings), `ragq serve` and one `ragq
worker`, on a flushed Redis DB with an embedded Qdrant in a temp dir. `--shuffle-texts SEED`
ingests every document with another one's text (ids and titles kept): a deliberately broken
index the gate must fail. Exit 0 pass, 1 below a threshold, 2 when the stack or the corpus cannot be
set up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import sys
import tempfile
from pathlib import Path

import httpx
from redis.asyncio import Redis

from scripts import evaluation
from scripts.evaluation.options import DEFAULT_CONCURRENCY, DEFAULT_REQUEST_TIMEOUT_S
from scripts.harness import ROOT, CorpusDoc, HarnessError, Stack, ingest, read_corpus
from scripts.localllm.catalog import DEFAULT_MODEL, MODELS, model_named
from scripts.localllm.settings import LOCAL_JOB_TIMEOUT_S, local_env
from scripts.localllm.weights import WeightsError, ensure_weights

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"  # reserved for the gate: flushed before and after
KEY_PREFIX = "ragqgate"
LOCAL_REQUEST_TIMEOUT_S = 120.0  # a CPU model: a minute per answer, a slot to wait for
# and a question still running then is followed to its job's own end: late is not wrong
LOCAL_ANSWER_TIMEOUT_S = float(LOCAL_JOB_TIMEOUT_S)


class GateError(HarnessError):
    """The corpus or the gate's Redis DB could not be set up (exit 2, like a stack error)."""


def shuffle_texts(docs: list[CorpusDoc], seed: int) -> list[CorpusDoc]:
    """Every document with the text of another one (a derangement fixed by `seed`).

    The documents are put in a seeded random order and each takes the text of the next one
    in that cycle, so no document keeps its own text; ids, titles and metadata stay.
    """
    if len(docs) < 2:
        raise GateError("--shuffle-texts needs at least two documents")
    order = list(range(len(docs)))
    random.Random(seed).shuffle(order)
    text_of = {order[i]: docs[order[(i + 1) % len(order)]].text for i in range(len(order))}
    return [CorpusDoc(d.id, d.title, text_of[i], d.metadata) for i, d in enumerate(docs)]


def say(message: str) -> None:
    """Progress on stderr (stdout carries the report)."""
    sys.stderr.write(f"eval gate: {message}\n")
    sys.stderr.flush()


async def flushdb(url: str) -> None:
    """Empty the gate's Redis DB."""
    client = Redis.from_url(url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


async def gate(args: argparse.Namespace) -> int:
    """Set up the stack, ingest, evaluate; always stop the processes and flush Redis."""
    docs = await asyncio.to_thread(read_corpus, Path(args.corpus))
    if args.shuffle_texts is not None:
        docs = shuffle_texts(docs, args.shuffle_texts)
        say(f"texts shuffled between documents with seed {args.shuffle_texts}")
    try:
        await flushdb(args.redis_url)
    except Exception as exc:  # any connection problem: the message says what it was
        raise GateError(f"cannot flush Redis at {args.redis_url}: {exc}") from exc
    with tempfile.TemporaryDirectory(prefix="ragq-gate-") as tmp:
        env = {
            **os.environ,
            "RAGQ_REDIS_URL": args.redis_url,
            "RAGQ_KEY_PREFIX": KEY_PREFIX,
            "RAGQ_QDRANT_URL": "",
            "RAGQ_QDRANT_PATH": str(Path(tmp) / "qdrant"),
            "RAGQ_LLM_BASE_URL": "",  # empty = extractive answers; set below with the test LLM
            "RAGQ_WORKER_DRAIN_S": "0",
            "RAGQ_DEFAULT_RPM": "0",  # ingest polling and eval requests are not rate limited
            "RAGQ_LOG_LEVEL": "info",
            "PYTHONUNBUFFERED": "1",
        }
        stack = Stack(Path(tmp), env)
        try:
            if args.llm == "local":
                await _start_local_llm(stack, args)
            elif args.llm == "test":
                await stack.start_llm()
            await stack.start_worker()
            await stack.start_api()
            key = await stack.create_key("gate")
            say(f"stack ready at {stack.url}; ingesting {len(docs)} documents")
            async with httpx.AsyncClient(
                base_url=stack.url,
                headers={"Authorization": f"Bearer {key}"},
                timeout=httpx.Timeout(60.0),
            ) as client:
                await ingest(client, docs)
            say("corpus indexed; evaluating")
            options = evaluation.options_from_args(args, url=stack.url, key=key)
            code = await evaluation.run_async(options)
            if code == evaluation.EXIT_USAGE:
                sys.stderr.write(stack.log_tails() + "\n")
            return code
        except HarnessError:
            sys.stderr.write(stack.log_tails() + "\n")
            raise
        finally:
            await stack.stop()
            with contextlib.suppress(Exception):
                await flushdb(args.redis_url)


async def _start_local_llm(stack: Stack, args: argparse.Namespace) -> None:
    """llama.cpp on `--local-model`, its weights verified first; the ragq processes get the
    local mode's settings, and the evaluation asks no more at once than it has slots."""
    model = model_named(args.local_model)
    try:
        await asyncio.to_thread(ensure_weights, model, say=say)
    except WeightsError as exc:
        raise GateError(str(exc)) from exc
    stack.env.update(local_env(model))
    say(f"starting llama.cpp on {model.title}")
    await stack.start_local_llm(model.name)
    if args.concurrency == DEFAULT_CONCURRENCY:
        args.concurrency = model.parallel
    if args.timeout == DEFAULT_REQUEST_TIMEOUT_S:
        args.timeout = LOCAL_REQUEST_TIMEOUT_S
    if args.answer_timeout is None:
        args.answer_timeout = LOCAL_ANSWER_TIMEOUT_S


async def _main(args: argparse.Namespace) -> int:
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)  # CI cancelling: still clean up
    try:
        return await gate(args)
    except HarnessError as exc:
        say(f"error: {exc}")
        return evaluation.EXIT_USAGE
    except asyncio.CancelledError:  # SIGTERM: the stack is stopped and Redis flushed by now
        say("stopped by SIGTERM")
        return 128 + signal.SIGTERM


def build_parser() -> argparse.ArgumentParser:
    """The gate's options: the stack's, then the evaluation's (without --url/--key)."""
    parser = argparse.ArgumentParser(
        prog="eval_gate.py", description=(__doc__ or "").split("\n\n", 1)[0]
    )
    parser.add_argument(
        "--corpus", default=str(ROOT / "data" / "corpus"), help="corpus dir with manifest.jsonl"
    )
    parser.add_argument(
        "--llm",
        choices=["test", "local", "none"],
        default="test",
        help="who answers: the test LLM (default), a real model under llama.cpp (local),"
        " or nobody (none: ragq answers extractively)",
    )
    parser.add_argument(
        "--no-llm", dest="llm", action="store_const", const="none", help="same as --llm none"
    )
    parser.add_argument(
        "--local-model",
        choices=sorted(MODELS),
        default=DEFAULT_MODEL,
        help="the model of --llm local (default: %(default)s); questions are then asked as"
        " many at once as it has slots, each with a 120 s timeout, unless given",
    )
    parser.add_argument(
        "--shuffle-texts",
        type=int,
        metavar="SEED",
        help="ingest each document with another document's text (a broken index)",
    )
    parser.add_argument(
        "--redis-url", default=DEFAULT_REDIS_URL, help="Redis DB, flushed before and after"
    )
    evaluation.add_eval_arguments(parser, target=False)
    parser.set_defaults(data=ROOT / "data" / "deploy_eval.jsonl")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the gate; the exit code is the evaluation's (2 when set-up fails)."""
    args = build_parser().parse_args(argv)
    try:
        return asyncio.run(_main(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
