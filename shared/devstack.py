"""`ragq dev`: Redis (started if none answers), one API and one worker process, the sample
corpus loaded once, and a ready-to-paste curl. Ctrl-C stops everything it started."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
from asyncio.subprocess import DEVNULL, PIPE, Process
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx

from shared.config import Settings, get_settings

READY_TIMEOUT_S = 150.0
INDEX_TIMEOUT_S = 300.0
DEV_KEY_FILE = Path(".ragq-dev-key")
SAMPLE_QUESTION = "How do I rotate a signing key in vault?"


async def _redis_answers(url: str) -> bool:
    parsed = urlparse(url)
    cli = shutil.which("redis-cli")
    if cli is None:
        return False
    probe = await asyncio.create_subprocess_exec(
        cli,
        "-h",
        parsed.hostname or "127.0.0.1",
        "-p",
        str(parsed.port or 6379),
        "ping",
        stdout=PIPE,
        stderr=DEVNULL,
    )
    out, _ = await probe.communicate()
    return out.decode().strip() == "PONG"


async def _start_redis(settings: Settings) -> Process | None:
    """Start a local redis-server when none answers; None if one already does."""
    if await _redis_answers(settings.redis_url):
        return None
    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit(
            "No Redis answers at RAGQ_REDIS_URL and redis-server is not installed: "
            "install it (Debian: apt-get install redis-server) or point RAGQ_REDIS_URL at one."
        )
    port = urlparse(settings.redis_url).port or 6379
    proc = await asyncio.create_subprocess_exec(
        server,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        stdout=DEVNULL,
    )
    for _ in range(100):
        if await _redis_answers(settings.redis_url):
            _say(f"started redis-server on port {port}")
            return proc
        await asyncio.sleep(0.1)
    proc.terminate()
    raise SystemExit("redis-server did not start")


def _say(message: str) -> None:
    sys.stderr.write(f"ragq dev: {message}\n")


async def _wait_ready(client: httpx.AsyncClient, procs: list[Process]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + READY_TIMEOUT_S
    while loop.time() < deadline:
        if any(p.returncode is not None for p in procs):
            raise SystemExit("ragq dev: a process exited during start-up (see its log above)")
        with contextlib.suppress(httpx.HTTPError):
            if (await client.get("/readyz")).status_code == 200:
                return
        await asyncio.sleep(0.25)
    raise SystemExit(f"ragq dev: not ready after {READY_TIMEOUT_S:.0f} s")


async def _dev_key(client: httpx.AsyncClient) -> str:
    """Reuse the key saved by an earlier run if it still works, else issue one."""
    key = await asyncio.to_thread(_read_text, DEV_KEY_FILE)
    if key:
        check = await client.get(
            "/v1/documents?limit=1", headers={"Authorization": f"Bearer {key}"}
        )
        if check.status_code == 200:
            return key
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "shared.cli", "keys", "create", "--tenant", "dev", stdout=PIPE
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise SystemExit("ragq dev: could not create a dev key")
    key = out.decode().strip()
    await asyncio.to_thread(_write_secret, DEV_KEY_FILE, key)
    return key


def _read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8").strip() if path.exists() else ""


def _write_secret(path: Path, text: str) -> None:
    path.write_text(text + "\n", encoding="utf-8")
    path.chmod(0o600)


def _read_corpus(corpus: Path) -> list[dict[str, Any]]:
    """Manifest entries of the sample corpus, each with its text."""
    manifest = corpus / "manifest.jsonl"
    if not manifest.exists():
        return []
    entries = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    for entry in entries:
        entry["text"] = (corpus / entry["path"]).read_text(encoding="utf-8")
    return entries


async def _load_corpus(client: httpx.AsyncClient, key: str, corpus: Path, *, force: bool) -> None:
    """Post the sample corpus once: documents already indexed are left alone, unless the
    vector store or its collection is new (`force`) while Redis still remembers them."""
    entries = await asyncio.to_thread(_read_corpus, corpus)
    if not entries:
        _say(f"no sample corpus at {corpus}, skipping")
        return
    headers = {"Authorization": f"Bearer {key}"}
    posted = []
    for entry in entries:
        existing = await client.get(f"/v1/documents/{entry['id']}", headers=headers)
        if not force and existing.status_code == 200 and existing.json()["status"] == "indexed":
            continue
        body = {
            "id": entry["id"],
            "title": entry["title"],
            "text": entry["text"],
            "metadata": entry.get("metadata", {}),
        }
        (await client.post("/v1/documents", json=body, headers=headers)).raise_for_status()
        posted.append(entry["id"])
    if not posted:
        return
    _say(f"indexing {len(posted)} sample documents…")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + INDEX_TIMEOUT_S
    while posted and loop.time() < deadline:
        doc = await client.get(f"/v1/documents/{posted[0]}", headers=headers)
        if doc.json()["status"] in {"indexed", "failed"}:
            posted.pop(0)
        else:
            await asyncio.sleep(0.2)


async def _run(args: argparse.Namespace) -> None:
    settings = get_settings()
    base = f"http://{settings.host}:{settings.port}"
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # a marker beside the embedded store says this store and collection hold the corpus
    marker = settings.qdrant_path / f".ragq-dev-corpus-{settings.collection_name}"
    new_store = settings.embedded_qdrant and not await asyncio.to_thread(marker.exists)
    redis = await _start_redis(settings)
    procs: list[Process] = []
    try:
        cli = [sys.executable, "-m", "shared.cli"]
        # the first try shows the curl, not every request line; RAGQ_LOG_LEVEL overrides
        child_env = {**os.environ, "RAGQ_LOG_LEVEL": os.environ.get("RAGQ_LOG_LEVEL", "warning")}
        procs.append(await asyncio.create_subprocess_exec(*cli, "worker", env=child_env))
        procs.append(await asyncio.create_subprocess_exec(*cli, "serve", env=child_env))
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            await _wait_ready(client, procs)
            key = await _dev_key(client)
            await _load_corpus(client, key, Path(args.corpus), force=new_store)
            if settings.embedded_qdrant:
                await asyncio.to_thread(marker.touch)
        sys.stdout.write(
            "\nragq is ready. Ask it something:\n\n"
            f"curl -s {base}/v1/rag -H 'Authorization: Bearer {key}' "
            "-H 'Content-Type: application/json' "
            f'-d \'{{"question": "{SAMPLE_QUESTION}"}}\'\n\n'
            f'or: ragq ask --key {key} "{SAMPLE_QUESTION}"\n'
            "Ctrl-C stops everything.\n"
        )
        sys.stdout.flush()
        waits = [asyncio.create_task(p.wait()) for p in procs]
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait([stopper, *waits], return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
    finally:
        for p in procs:
            if p.returncode is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                await asyncio.wait_for(p.wait(), 30)
            except TimeoutError:
                p.kill()
        if redis is not None:
            redis.terminate()
            await redis.wait()


def run_dev(args: argparse.Namespace) -> int:
    """Run the whole stack in the foreground until Ctrl-C."""
    asyncio.run(_run(args))
    return 0
