"""`ragq ingest` against a running stack: folders read recursively (text in bulk, PDF and
HTML uploaded), unreadable files skipped with a line each and a summary, `--wait` until
indexed, a second run skipping what is unchanged, a rate limit waited out."""

from __future__ import annotations

import asyncio
import json
import re
import signal
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from scripts import harness
from scripts.harness.stack import RAGQ
from tests.e2e.conftest import Stack, auth
from tests.e2e.test_cli import _ragq
from tests.integration.pdfs import make_pdf

pytestmark = pytest.mark.e2e


def _corpus(root: Path) -> None:
    (root / "guides").mkdir()
    (root / "guides" / "rotation.md").write_text("# Rotation\n\nRotate keys with atlas rollout.\n")
    (root / "faq.txt").write_text("Invoices are generated on the first of the month.\n")
    (root / "deploy.html").write_text(
        "<html><head><title>Deploy guide</title></head><body><h1>Deploy</h1>"
        "<p>Deploy with the canary lane.</p></body></html>"
    )
    (root / "manual.pdf").write_bytes(make_pdf([["Backups run nightly at two."]]))
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n")  # not a document: ignored
    (root / "latin1.md").write_bytes("café".encode("latin-1"))


async def test_ingest_wait_loads_a_folder_then_skips_it_unchanged(
    stack: Stack, tmp_path: Path
) -> None:
    """Every readable document is indexed (and listed under its path id), the Latin-1 file is
    skipped with a line, the exit code says something was not loaded; the second run sends
    nothing new."""
    await stack.start_worker()
    await stack.start_api()
    key = await stack.create_key("acme")
    root = tmp_path / "docs"
    root.mkdir()
    _corpus(root)
    summary = tmp_path / "summary.json"
    argv = ["ingest", str(root), "--wait", "--url", stack.url, "--key", key]
    code, _, err = await _ragq(*argv, "--summary-json", str(summary))
    assert code == 1, err  # one file was skipped
    assert f"skipped: {root / 'latin1.md'}: not UTF-8 text" in err.splitlines()
    assert re.search(
        r"^ragq ingest: 5 files: 4 indexed, 0 unchanged, 0 failed, 1 skipped "
        r"\(1 other files in the folders ignored\); ",
        err,
        re.M,
    ), err
    first = json.loads(summary.read_text())
    assert (first["indexed"], first["failed"], first["skipped"]) == (4, 0, 1)

    async with httpx.AsyncClient(base_url=stack.url, headers=auth(key), timeout=30) as client:
        listed = (await client.get("/v1/documents", params={"limit": 100})).json()["data"]
    assert {(d["id"], d["status"]) for d in listed} == {
        ("guides:rotation", "indexed"),
        ("faq", "indexed"),
        ("deploy", "indexed"),
        ("manual", "indexed"),
    }

    (root / "latin1.md").unlink()
    code, _, err = await _ragq(*argv, "--summary-json", str(summary))
    assert code == 0, err
    again = json.loads(summary.read_text())
    assert (again["unchanged"], again["indexed"], again["queued"]) == (4, 0, 0), err


async def test_ingest_refuses_a_binary_file_named_pdf(stack: Stack, tmp_path: Path) -> None:
    """A PNG named .pdf is reported failed with the API's reason; exit 1."""
    await stack.start_worker()
    await stack.start_api()
    key = await stack.create_key("acme")
    fake = tmp_path / "x.pdf"
    fake.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    code, _, err = await _ragq("ingest", str(fake), "--wait", "--url", stack.url, "--key", key)
    assert code == 1
    assert re.search(rf"^failed: {re.escape(str(fake))}: 415 ", err, re.M), err
    assert "0 indexed, 0 unchanged, 1 failed" in err


async def test_ingest_waits_out_the_rate_limit(stack: Stack, tmp_path: Path, redis: Redis) -> None:
    """A key whose minute is spent (by requests made 57 s ago, written into its log so the
    test waits 3 s, not a minute): the client waits on Retry-After instead of failing,
    then everything is indexed, exit 0."""
    await stack.start_worker()
    await stack.start_api()
    key = await stack.create_key("acme", "--rpm", "20")
    async with httpx.AsyncClient(base_url=stack.url) as client:
        assert (await client.get("/v1/usage", headers=auth(key))).status_code == 200
    [log] = [k async for k in redis.scan_iter(match="ragqtest:ratelimit:*")]
    seconds, micros = await redis.time()
    aged = seconds * 1_000_000 + micros - 57_000_000
    await redis.zadd(log, {f"earlier-{n}": aged for n in range(19)})
    docs = tmp_path / "docs"  # tmp_path also holds the stack's logs and Qdrant folder
    docs.mkdir()
    for n in range(3):
        (docs / f"page-{n}.html").write_text(f"<h1>Page {n}</h1><p>Topic number {n}.</p>")
    (docs / "notes.md").write_text("# Notes\n\nSome notes.\n")
    summary = tmp_path / "summary.json"
    argv = ["ingest", str(docs), "--wait", "--url", stack.url, "--key", key]
    code, _, err = await _ragq(*argv, "--summary-json", str(summary), "--no-progress")
    result = json.loads(summary.read_text())
    assert code == 0, err
    assert (result["indexed"], result["failed"]) == (4, 0)
    assert result["rate_limited"] >= 1
    assert result["waited_on_limits_s"] > 0


async def test_ctrl_c_says_what_was_sent_and_how_to_go_on(
    stack: Stack, tmp_path: Path, redis: Redis
) -> None:
    """Interrupted while it waits out the rate limit, ingest says how many files the API
    received and that running it again loads the rest; exit 130, no traceback."""
    await stack.start_worker()
    await stack.start_api()
    key = await stack.create_key("acme", "--rpm", "2")
    docs = tmp_path / "docs"  # tmp_path also holds the stack's logs and Qdrant folder
    docs.mkdir()
    (docs / "notes.md").write_text("# Notes\n\nSome notes.\n")
    for n in range(2):
        (docs / f"page-{n}.html").write_text(f"<h1>Page {n}</h1><p>Topic {n}.</p>")
    process = await asyncio.create_subprocess_exec(
        *RAGQ,
        "ingest",
        str(docs),
        "--url",
        stack.url,
        "--key",
        key,
        stderr=asyncio.subprocess.PIPE,
    )

    async def limit_spent() -> bool:
        # the bulk request, then the status read of the uploads: the key's 2 requests of
        # the minute are spent, so the first upload waits out the window, which is when a
        # user presses Ctrl-C (the client has read the bulk answer by then)
        sets = [k async for k in redis.scan_iter(match="ragqtest:ratelimit:*")]
        return len(sets) == 1 and await redis.zcard(sets[0]) == 2

    await harness.wait_until(limit_spent, timeout_s=60, failure="the key's limit was not spent")
    process.send_signal(signal.SIGINT)
    _, err = await process.communicate()
    assert process.returncode == 130
    assert "Traceback" not in err.decode()
    assert err.decode().strip().splitlines()[-1] == (
        "ragq ingest: interrupted after sending 1 of 3 files; what was sent goes on being "
        "indexed. Run the same command again to load the rest (unchanged files are skipped)."
    )
