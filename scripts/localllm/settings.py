"""The ragq settings of the local mode: timeouts, concurrency and admission for an engine
that is slow (a CPU, two slots) rather than broken.

What they assume, from the catalog's slowest model (Qwen2.5-1.5B on 2 cores): the first
token 5-15 s after the call (a 600-2,000-token RAG prompt at 100-300 tokens/s of prefill),
then 9-10 tokens/s, so a 512-token answer takes about a minute; a loaded machine may be
three times slower. llama.cpp queues calls beyond its slots, and a queued call is silent
until a slot frees, so ragq sends no more calls than it has slots (each worker runs that
many jobs at once) and waits out one whole answer of silence.
"""

from __future__ import annotations

from scripts.localllm.catalog import LocalModel

# the longest silence between two streamed chunks, the wait for a slot included: one whole
# slow answer (~60 s) with room for a loaded machine
LOCAL_LLM_TIMEOUT_S = 180
# the whole job: 0.85 of it bounds the LLM's reply (workers/jobs/generate.py)
LOCAL_JOB_TIMEOUT_S = 900
# the follow-up rewrite: a prompt of the conversation and at most 96 tokens
LOCAL_CONDENSE_TIMEOUT_S = 120
# at ~1 answer a minute a queue of a few jobs is minutes of wait: admission by depth alone
LOCAL_MAX_QUEUE_WAIT_S = 0


def local_env(model: LocalModel) -> dict[str, str]:
    """The environment of the ragq processes that answer with `model` (the endpoint's URL
    is set by whoever started it)."""
    return {
        "RAGQ_LLM_MODEL": model.name,
        "RAGQ_LLM_TIMEOUT_S": str(LOCAL_LLM_TIMEOUT_S),
        "RAGQ_LLM_CONDENSE_TIMEOUT_S": str(LOCAL_CONDENSE_TIMEOUT_S),
        "RAGQ_JOB_TIMEOUT_S": str(LOCAL_JOB_TIMEOUT_S),
        "RAGQ_WORKER_MAX_JOBS": str(model.parallel),
        "RAGQ_MAX_QUEUE_WAIT_S": str(LOCAL_MAX_QUEUE_WAIT_S),
    }
