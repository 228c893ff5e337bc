"""The playground at `/`, driven in headless Chromium against real ragq processes with
everything outside ragq blocked: it loads clean, streams an answer with its citations,
indexes dropped files and shows document text inert, however hostile."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse
from playwright.async_api import Page, expect

from tests.e2e.browser import needs_chromium, offline_page, screenshot_path
from tests.e2e.conftest import Stack, auth, finished

pytestmark = [pytest.mark.e2e, needs_chromium]
UI_TIMEOUT_MS = 120_000  # a loaded 2-core machine indexes and answers slowly
TITLE = "ragq playground"
expect.set_options(timeout=30_000)  # each step of the page, on a loaded machine
ROTATION = {
    "id": "key-rotation",
    "title": "Rotating signing keys",
    "text": (
        "# Rotating signing keys\n\n"
        "Rotate a signing key with vault keys rotate and keep both keys valid during the "
        "overlap window, which defaults to seventy two hours for every service in the fleet. "
        "More text follows here.\n\n## Errors\n\n"
        "A pinned consumer makes the rotation fail with error VLT-4031 until it is unpinned by "
        "its owning team through the consumers command of the vault tool. Then retry.\n"
    ),
}


async def _running(stack: Stack, *llm_flags: str, llm: bool = True) -> str:
    """Start the stack (the test LLM with `llm_flags` first when `llm`); a key of acme."""
    if llm:
        await stack.start_llm(*llm_flags)
    await stack.start_worker()
    await stack.start_api()
    return await stack.create_key("acme")


async def _use_key(page: Page, url: str, key: str) -> None:
    """Open the playground and enter the key; return once the tenant's usage shows."""
    await page.goto(url)
    await page.fill("#key-input", key)
    await page.click("#key-use")
    await expect(page.locator("#usage")).to_have_attribute("data-tenant", "acme")


async def _ask(page: Page, question: str) -> None:
    """Ask in the page and wait until the answer and its citations are rendered."""
    await page.fill("#question", question)
    await page.click("#ask")
    await expect(page.locator("#answer")).to_have_attribute(
        "data-state", "completed", timeout=UI_TIMEOUT_MS
    )
    await expect(page.locator("#citations")).to_have_attribute(
        "data-state", "ready", timeout=UI_TIMEOUT_MS
    )


async def _rendered_citations(page: Page) -> list[dict[str, Any]]:
    """Each listed citation as the page shows it."""
    rendered: list[dict[str, Any]] = await page.locator("#citations > li").evaluate_all(
        """items => items.map(li => ({
            index: li.querySelector('.cite-index').textContent,
            title: li.querySelector('.cite-title').textContent,
            mark: li.querySelector('mark').textContent,
            context: li.querySelector('.passage').dataset.context,
        }))"""
    )
    return rendered


async def _delta_count(client: httpx.AsyncClient, job_id: str) -> int:
    """How many `answer.delta` events the job's stream holds."""
    async with aconnect_sse(client, "GET", f"/v1/jobs/{job_id}/events") as source:
        return sum([e.event == "answer.delta" async for e in source.aiter_sse()])


async def test_page_loads_offline_with_the_key_form(stack: Stack) -> None:
    """`/` renders with nothing from outside ragq and no console error; a refused key is
    one readable line, and a good key is kept in sessionStorage only, never in the URL."""
    key = await _running(stack, llm=False)
    async with offline_page(stack.url) as (page, outside):
        await page.goto(f"{stack.url}/")
        await expect(page.locator("body")).to_have_attribute("data-ready", "true")
        form_visible = await page.locator("#key-form #key-input[type=password]").is_visible()
        clean_errors = list(outside.errors)
        await page.fill("#key-input", "not-a-key")
        await page.click("#key-use")
        await expect(page.locator("#notice")).to_be_visible()
        refused = await page.locator("#notice").text_content()
        await page.fill("#key-input", key)
        await page.click("#key-use")
        await expect(page.locator("#usage")).to_have_attribute("data-tenant", "acme")
        stored = await page.evaluate(
            "() => [sessionStorage.getItem('ragq.apiKey'), localStorage.length, location.href]"
        )
        notice_hidden = await page.locator("#notice").is_hidden()
        await page.screenshot(path=screenshot_path("playground-load"), full_page=True)
    assert outside.blocked == []
    assert clean_errors == []
    assert form_visible
    assert refused is not None
    assert refused.startswith("The API key was refused: The API key is unknown or revoked.")
    assert all("401" in error for error in outside.errors), outside.errors  # the refused key
    assert stored == [key, 0, f"{stack.url}/"]
    assert notice_hidden


async def test_question_streams_into_the_page_with_citations(stack: Stack) -> None:
    """The answer grows delta by delta (one render per `answer.delta` event) into the job's
    answer, and each citation shows its title with exactly the cited range highlighted."""
    key = await _running(stack, "--token-latency-ms", "120")
    await stack.index(key, ROTATION)
    async with offline_page(stack.url) as (page, outside):
        await _use_key(page, stack.url, key)
        # every text the answer shows, recorded as the DOM changes (not sampled: no race)
        await page.evaluate(
            """() => {
                window.__seen = [];
                new MutationObserver(() => {
                    const text = document.querySelector('#answer .answer-text');
                    if (text) window.__seen.push(text.textContent);
                }).observe(document.getElementById('answer'),
                           {childList: true, subtree: true, characterData: true});
            }"""
        )
        await _ask(page, "How do I rotate a signing key?")
        job_id = await page.locator("#answer").get_attribute("data-job-id")
        shown = await page.locator("#answer .answer-text").text_content()
        rendered_deltas = await page.locator("#answer").get_attribute("data-deltas")
        seen: list[str] = await page.evaluate("() => window.__seen")
        citations = await _rendered_citations(page)
        degraded = await page.locator("[data-role=degraded]").count()
        await expect(page.locator(f"#jobs li[data-job-id='{job_id}']")).to_have_attribute(
            "data-status", "completed"
        )
        await page.screenshot(path=screenshot_path("playground-stream"), full_page=True)
    assert job_id is not None
    async with httpx.AsyncClient(base_url=stack.url, headers=auth(key), timeout=60) as client:
        job = await finished(client, job_id)
        deltas = await _delta_count(client, job_id)
        content = (await client.get(f"/v1/documents/{ROTATION['id']}/content")).text
    result = job["result"]
    states = list(dict.fromkeys(seen))  # each distinct text once, in the order shown
    assert outside.blocked == []
    assert outside.errors == []
    assert shown == result["answer"]
    assert deltas > 2
    assert rendered_deltas == str(deltas)
    assert len(states) >= 3  # two partial answers at least, then the whole one
    assert all(result["answer"].startswith(state) for state in states)
    assert [len(s) for s in states] == sorted({len(s) for s in states})
    assert degraded == 0
    assert citations == [
        {
            "index": f"[{c['index']}]",
            "title": c["title"],
            "mark": content[c["start"] : c["end"]],
            "context": "document",
        }
        for c in result["citations"]
    ]
    assert [c["mark"] for c in citations] == [c["text"] for c in result["citations"]]


DROPPED = (
    "# Glacier tokens\n\n"
    "Every glacier token expires after nineteen minutes and is renewed by the "
    "permafrost daemon running on port 7719.\n"
)
PICKED = "Coffee is served on the third floor between nine and eleven.\n"


async def test_dropped_file_is_indexed_and_cited(stack: Stack) -> None:
    """A .md file dropped on the zone and a .txt file picked with the file input are each
    followed to "indexed" in the page and listed, while a picked .png shows its 415; a
    question only the dropped file answers is answered from it and cites it, with the
    passage highlighted."""
    key = await _running(stack)
    async with offline_page(stack.url) as (page, outside):
        await _use_key(page, stack.url, key)
        await page.set_input_files(
            "#file-input",
            files=[
                {"name": "coffee.txt", "mimeType": "text/plain", "buffer": PICKED.encode()},
                {"name": "photo.png", "mimeType": "image/png", "buffer": b"\x89PNG\r\n"},
            ],
        )
        await page.evaluate(
            """([name, text]) => {
                const zone = document.getElementById('drop-zone');
                const files = new DataTransfer();
                files.items.add(new File([text], name, {type: 'text/markdown'}));
                for (const type of ['dragenter', 'dragover', 'drop']) {
                    zone.dispatchEvent(new DragEvent(type, {
                        dataTransfer: files, bubbles: true, cancelable: true}));
                }
            }""",
            ["glacier.md", DROPPED],
        )
        for name in ("glacier.md", "coffee.txt"):
            await expect(page.locator(f"#uploads li[data-file='{name}']")).to_have_attribute(
                "data-status", "indexed", timeout=UI_TIMEOUT_MS
            )
        refused = page.locator("#uploads li[data-file='photo.png']")
        await expect(refused).to_have_attribute("data-status", "failed")
        refusal = await refused.locator(".upload-message").text_content()
        statuses = await page.locator("#uploads li [data-role=status]").all_text_contents()
        titles = page.locator("#documents .document-title")
        await expect(titles).to_have_count(2)  # the list reloads as each one is indexed
        listed = await titles.all_text_contents()
        await _ask(page, "How long does a glacier token last?")
        answer = await page.locator("#answer .answer-text").text_content()
        citations = await _rendered_citations(page)
        await page.screenshot(path=screenshot_path("playground-drop"), full_page=True)
    glacier = [c for c in citations if c["title"] == "Glacier tokens"]
    assert outside.blocked == []
    assert sorted(statuses) == ["failed", "indexed", "indexed"]
    assert refusal is not None
    assert refusal.startswith("415 Unsupported media type: ")
    assert [e for e in outside.errors if "415" not in e] == []  # the browser logs the 415
    assert sorted(listed) == ["Glacier tokens", "coffee"]  # a heading, else the file name
    assert answer is not None
    assert "nineteen minutes" in answer
    assert len(glacier) == 1
    assert f"{glacier[0]['index']}" in answer
    assert "expires after nineteen minutes" in glacier[0]["mark"]


HOSTILE_TITLE = "Notes <img src=x onerror=\"window.__pwned=1;document.title='pwned'\">"
HOSTILE = {
    "id": "hostile",
    "title": HOSTILE_TITLE,
    "text": (
        "# Quarantine notes\n\n"
        "The quarantine phrase is <script>window.__pwned = 2; document.title = 'pwned';"
        "</script> and it stays literal.\n\n"
        'The quarantine image is <img src=x onerror="window.__pwned=3;'
        "document.title='pwned'\"> shown as text.\n"
    ),
}


async def test_hostile_document_text_renders_inert(stack: Stack) -> None:
    """Markup in a document's title and text (a script, an img with onerror) is shown as
    literal text in the list, the answer and the cited passage; nothing of it runs, no
    element is made from it and nothing is fetched for it. With no LLM the answer is
    visibly marked as extractive."""
    key = await _running(stack, llm=False)
    await stack.index(key, HOSTILE)
    async with offline_page(stack.url) as (page, outside):
        await _use_key(page, stack.url, key)
        await expect(page.locator("#documents .document-title")).to_have_text(HOSTILE_TITLE)
        await _ask(page, "What is the quarantine phrase and the quarantine image?")
        marks = await page.locator("#citations mark").all_text_contents()
        passage = await page.locator("#citations .passage").first.inner_text()
        answer = await page.locator("#answer .answer-text").text_content()
        degraded = page.locator("#answer-meta [data-role=degraded]")
        await expect(degraded).to_have_text("Extractive answer: no LLM is configured")
        reason = await degraded.get_attribute("data-reason")
        job_id = await page.locator("#answer").get_attribute("data-job-id")
        effects = await page.evaluate(
            """() => ({pwned: window.__pwned === undefined ? null : window.__pwned,
                       title: document.title,
                       images: document.images.length,
                       scripts: Array.from(document.scripts, s => s.getAttribute('src'))})"""
        )
        await page.screenshot(path=screenshot_path("playground-inert"), full_page=True)
    assert job_id is not None
    async with httpx.AsyncClient(base_url=stack.url, headers=auth(key), timeout=60) as client:
        job = await finished(client, job_id)
    assert outside.blocked == []
    assert outside.errors == []  # a CSP violation would have been reported here too
    assert effects == {
        "pwned": None,
        "title": TITLE,
        "images": 0,
        "scripts": ["/static/playground/app.js"],
    }
    assert not any(url.endswith("/x") for url in outside.requested), outside.requested
    assert marks == [c["text"] for c in job["result"]["citations"]]
    assert "<script>window.__pwned = 2;" in passage
    assert "<img src=x onerror=" in passage
    assert answer == job["result"]["answer"]
    assert reason == "no_llm_configured"
    assert job["result"]["degraded_reason"] == "no_llm_configured"
