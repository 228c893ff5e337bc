"""Wire models of the Jobs section of docs/API.md, also used as job payloads."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field

from shared.schemas.common import FreeMetadata, Metadata, StrictModel, TrimmedText, WireModel

JobStatus = Literal["queued", "in_progress", "completed", "failed", "cancelled"]
TERMINAL_STATUSES: frozenset[str] = frozenset({"completed", "failed", "cancelled"})
DegradedReason = Literal[
    "llm_unavailable",
    "llm_timeout",
    "budget_exhausted",
    "circuit_open",
    "no_llm_configured",
    "ungrounded",
]
Priority = Literal["interactive", "batch"]

MAX_QUESTION_CHARS = 4000
# a conversation is context for one short condensation call, not a transcript to store
MAX_CONVERSATION_TURNS = 20
MAX_TURN_CHARS = 4000
MAX_CONVERSATION_CHARS = 16000  # all turns' content together


class Turn(StrictModel):
    """One earlier turn of the conversation a question ends."""

    role: Literal["user", "assistant"]
    content: Annotated[TrimmedText, Field(min_length=1, max_length=MAX_TURN_CHARS)]


def _bounded_conversation(turns: list[Turn]) -> list[Turn]:
    total = sum(len(t.content) for t in turns)
    if total > MAX_CONVERSATION_CHARS:
        raise ValueError(
            f"the turns hold {total} characters together, over the limit of "
            f"{MAX_CONVERSATION_CHARS}"
        )
    return turns


Conversation = Annotated[
    list[Turn], Field(max_length=MAX_CONVERSATION_TURNS), AfterValidator(_bounded_conversation)
]


class JobCreate(StrictModel):
    """`POST /v1/jobs` body. `conversation` holds the turns before `question` (not the
    question itself); with an LLM configured, the worker rewrites `question` as a standalone
    question in their light before retrieval (docs/API.md, Jobs)."""

    question: Annotated[TrimmedText, Field(min_length=1, max_length=MAX_QUESTION_CHARS)]
    top_k: Annotated[int, Field(ge=1, le=50)] = 5
    filters: Metadata = Field(default_factory=dict)
    temperature: Annotated[float, Field(ge=0, le=2)] = 0.0
    max_tokens: Annotated[int, Field(ge=1, le=4096)] = 512
    model: str | None = None
    priority: Priority = "interactive"
    metadata: FreeMetadata = Field(default_factory=dict)
    conversation: Conversation = Field(default_factory=list)


class RagCreate(JobCreate):
    """`POST /v1/rag` body: a job plus how to wait for it."""

    stream: bool = False
    timeout: Annotated[float, Field(ge=1, le=120)] = 60

    def job(self) -> JobCreate:
        """The job part of the request."""
        return JobCreate.model_validate(self.model_dump(exclude={"stream", "timeout"}))


class Citation(WireModel):
    """A chunk the answer was built from, numbered as the answer cites it."""

    index: int
    document_id: str
    chunk_id: str
    title: str
    text: str
    start: int
    end: int
    score: float
    rank: int
    section: str | None = None


class Usage(WireModel):
    """Token counts reported by the LLM."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class JobResult(WireModel):
    """The outcome of a completed job."""

    answer: str
    citations: list[Citation]
    model: str | None
    cached: bool = False
    degraded: bool = False
    degraded_reason: DegradedReason | None = None
    # true: cites a given passage; false: passages were given, it cites none and is no
    # refusal; null: nothing to check (no passages, or it says it found nothing)
    grounded: bool | None = None
    removed_markers: list[str] = Field(default_factory=list)  # as the LLM wrote them
    # appended by ragq to an answer that cited nothing but whose every sentence is found in
    # these passages (workers/rag/attribution.py)
    added_markers: list[str] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float = 0.0
    timings_ms: dict[str, int] = Field(default_factory=dict)


class JobError(WireModel):
    """Why a job failed."""

    type: str
    message: str


class JobLinks(WireModel):
    """Where to find a job and what to do with it."""

    self: str
    events: str
    cancel: str


class JobPublic(WireModel):
    """The job object of docs/API.md."""

    id: str
    object: Literal["job"] = "job"
    status: JobStatus
    created_at: str
    started_at: str | None = None
    completed_at: str | None = None
    request: JobCreate
    result: JobResult | None = None
    error: JobError | None = None
    links: JobLinks


class RagResponse(WireModel):
    """`POST /v1/rag` answer when it does not stream."""

    job_id: str
    answer: str
    citations: list[Citation]
    degraded: bool
    degraded_reason: DegradedReason | None = None
    grounded: bool | None = None
    added_markers: list[str] = Field(default_factory=list)
    cached: bool
    usage: Usage
    cost_usd: float


class AnswerJobPayload(WireModel):
    """What the API enqueues for an answer job: ids and the request, never secrets."""

    job_id: str
    tenant: str
    request_id: str
    request: JobCreate
    tenant_budget_usd: float | None = None  # the submitting key's daily budget for its tenant
    request_digest: str | None = None  # set for cacheable (temperature 0) requests
    tier: str = "default"  # the submitting key's tier: which LLM target answers (shared/tiers.py)


def job_links(job_id: str) -> dict[str, Any]:
    """The `links` object of a job."""
    base = f"/v1/jobs/{job_id}"
    return {"self": base, "events": f"{base}/events", "cancel": f"{base}/cancel"}
