"""The CI deploy gate: start a real stack, ingest the corpus through the API, run the deploy
evaluation (the code of `ragq eval`) and exit with its code.

The stack is the e2e tests' one: the test LLM (`scripts/testllm.py`, unless `--no-llm`),
`ragq serve` and one `ragq worker`, on a flushed Redis DB with an embedded Qdrant in a temp
dir. `--shuffle-texts SEED` ingests every document with another one's text (ids and titles
kept): a deliberately broken index the gate must fail. Exit 0 pass, 1 below a threshold,
2 when the stack or the corpus cannot be set up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis

from shared import evaluation

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"  # reserved for the gate: flushed before and after
KEY_PREFIX = "ragqgate"
START_TIMEOUT_S = 120.0
INDEX_TIMEOUT_S = 300.0
STOP_TIMEOUT_S = 20.0
POLL_S = 0.2


class GateError(Exception):
    """The stack or the corpus could not be set up (exit 2)."""


@dataclass(frozen=True)
class CorpusDoc:
    """One manifest entry with its text, as posted to `POST /v1/documents`."""

    id: str
    title: str
    text: str
    metadata: dict[str, Any]


def read_corpus(corpus: Path) -> list[CorpusDoc]:
    """The documents listed in `corpus/manifest.jsonl`, with their texts."""
    manifest = corpus / "manifest.jsonl"
    try:
        lines = manifest.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise GateError(f"cannot read the corpus manifest {manifest}: {exc}") from exc
    docs = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            text = (corpus / entry["path"]).read_text(encoding="utf-8")
            docs.append(
                CorpusDoc(entry["id"], entry["title"], text, dict(entry.get("metadata", {})))
            )
        except (ValueError, KeyError, TypeError, OSError) as exc:
            raise GateError(f"{manifest}:{lineno}: unusable entry: {exc!r}") from exc
    if not docs:
        raise GateError(f"{manifest} lists no documents")
    return docs


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


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def say(message: str) -> None:
    """Progress on stderr (stdout carries the report)."""
    sys.stderr.write(f"eval gate: {message}\n")
    sys.stderr.flush()


@dataclass
class Stack:
    """The processes of the gate's stack; `stop()` ends whatever is still running."""

    logs: Path
    env: dict[str, str]
    url: str = ""
    llm_url: str = ""
    procs: dict[str, asyncio.subprocess.Process] = field(default_factory=dict)

    async def spawn(self, name: str, *args: str) -> None:
        """Start `python -m shared.cli ARGS`, logging to logs/NAME.log."""
        with (self.logs / f"{name}.log").open("ab") as log:
            self.procs[name] = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "shared.cli",
                *args,
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=log,
            )

    async def start_llm(self, *flags: str) -> None:
        """Start the test LLM server (with `flags`) and point ragq at it once it is READY."""
        with (self.logs / "llm.log").open("ab") as log:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                str(ROOT / "scripts" / "testllm.py"),
                "--port",
                "0",
                *flags,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                cwd=ROOT,
            )
        self.procs["llm"] = proc
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT_S)
        except TimeoutError:
            raise GateError("the test LLM did not print READY in time") from None
        words = line.decode().split()
        if len(words) != 2 or words[0] != "READY":
            raise GateError(f"the test LLM did not start (it printed {line!r})")
        self.llm_url = words[1]
        self.env["RAGQ_LLM_BASE_URL"] = f"{self.llm_url}/v1"

    async def start_api(self) -> None:
        """Start the API on a free port and wait until /readyz is 200 (a worker is live)."""
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        await self.spawn("api", "serve", "--port", str(port))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT_S
        async with httpx.AsyncClient(base_url=self.url, timeout=5) as client:
            # across the process boundary there is no event: poll readiness
            while True:
                self._check_alive()
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/readyz")).status_code == 200:
                        return
                if loop.time() > deadline:
                    raise GateError(f"ragq was not ready after {START_TIMEOUT_S:.0f} s")
                await asyncio.sleep(POLL_S)

    def _check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.returncode is not None:
                raise GateError(f"{name} exited with {proc.returncode} during start-up")

    async def create_key(self, tenant: str, *options: str) -> str:
        """Issue an API key with `ragq keys create --tenant TENANT OPTIONS`."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "shared.cli",
            "keys",
            "create",
            "--tenant",
            tenant,
            *options,
            env=self.env,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        if proc.returncode != 0:
            raise GateError(f"ragq keys create failed: {err.decode(errors='replace')[-500:]}")
        return out.decode().strip()

    async def stop(self) -> None:
        """SIGTERM everything still running, then SIGKILL what does not exit in time."""
        for proc in self.procs.values():
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                proc.kill()
                await proc.wait()

    def log_tails(self) -> str:
        """The end of every process log, for failure messages."""
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
            for p in sorted(self.logs.glob("*.log"))
        )


async def ingest(client: httpx.AsyncClient, docs: list[CorpusDoc]) -> None:
    """Post every document, then wait until all are `indexed`; a `failed` one is an error."""
    for doc in docs:
        body = {"id": doc.id, "title": doc.title, "text": doc.text, "metadata": doc.metadata}
        response = await client.post("/v1/documents", json=body)
        if response.status_code != 202:
            raise GateError(
                f"POST /v1/documents {doc.id} answered {response.status_code}: "
                f"{response.text[:300]}"
            )
    pending = {d.id for d in docs}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + INDEX_TIMEOUT_S
    # document status changes in the worker process: there is no event to await, so poll
    while pending:
        statuses = await _statuses(client)
        failed = {i: statuses[i] for i in pending if statuses.get(i, {}).get("status") == "failed"}
        if failed:
            details = "; ".join(f"{i}: {d.get('error')}" for i, d in sorted(failed.items()))
            raise GateError(f"indexing failed for {len(failed)} document(s): {details}")
        pending -= {i for i in pending if statuses.get(i, {}).get("status") == "indexed"}
        if pending and loop.time() > deadline:
            raise GateError(
                f"{len(pending)} document(s) not indexed after {INDEX_TIMEOUT_S:.0f} s: "
                + ", ".join(sorted(pending))
            )
        if pending:
            await asyncio.sleep(POLL_S)


async def _statuses(client: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    """Every document of the tenant by id (all pages of `GET /v1/documents`)."""
    docs: dict[str, dict[str, Any]] = {}
    params: dict[str, Any] = {"limit": 100}
    while True:
        response = await client.get("/v1/documents", params=params)
        if response.status_code != 200:
            raise GateError(f"GET /v1/documents answered {response.status_code}")
        page = response.json()
        docs.update({d["id"]: d for d in page["data"]})
        if not page.get("has_more"):
            return docs
        params["cursor"] = page["next_cursor"]


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
        stack = Stack(logs=Path(tmp), env=env)
        try:
            if args.llm:
                await stack.start_llm()
            await stack.spawn("worker", "worker")
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
        except GateError:
            sys.stderr.write(stack.log_tails() + "\n")
            raise
        finally:
            await stack.stop()
            with contextlib.suppress(Exception):
                await flushdb(args.redis_url)


async def _main(args: argparse.Namespace) -> int:
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)  # CI cancelling: still clean up
    try:
        return await gate(args)
    except GateError as exc:
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
        action=argparse.BooleanOptionalAction,
        default=True,
        help="answer with the test LLM (default); --no-llm: ragq answers extractively",
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
