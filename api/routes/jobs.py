"""Jobs: submit, read (with long poll), cancel, stream events, and submit-and-wait."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, get_args

import structlog
from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import BaseModel
from sse_starlette import EventSourceResponse

from api.deps import ApiKeyDep, ClientsDep, TenantDep
from api.jsonbody import JsonBodyRoute
from api.responses import event_stream as sse_content
from api.responses import header, json_data, numbers_up_to, problems
from api.sse import MAX_EVENT_ID, event_stream, resume_point
from api.submit import submit
from shared.errors import Conflict, NotFound, Timeout
from shared.events import EventName
from shared.jobrecord import JobRecord
from shared.metrics import JOBS_FINISHED
from shared.schemas.jobs import JobCreate, JobPublic, RagCreate, RagResponse

router = APIRouter(prefix="/v1", tags=["jobs"], route_class=JsonBodyRoute)
log = structlog.get_logger("api.jobs")

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)]
# an event number, as api/sse.py reads it: ASCII digits (spaces or tabs around) up to 2^64 - 1
EVENT_ID_PATTERN = rf"^[ \t]*(?:{numbers_up_to(MAX_EVENT_ID)})[ \t]*$"
LastEventId = Annotated[
    str | None, Header(alias="Last-Event-ID", json_schema_extra={"pattern": EVENT_ID_PATTERN})
]
# what the OpenAPI document says of each event of a job's stream
JOB_EVENT: dict[str, Any] = {
    "type": "object",
    "required": ["event", "id", "data"],
    "properties": {
        "event": {"enum": list(get_args(EventName))},
        "id": {"type": "string", "pattern": "^[0-9]+$", "description": "its sequence number"},
        "data": json_data(
            {
                "type": "object",
                "required": ["sequence_number"],
                "properties": {"sequence_number": {"type": "integer", "minimum": 1}},
            }
        ),
    },
}
STREAM_HEADERS = {"Cache-Control": header("`no-store`"), "X-Accel-Buffering": header("`no`")}
EXPIRED_KEY = "The job of this `Idempotency-Key` has expired"
REUSED_KEY = "This `Idempotency-Key` was used with a different request body"
NO_JOB = "No such job (or another tenant's), or it expired"


def _owned(record: JobRecord | None, tenant: str, job_id: str) -> JobRecord:
    """The record if it is the tenant's; another tenant's job is as unknown as a missing one."""
    if record is None or record.tenant != tenant:
        raise NotFound(f"No job {job_id!r}.")
    return record


async def _load(clients: ClientsDep, tenant: str, job_id: str) -> JobRecord:
    return _owned(await clients.jobs.get(job_id), tenant, job_id)


async def _load_with_ttl(clients: ClientsDep, tenant: str, job_id: str) -> tuple[JobRecord, int]:
    """The tenant's job and its record's seconds to live (read with it: a terminal job's
    Cache-Control needs them, and a second round trip would cost every poll)."""
    record, ttl = await clients.jobs.get_with_ttl(job_id)
    return _owned(record, tenant, job_id), ttl


def _json(model: BaseModel, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A model's JSON as pydantic serialises it (no dict in between, no second encoder)."""
    return Response(model.model_dump_json(), status, headers, media_type="application/json")


def _accepted(job: JobPublic) -> Response:
    return _json(job, 202, {"Location": job.links.self})


@router.post(
    "/jobs",
    status_code=202,
    response_model=JobPublic,
    responses={
        202: {"headers": {"Location": header("The job's URL")}},
        **problems({404: EXPIRED_KEY, 409: REUSED_KEY}),
    },
)
async def submit_job(
    request: Request,
    body: JobCreate,
    clients: ClientsDep,
    key: ApiKeyDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Submit a RAG question as a job."""
    job, _ = await submit(request, clients, key, body, idempotency_key)
    return _accepted(job)


@router.get(
    "/jobs/{job_id}",
    response_model=JobPublic,
    responses={
        200: {
            "headers": {
                "Cache-Control": header("`no-store` until terminal, then `private, immutable`"),
                "ETag": header("A terminal job's strong ETag", required=False),
                "Vary": header("`Authorization, X-API-Key` on a terminal job", required=False),
            }
        },
        304: {
            "description": "Not Modified: `If-None-Match` holds the terminal job's ETag",
            "headers": {
                "Cache-Control": header("`private, max-age=<seconds left>, immutable`"),
                "ETag": header("The job's strong ETag"),
                "Vary": header("`Authorization, X-API-Key`"),
            },
        },
        **problems({404: NO_JOB}),
    },
)
async def get_job(
    job_id: str,
    clients: ClientsDep,
    tenant: TenantDep,
    wait: Annotated[float, Query(ge=0, le=30)] = 0,
    if_none_match: Annotated[str | None, Header(alias="If-None-Match")] = None,
) -> Response:
    """Read a job; `wait` holds the request until it is terminal or the seconds pass."""
    record, ttl = await _load_with_ttl(clients, tenant, job_id)
    if wait > 0 and not record.terminal:
        await clients.jobs.wait_terminal(job_id, wait)
        record, ttl = await _load_with_ttl(clients, tenant, job_id)
    job = record.public()
    response = _json(job)
    if not record.terminal:
        response.headers["Cache-Control"] = "no-store"
        return response
    # a terminal job never changes until it expires: cacheable by the client and by the
    # edge, which keys on the credential (docs/API.md, GET /v1/jobs/{id}; deploy/nginx/)
    max_age = ttl if ttl > 0 else clients.settings.result_ttl_s
    etag = f'"{hashlib.sha256(bytes(response.body)).hexdigest()[:32]}"'
    headers = {
        "Cache-Control": f"private, max-age={max_age}, immutable",
        "ETag": etag,
        "Vary": "Authorization, X-API-Key",
    }
    sent = {tag.strip().removeprefix("W/") for tag in (if_none_match or "").split(",")}
    if etag in sent or "*" in sent:
        return Response(status_code=304, headers=headers)
    response.headers.update(headers)
    return response


@router.post(
    "/jobs/{job_id}/cancel",
    response_model=JobPublic,
    responses=problems({404: NO_JOB, 409: "The job has already finished"}),
)
async def cancel_job(job_id: str, clients: ClientsDep, tenant: TenantDep) -> JobPublic:
    """Cancel a queued or running job."""
    record = await _load(clients, tenant, job_id)
    if record.terminal or await clients.jobs.cancel(record) == 0:
        raise Conflict(f"Job {job_id!r} has already finished.")
    if record.status == "queued":  # no worker will ever see it end
        JOBS_FINISHED.labels(queue=record.queue, status="cancelled").inc()
    log.info("job.cancel_requested", job_id=job_id)
    return (await _load(clients, tenant, job_id)).public()


@router.get(
    "/jobs/{job_id}/events",
    response_class=EventSourceResponse,
    responses={
        200: {
            "content": sse_content(JOB_EVENT),
            "description": "Server-Sent Events",
            "headers": STREAM_HEADERS,
        },
        **problems(
            {
                404: NO_JOB,
                422: "`Last-Event-ID` or `starting_after` is no event number, or one a "
                "running job has not reached",
            }
        ),
    },
)
async def job_events(
    job_id: str,
    clients: ClientsDep,
    tenant: TenantDep,
    last_event_id: LastEventId = None,
    starting_after: Annotated[int | None, Query(ge=0, le=MAX_EVENT_ID)] = None,
) -> EventSourceResponse:
    """Stream a job's events: replay from the start (or a resume point), then follow live."""
    record = await _load(clients, tenant, job_id)
    return event_stream(clients, job_id, resume_point(record, last_event_id, starting_after))


@router.post(
    "/rag",
    response_model=RagResponse,
    responses={
        200: {
            "content": sse_content(JOB_EVENT),
            "description": "The answer (JSON), or its events with `stream: true`",
        },
        **problems(
            {
                404: EXPIRED_KEY,
                409: f"{REUSED_KEY}; or the job ended `failed` or `cancelled` (`job_id`)",
                504: "The job is still running after `timeout` seconds (`job_id`)",
            }
        ),
    },
)
async def rag(
    request: Request,
    body: RagCreate,
    clients: ClientsDep,
    key: ApiKeyDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Submit a question and wait for the answer (or stream it with `stream: true`)."""
    tenant = key.tenant
    job, _ = await submit(request, clients, key, body.job(), idempotency_key)
    if body.stream:
        return event_stream(clients, job.id, 0)
    await clients.jobs.wait_terminal(job.id, body.timeout)
    done = (await _load(clients, tenant, job.id)).public()
    extra: dict[str, Any] = {"job_id": job.id}
    if done.status == "completed" and done.result is not None:
        answer = RagResponse.model_validate({"job_id": job.id, **done.result.model_dump()})
        return _json(answer)
    if done.status == "failed":
        message = done.error.message if done.error else "the job failed"
        raise Conflict(f"Job {job.id} failed: {message}", extra=extra)
    if done.status == "cancelled":
        raise Conflict(f"Job {job.id} was cancelled.", extra=extra)
    raise Timeout(
        f"Job {job.id} is still running after {body.timeout:g} s; poll {job.links.self}.",
        extra=extra,
    )
