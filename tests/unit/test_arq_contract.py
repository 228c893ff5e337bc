"""What ragq takes for granted about arq (pinned 0.28.*): its key layout, its job payload,
and the members `workers/runtime.py` overrides or calls. An arq release that changes one
fails here, not silently in production."""

from __future__ import annotations

import inspect
import json

import arq
import arq.constants
from arq.jobs import deserialize_job_raw, serialize_job
from arq.worker import Retry, RetryJob, Worker

from shared.clients import make_redis
from shared.queue import ARQ_JOB_PREFIX, arq_payload, json_dumps, json_loads
from tests.conftest import MakeSettings
from workers.main import WorkerSettings
from workers.runtime import RagqWorker


def test_arq_is_the_pinned_release() -> None:
    """ragq builds on arq 0.28 internals; another release must be re-checked first."""
    assert arq.VERSION.startswith("0.28.")


def test_key_layout_is_the_one_ragq_writes() -> None:
    """The API enqueues by writing arq's keys itself: job and lock prefixes are arq's."""
    assert (arq.constants.job_key_prefix, arq.constants.in_progress_key_prefix) == (
        ARQ_JOB_PREFIX,
        "arq:in-progress:",
    )


def test_ragq_payload_is_what_arq_serializes_and_reads() -> None:
    """The payload the API writes equals arq's own serialisation of the same job (JSON),
    and arq's reader gives back the function, the argument and the enqueue time."""
    body, score = arq_payload("answer", {"job_id": "job_1"})
    expected = serialize_job(
        "answer", ({"job_id": "job_1"},), {}, None, score, serializer=json_dumps
    )
    function, args, kwargs, job_try, enqueued = deserialize_job_raw(body, deserializer=json_loads)
    assert json.loads(body) == json.loads(expected)
    assert (function, list(args), kwargs, job_try, enqueued) == (
        "answer",
        [{"job_id": "job_1"}],
        {},
        None,
        score,
    )


def test_overridden_members_keep_their_signatures() -> None:
    """The arq methods RagqWorker overrides or calls take the arguments it passes."""
    wanted = {
        "main": ["self"],
        "start_jobs": ["self", "job_ids"],
        "run_job": ["self", "job_id", "score"],
        "finish_failed_job": ["self", "job_id", "result_data"],
        "_poll_iteration": ["self"],
        "_release_sem_dec_counter_on_complete": ["self"],
        "close": ["self"],
    }
    found = {name: list(inspect.signature(getattr(Worker, name)).parameters) for name in wanted}
    assert found == wanted
    assert all(name in vars(RagqWorker) for name in ("main", "start_jobs", "run_job", "close"))


async def test_worker_state_ragq_reads_is_set_by_arq(make_settings: MakeSettings) -> None:
    """The slot accounting and task table RagqWorker's start_jobs maintains are arq's
    attributes, and the lock TTL it shortens is the one arq's start_jobs would use."""
    settings = make_settings(lock_ttl_s=7)
    notify = make_redis(settings)  # never connected: main() does not run here
    worker = RagqWorker(**WorkerSettings.for_queue(settings, "interactive"), notify_redis=notify)
    await notify.aclose()
    state = {
        "sem": type(worker.sem).__name__,
        "job_counter": worker.job_counter,
        "tasks": worker.tasks,
        "in_progress_timeout_s": worker.in_progress_timeout_s,
        "allow_pick_jobs": worker.allow_pick_jobs,
        "retry_jobs": worker.retry_jobs,
    }
    assert state == {
        "sem": "BoundedSemaphore",
        "job_counter": 0,
        "tasks": {},
        "in_progress_timeout_s": 7.0,
        "allow_pick_jobs": True,
        "retry_jobs": True,
    }


def test_retry_and_rerun_exceptions_are_arqs() -> None:
    """A job interrupted by a Redis outage raises arq's Retry, which arq re-queues with a
    delay; RetryJob and CancelledError are what it re-queues without one."""
    assert issubclass(Retry, RuntimeError)
    assert Retry(defer=2).defer_score == 2000
    assert issubclass(RetryJob, RuntimeError)
