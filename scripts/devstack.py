"""`ragq dev`: Redis (started if none answers), one API and one worker process, the sample
corpus loaded once, and a ready-to-paste curl. Ctrl-C stops everything it started.

The processes come from the harness (`scripts/harness/`) and write to this terminal. Exit
codes: 130 after Ctrl-C (143 after SIGTERM), 1 when the API's port is taken (nothing is
started then) or a process it started exited by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import sys
from pathlib import Path
from urllib.parse import urlparse

import httpx
from redis.asyncio import Redis
from redis.exceptions import RedisError

from scripts.devport import PORT_IN_USE, port_in_use
from scripts.harness import (
    HarnessError,
    Stack,
    document_statuses,
    post_documents,
    read_corpus,
    wait_indexed,
    wait_until,
)
from scripts.localllm.catalog import DEFAULT_MODEL, LocalModel, model_named
from scripts.localllm.settings import local_env
from shared.config import Settings, get_settings

READY_TIMEOUT_S = 150.0
INDEX_TIMEOUT_S = 300.0
REDIS_START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 30.0
DEV_KEY_FILE = Path(".ragq-dev-key")
SAMPLE_QUESTION = "How do I rotate a signing key in vault?"


def _say(message: str) -> None:
    sys.stderr.write(f"ragq dev: {message}\n")


async def _redis_answers(url: str) -> bool:
    client = Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(await client.ping())
    except (RedisError, OSError):
        return False
    finally:
        await client.aclose()


async def _start_redis(stack: Stack, settings: Settings) -> None:
    """Start a local redis-server when none answers at RAGQ_REDIS_URL."""
    if await _redis_answers(settings.redis_url):
        return
    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit(
            "No Redis answers at RAGQ_REDIS_URL and redis-server is not installed: "
            "install it (Debian: apt-get install redis-server) or point RAGQ_REDIS_URL at one."
        )
    port = urlparse(settings.redis_url).port or 6379
    argv = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    await stack.start("redis", argv, stdout="devnull")
    await wait_until(
        lambda: _redis_answers(settings.redis_url),
        timeout_s=REDIS_START_TIMEOUT_S,
        failure="redis-server did not answer",
        processes=stack,
        poll_s=0.1,
    )
    _say(f"started redis-server on port {port}")


def _read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8").strip() if path.exists() else ""


def _write_secret(path: Path, text: str) -> None:
    path.write_text(text + "\n", encoding="utf-8")
    path.chmod(0o600)


async def _dev_key(stack: Stack) -> str:
    """Reuse the key saved by an earlier run if it still works, else issue one."""
    key = await asyncio.to_thread(_read_text, DEV_KEY_FILE)
    if key:
        async with httpx.AsyncClient(base_url=stack.url, timeout=30) as client:
            check = await client.get(
                "/v1/documents?limit=1", headers={"Authorization": f"Bearer {key}"}
            )
        if check.status_code == 200:
            return key
    key = await stack.create_key("dev")
    await asyncio.to_thread(_write_secret, DEV_KEY_FILE, key)
    return key


async def _load_corpus(client: httpx.AsyncClient, corpus: Path, *, force: bool) -> None:
    """Post the sample corpus once: documents already indexed are left alone, unless the
    vector store or its collection is new (`force`) while Redis still remembers them."""
    if not await asyncio.to_thread((corpus / "manifest.jsonl").exists):
        _say(f"no sample corpus at {corpus}, skipping")
        return
    docs = await asyncio.to_thread(read_corpus, corpus)
    known = await document_statuses(client)
    todo = [d for d in docs if force or known.get(d.id, {}).get("status") != "indexed"]
    if not todo:
        return
    await post_documents(client, todo)
    _say(f"indexing {len(todo)} sample documents…")
    try:
        await wait_indexed(client, [d.id for d in todo], timeout_s=INDEX_TIMEOUT_S)
    except HarnessError as exc:  # the stack still answers: say what is missing, go on
        _say(str(exc))


def _ragq() -> str:
    """The `ragq` command as a user can type it: on PATH, else the venv's own path."""
    installed = Path(sys.executable).parent / "ragq"
    on_path = shutil.which("ragq")
    if on_path is not None and Path(on_path).resolve() == installed.resolve():
        return "ragq"
    return str(installed) if installed.exists() else f"{sys.executable} -m scripts.cli"


RAGQ_COMMAND = _ragq()  # looked up once, at import: not on the event loop


def local_model(args: argparse.Namespace) -> LocalModel | None:
    """The local model to answer with: `--llm local` (`--llm-model`, else RAGQ_LOCAL_LLM,
    else the default), or RAGQ_LOCAL_LLM alone; None: ragq's own LLM settings apply."""
    named = args.llm_model or os.environ.get("RAGQ_LOCAL_LLM", "")
    if args.llm == "none" or (args.llm is None and not named):
        return None
    try:
        return model_named(named or DEFAULT_MODEL)
    except KeyError as exc:
        raise SystemExit(f"ragq dev: {exc.args[0]}") from None


def _answers_text(model: LocalModel | None, llm_url: str) -> str:
    if model is None:
        return ""
    return (
        f"Answers are generated by {model.title} (llama.cpp at {llm_url}/v1), on this CPU:"
        " expect the first words in 5-15 s.\n"
    )


def _ready_text(base: str, key: str, answers: str = "") -> str:
    # a CPU model may take a minute or more: the curl waits up to the API's 120 s then
    wait = ', "timeout": 120' if answers else ""
    return (
        f"\nragq is ready. {answers}Ask it something:\n\n"
        f"curl -s {base}/v1/rag -H 'Authorization: Bearer {key}' "
        "-H 'Content-Type: application/json' "
        f'-d \'{{"question": "{SAMPLE_QUESTION}"{wait}}}\'\n\n'
        f'or: {RAGQ_COMMAND} ask --url {base} --key {key} "{SAMPLE_QUESTION}"\n'
        "Ctrl-C stops everything.\n"
    )


def _stop_on(sig: signal.Signals, task: asyncio.Task[int], got: list[signal.Signals]) -> None:
    got.append(sig)
    task.cancel()


async def _stop(stack: Stack) -> None:
    """Stop everything, even when a signal's cancellation was already on its way when the
    handlers were swapped: it is absorbed here rather than cutting the stopping short."""
    stopping = asyncio.ensure_future(stack.stop())
    while not stopping.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(stopping)
    stopping.result()


async def _run(args: argparse.Namespace) -> int:
    settings = get_settings()
    model = local_model(args)
    port = settings.port if args.port is None else args.port
    busy = await port_in_use(settings.host, port)
    if busy is not None:
        _say(busy)
        return PORT_IN_USE
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    got: list[signal.Signals] = []  # the signal that stops us, for the exit code
    for sig in (signal.SIGINT, signal.SIGTERM):
        # at any step: stop what has started
        loop.add_signal_handler(sig, _stop_on, sig, task, got)
    # a marker beside the embedded store says this store and collection hold the corpus
    marker = settings.qdrant_path / f".ragq-dev-corpus-{settings.collection_name}"
    new_store = settings.embedded_qdrant and not await asyncio.to_thread(marker.exists)
    # the first try shows the curl, not every request line; RAGQ_LOG_LEVEL overrides
    env = {**os.environ, "RAGQ_LOG_LEVEL": os.environ.get("RAGQ_LOG_LEVEL", "warning")}
    stack = Stack(  # output to this terminal; the processes run where `ragq dev` was started
        None,
        env,
        cwd=None,
        start_timeout_s=READY_TIMEOUT_S,
        stop_timeout_s=STOP_TIMEOUT_S,
        say=_say,
    )
    code = 0
    try:
        await _start_redis(stack, settings)
        if model is not None:
            stack.env.update(local_env(model))
            _say(f"starting llama.cpp on {model.title}")
            await stack.start_local_llm(model.name)
        await stack.start_worker()
        base = await stack.start_api(host=settings.host, port=port)
        key = await _dev_key(stack)
        auth = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=base, headers=auth, timeout=30) as client:
            await _load_corpus(client, Path(args.corpus), force=new_store)
        if settings.embedded_qdrant:
            await asyncio.to_thread(marker.touch)
        sys.stdout.write(_ready_text(base, key, _answers_text(model, stack.llm_url)))
        sys.stdout.flush()
        exits = {asyncio.create_task(p.wait()): name for name, p in stack.procs.items()}
        done, _ = await asyncio.wait(exits, return_when=asyncio.FIRST_COMPLETED)
        gone = exits[done.pop()]
        _say(f"{gone} exited by itself with code {stack.procs[gone].returncode}; stopping")
        code = 1
    except asyncio.CancelledError:
        # Ctrl-C or SIGTERM: everything is stopped below
        code = 128 + (got[0] if got else signal.SIGINT)
    except HarnessError as exc:
        _say(str(exc))
        code = 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, lambda: None)  # stopping already; it is bounded
        await _stop(stack)
    if got:
        _say("stopped")
    return code


def run_dev(args: argparse.Namespace) -> int:
    """Run the whole stack in the foreground until Ctrl-C (exit 130) or SIGTERM (143)."""
    return asyncio.run(_run(args))
