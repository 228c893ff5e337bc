"""The client's transport-free logic: Retry-After parsing, which failures are retried and
after how long, the counters of what was waited, event-stream resume bookkeeping, the
typed errors of a response, and the ingest flow's outcomes."""

from __future__ import annotations

import random
from datetime import timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from httpx_sse import ServerSentEvent
from tenacity import Retrying

from shared.client import (
    APIConnectionError,
    ClientStats,
    NotFound,
    RateLimited,
    RetryPolicy,
    ServerError,
    StreamResumeError,
)
from shared.client.bulk import BulkResult, StatusList, states_flow
from shared.client.errors import APIStatusError, retry_after_s, status_error
from shared.client.ingest import IngestProgress, ingest_flow
from shared.client.resume import ResumeState
from shared.events import AnswerDelta, JobCancelled
from shared.schemas.common import utcnow


def _problem(status: int, retry_after: str | None = None) -> APIStatusError:
    headers = {"retry-after": retry_after} if retry_after is not None else {}
    body = {"type": "https://ragq.dev/problems/x", "title": "T", "status": status, "detail": "D"}
    return status_error(httpx.Response(status, json=body, headers=headers))


def test_retry_after_reads_seconds_and_http_dates() -> None:
    """Retry-After as delta-seconds or an HTTP date gives seconds; garbage gives None."""
    in_ten = format_datetime(utcnow() + timedelta(seconds=10), usegmt=True)
    assert retry_after_s("3") == 3.0
    assert 8.0 <= (retry_after_s(in_ten) or 0) <= 10.0
    assert retry_after_s("soon") is None
    assert retry_after_s("-1") is None
    assert retry_after_s(None) is None


def test_rate_limit_delay_is_retry_after_plus_bounded_jitter() -> None:
    """A 429's wait is its Retry-After plus at most 20 % (at most 1 s), capped by the
    policy's max wait."""
    policy = RetryPolicy(max_retry_wait_s=30.0, rng=random.Random(7))
    one = [policy.delay(_problem(429, "1"), 0) for _ in range(200)]
    twenty = [policy.delay(_problem(429, "20"), 0) for _ in range(200)]
    capped = RetryPolicy(max_retry_wait_s=20.5).delay(_problem(429, "20"), 0)
    assert all(1.0 <= d <= 1.2 for d in one)
    assert all(20.0 <= d <= 21.0 for d in twenty)
    assert len(set(one)) > 1  # jittered, so concurrent clients do not retry in lockstep
    assert capped <= 20.5


def test_backoff_grows_exponentially_with_jitter_up_to_its_cap() -> None:
    """Transport-error backoff doubles per attempt, jittered within [step/2, step], and
    never passes backoff_max_s."""
    policy = RetryPolicy(backoff_initial_s=0.5, backoff_max_s=4.0, rng=random.Random(3))
    for attempt, step in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (6, 4.0)]:
        delays = [policy.backoff(attempt) for _ in range(100)]
        assert all(step / 2 <= d <= step for d in delays), (attempt, min(delays), max(delays))


@pytest.mark.parametrize(
    ("error", "idempotent", "expected"),
    [
        (_problem(429, "1"), False, True),  # refused before doing anything: any request
        (_problem(503), False, True),
        (_problem(429, "3600"), True, False),  # longer than the max wait: raised, not waited
        (_problem(404), True, False),
        (_problem(401), True, False),
        (_problem(422), True, False),
        (_problem(409), True, False),
        (_problem(500), True, False),
        (APIConnectionError("refused"), True, True),
        (APIConnectionError("refused"), False, False),  # a submit may have happened
    ],
)
def test_which_failures_are_retried(error: Exception, idempotent: bool, expected: bool) -> None:
    """429 and 503 are retried for any request, transport errors only for idempotent ones,
    other statuses never."""
    assert RetryPolicy().retryable(error, idempotent=idempotent) is expected


def _retrying(policy: RetryPolicy, stats: ClientStats, slept: list[float]) -> Retrying:
    return Retrying(sleep=slept.append, **policy.tenacity_options(idempotent=True, stats=[stats]))


def test_waits_on_limits_are_counted_and_the_request_then_succeeds() -> None:
    """Two 429s then an answer: two retries, both counted as rate-limit waits, whose
    seconds are the ones slept."""
    answers: list[Any] = [_problem(429, "2"), _problem(429, "1"), "ok"]
    stats, slept = ClientStats(), []

    def send() -> str:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return str(answer)

    result = _retrying(RetryPolicy(), stats, slept)(send)
    assert result == "ok"
    assert (stats.retries, stats.rate_limited) == (2, 2)
    assert stats.waited_on_limits_s == pytest.approx(sum(slept))
    assert 3.0 <= sum(slept) <= 3.6
    assert stats.waited_on_errors_s == 0


def test_a_4xx_is_raised_at_once_and_retries_stop_at_max_retries() -> None:
    """A 404 is not retried; a request failing every time is tried max_retries + 1 times
    and then raises its own error."""
    stats, slept = ClientStats(), []
    attempts = 0

    def missing() -> None:
        raise _problem(404)

    def down() -> None:
        nonlocal attempts
        attempts += 1
        raise APIConnectionError("refused")

    with pytest.raises(NotFound):
        _retrying(RetryPolicy(max_retries=3), stats, slept)(missing)
    with pytest.raises(APIConnectionError):
        _retrying(RetryPolicy(max_retries=3), stats, slept)(down)
    assert attempts == 4
    assert stats.retries == 3
    assert stats.waited_on_errors_s == pytest.approx(sum(slept))


def test_status_errors_carry_the_problem_and_a_non_json_body_still_maps() -> None:
    """A problem+json answer becomes its typed error with status, type, detail, request
    id and Retry-After; a proxy's HTML 502 becomes a ServerError with its text."""
    body = {"type": "https://ragq.dev/problems/not-found", "title": "Not found", "status": 404}
    missing = status_error(
        httpx.Response(404, json={**body, "detail": "No job", "request_id": "r-1"})
    )
    limited = status_error(
        httpx.Response(429, json={"title": "Slow down"}, headers={"Retry-After": "2"})
    )
    gateway = status_error(httpx.Response(502, text="<html>bad gateway</html>"))
    assert isinstance(missing, NotFound)
    assert (missing.status, missing.type, missing.detail) == (404, body["type"], "No job")
    assert missing.request_id == "r-1"
    assert isinstance(limited, RateLimited)
    assert limited.retry_after == 2.0
    assert isinstance(gateway, ServerError)
    assert "bad gateway" in gateway.detail


def _sse(sequence: int, event: str, data: str) -> ServerSentEvent:
    return ServerSentEvent(event=event, data=data, id=str(sequence))


def test_resume_state_resumes_after_the_last_event_and_drops_repeats() -> None:
    """After events 1 and 2 the next connection asks for events after 2; a replayed event 2
    is not yielded again; an unknown kind is skipped but counted as seen."""
    state = ResumeState("job_1", RetryPolicy(), ClientStats())
    first = state.call()
    got = [
        state.accept(_sse(1, "answer.delta", '{"sequence_number": 1, "delta": "Hel"}')),
        state.accept(_sse(2, "answer.delta", '{"sequence_number": 2, "delta": "lo"}')),
        state.accept(_sse(2, "answer.delta", '{"sequence_number": 2, "delta": "lo"}')),
        state.accept(_sse(3, "answer.future_kind", "{}")),
    ]
    resumed = state.call()
    assert "Last-Event-ID" not in first.headers
    assert resumed.headers["Last-Event-ID"] == "3"
    assert got == [AnswerDelta(delta="Hel"), AnswerDelta(delta="lo"), None, None]
    assert state.done is False


def test_resume_state_ends_at_the_terminal_event() -> None:
    """The terminal event is yielded and marks the stream done."""
    state = ResumeState("job_1", RetryPolicy(), ClientStats(), after=4)
    event = state.accept(_sse(5, "job.cancelled", '{"sequence_number": 5, "job_id": "job_1"}'))
    assert event == JobCancelled(job_id="job_1")
    assert state.done is True


def test_resume_gives_up_after_consecutive_drops_without_a_new_event() -> None:
    """Drops are retried, the first at once; a new event resets the count; N drops in a
    row with nothing new raise StreamResumeError naming the last event."""
    stats = ClientStats()
    state = ResumeState("job_1", RetryPolicy(max_reconnects=2, rng=random.Random(1)), stats)
    first_delays = [state.dropped(), state.dropped()]
    state.accept(_sse(1, "answer.delta", '{"sequence_number": 1, "delta": "a"}'))
    again = state.dropped()
    state.dropped()
    with pytest.raises(StreamResumeError) as gave_up:
        state.dropped()
    assert first_delays[0] == 0.0
    assert 0.25 <= first_delays[1] <= 0.5
    assert again == 0.0
    assert gave_up.value.last_event_id == 1
    assert stats.reconnects == 4


def _bulk(statuses: list[str], offset: int = 0) -> BulkResult:
    return BulkResult.model_validate(
        {
            "data": [
                {
                    "index": i,
                    "id": f"d{offset + i}",
                    "status": s,
                    "error": {"status": 422, "title": "Invalid", "detail": "empty text"}
                    if s == "failed"
                    else None,
                }
                for i, s in enumerate(statuses)
            ]
        }
    )


def test_ingest_flow_batches_waits_and_reports_outcomes_in_input_order() -> None:
    """Five documents in batches of three: two bulk requests, then status polls until the
    queued ones end; outcomes keep input order and carry each failure's error."""
    docs = [{"id": f"d{i}", "text": "x"} for i in range(5)]
    seen: list[IngestProgress] = []
    flow = ingest_flow(docs, batch_size=3, progress=seen.append)
    first = next(flow)
    second = flow.send(_bulk(["queued", "unchanged", "failed"]))
    poll = flow.send(_bulk(["queued", "queued"], offset=3))
    states = [
        {"id": "d0", "status": "indexed"},
        {"id": "d3", "status": "indexing"},
        {"id": "d4", "status": "failed", "error": "no text"},
    ]
    poll_again = flow.send(StatusList.model_validate({"data": states, "pending": 1}))
    with pytest.raises(StopIteration) as done:
        flow.send(StatusList.model_validate({"data": [{"id": "d3", "status": "missing"}]}))
    summary = done.value.value
    assert [len(c.json["documents"]) for c in (first, second)] == [3, 2]
    assert poll.json["ids"] == ["d0", "d3", "d4"]
    assert poll_again.json["ids"] == ["d3"]
    assert [(o.id, o.status) for o in summary.outcomes] == [
        ("d0", "indexed"),
        ("d1", "unchanged"),
        ("d2", "failed"),
        ("d3", "failed"),
        ("d4", "failed"),
    ]
    assert [o.error for o in summary.failures] == [
        "422 empty text",
        "the document was deleted before it was indexed",
        "no text",
    ]
    assert seen[-1] == IngestProgress(sent=5, queued=0, unchanged=1, indexed=1, failed=3, total=5)


def test_states_flow_long_polls_only_what_is_still_pending() -> None:
    """Waiting for states asks again only for documents not yet indexed, failed or
    missing, and returns every state in the order asked."""
    flow = states_flow(["a", "b", "c"], wait=True)
    first = next(flow)
    again = flow.send(
        StatusList.model_validate(
            {
                "data": [
                    {"id": "a", "status": "indexed"},
                    {"id": "b", "status": "indexing"},
                    {"id": "c", "status": "missing"},
                ]
            }
        )
    )
    with pytest.raises(StopIteration) as done:
        flow.send(StatusList.model_validate({"data": [{"id": "b", "status": "indexed"}]}))
    assert first.json == {"ids": ["a", "b", "c"], "wait": 60}
    assert again.json == {"ids": ["b"], "wait": 60}
    assert [(s.id, s.status) for s in done.value.value] == [
        ("a", "indexed"),
        ("b", "indexed"),
        ("c", "missing"),
    ]
