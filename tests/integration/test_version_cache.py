"""Document versions a worker remembers per corpus version (shared/versioncache.py): every
lookup reads the tenant's corpus version first, and a publish or a delete moves it, so a
lookup never sees a replaced or deleted document's old version."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from shared.documents import DocumentStore
from shared.redis_keys import Keys
from shared.schemas.documents import DocumentCreate

pytestmark = pytest.mark.integration
TENANT = "acme"


async def _publish(store: DocumentStore, doc_id: str, text: str) -> str:
    doc = DocumentCreate(id=doc_id, title=doc_id, text=text)
    _, version = await store.stage(TENANT, doc, job_id=f"j-{doc_id}")
    assert await store.publish(TENANT, doc_id, version, 1) is not None
    return version


async def test_publish_and_delete_are_seen_at_once_through_the_cache(
    redis: Redis, keys: Keys
) -> None:
    """A cached lookup sees a replace (made by another process's store) and a delete at
    once, and a document that does not exist is absent."""
    store, other = DocumentStore(redis, keys), DocumentStore(redis, keys)
    v1 = await _publish(store, "guide", "first text")
    assert await store.visible_versions(TENANT, ["guide", "gone"], cached=True) == {"guide": v1}
    v2 = await _publish(other, "guide", "second text")
    assert await store.visible_versions(TENANT, ["guide"], cached=True) == {"guide": v2}
    assert await other.delete(TENANT, "guide")
    assert await store.visible_versions(TENANT, ["guide"], cached=True) == {}


async def test_versions_read_under_a_corpus_version_are_not_read_again(
    redis: Redis, keys: Keys
) -> None:
    """A second cached lookup under the same corpus version reads no document record: a
    record changed behind its back (here by hand, which ragq never does without moving the
    corpus version) goes unseen, while an uncached lookup reads it."""
    store = DocumentStore(redis, keys)
    v1 = await _publish(store, "guide", "first text")
    assert await store.visible_versions(TENANT, ["guide"], cached=True) == {"guide": v1}
    await redis.hset(keys.document(TENANT, "guide"), "version", "v-by-hand")
    assert await store.visible_versions(TENANT, ["guide"], cached=True) == {"guide": v1}
    assert await store.visible_versions(TENANT, ["guide"]) == {"guide": "v-by-hand"}
    await redis.incr(keys.corpus(TENANT))
    assert await store.visible_versions(TENANT, ["guide"], cached=True) == {"guide": "v-by-hand"}
