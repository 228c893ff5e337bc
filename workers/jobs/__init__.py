"""Job functions, one per module, registered here by the names the API enqueues."""

from __future__ import annotations

from arq.worker import func

from shared.redis_keys import ANSWER_JOB, INGEST_JOB, PURGE_JOB
from workers.jobs.answer import answer
from workers.jobs.ingest import ingest, purge_document

FUNCTIONS = [
    func(answer, name=ANSWER_JOB),
    func(ingest, name=INGEST_JOB),
    func(purge_document, name=PURGE_JOB),
]
