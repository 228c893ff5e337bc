"""The real `openai` SDK against ragq's OpenAI-compatible routes: models, a plain and a
streamed chat completion answered from the tenant's documents with their citations, a
follow-up question that retrieves by the conversation, and OpenAI-shaped errors."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.conftest import MakeSettings
from tests.integration.conftest import Answering, ingest
from tests.integration.test_job_path import BILLING

pytestmark = pytest.mark.integration
QUESTION = "How do I rotate a signing key?"


@pytest.fixture
async def sdk(
    api: httpx.AsyncClient, answering: Answering, make_settings: MakeSettings, testllm: str
) -> openai.AsyncOpenAI:
    """An SDK client of ragq (in-process) for a tenant with the rotation and billing
    documents, answered by the test LLM."""
    key = await answering(make_settings(llm_base_url=f"{testllm}/v1"))
    await ingest(api, key, BILLING)
    return openai.AsyncOpenAI(
        base_url=f"{str(api.base_url).rstrip('/')}/v1", api_key=key, http_client=api, max_retries=0
    )


async def test_models_lists_the_tiers_models(sdk: openai.AsyncOpenAI) -> None:
    models = [m.id async for m in sdk.models.list()]
    assert models[0] == "ragq"
    assert "qwen2.5-7b-instruct" in models


async def test_a_completion_answers_from_the_documents_with_citations(
    sdk: openai.AsyncOpenAI,
) -> None:
    """Plain and streamed: the same answer, finished with `stop`, citing the rotation
    document in the `citations` extension field, with the call's token usage."""
    messages: list[dict[str, str]] = [{"role": "user", "content": QUESTION}]
    plain = await sdk.chat.completions.create(model="ragq", messages=messages)  # type: ignore[arg-type]
    stream = await sdk.chat.completions.create(model="ragq", messages=messages, stream=True)  # type: ignore[arg-type]
    chunks = [chunk async for chunk in stream]
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    extension = plain.model_extra or {}
    assert plain.choices[0].message.content
    assert plain.choices[0].finish_reason == "stop"
    assert extension["citations"][0]["document_id"] == "key-rotation"
    assert plain.usage is not None
    assert plain.usage.completion_tokens > 0
    assert streamed == plain.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert (chunks[-1].model_extra or {})["citations"] == extension["citations"]


async def _cited(sdk: openai.AsyncOpenAI, *turns: str) -> str:
    messages = []
    for i, turn in enumerate(turns):
        messages.append({"role": "user", "content": turn})
        if i < len(turns) - 1:
            messages.append({"role": "assistant", "content": "Here is what I found."})
    reply = await sdk.chat.completions.create(
        model="ragq",
        messages=messages,  # type: ignore[arg-type]
        extra_body={"top_k": 1},
    )
    return str((reply.model_extra or {})["citations"][0]["document_id"])


async def test_a_follow_up_retrieves_by_the_conversation(sdk: openai.AsyncOpenAI) -> None:
    """'and what if it fails?' alone finds the rotation document (it speaks of failing);
    after a question about invoices it is a follow-up, and finds the invoices one."""
    alone = await _cited(sdk, "and what if it fails?")
    follow_up = await _cited(sdk, "When are invoices generated?", "and what if it fails?")
    assert (alone, follow_up) == ("key-rotation", "invoices")


async def test_errors_have_openais_shape(sdk: openai.AsyncOpenAI, api: httpx.AsyncClient) -> None:
    """A bad key is the SDK's AuthenticationError, a conversation not ending with the
    user's question its BadRequestError; both bodies are {"error": {...}}."""
    stranger = openai.AsyncOpenAI(
        base_url=f"{str(api.base_url).rstrip('/')}/v1",
        api_key="rq_nobody",
        http_client=api,
        max_retries=0,
    )
    with pytest.raises(openai.AuthenticationError) as denied:
        await stranger.models.list()
    with pytest.raises(openai.BadRequestError) as bad:
        await sdk.chat.completions.create(
            model="ragq",
            messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "?"}],
        )
    with pytest.raises(openai.BadRequestError) as empty:
        await sdk.chat.completions.create(model="ragq", messages=[])
    assert isinstance(denied.value.body, dict)
    assert denied.value.body["type"] == "authentication_error"
    assert isinstance(bad.value.body, dict)
    assert bad.value.body["message"] == "The last message must be the user's question."
    assert empty.value.status_code == 400
