"""Document versions a worker remembers per corpus version (shared/versioncache.py): a
publish or a delete moves the corpus version, so the next question never sees the old one."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from shared.answercache import AnswerCache
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


async def test_publish_and_delete_are_seen_by_the_next_corpus_version(
    redis: Redis, keys: Keys
) -> None:
    """Versions read under one corpus version are reused for it; after a replace the new
    version is visible and after a delete the document is gone, while another process's
    store (no cache of its own yet) agrees at every step."""
    store, other = DocumentStore(redis, keys), DocumentStore(redis, keys)
    corpus = AnswerCache(redis, keys, ttl_s=60)
    v1 = await _publish(store, "guide", "first text")
    c1 = await corpus.corpus_version(TENANT)
    assert await store.visible_versions(TENANT, ["guide", "gone"], corpus=c1) == {"guide": v1}

    v2 = await _publish(other, "guide", "second text")
    c2 = await corpus.corpus_version(TENANT)
    assert c2 != c1
    assert await store.visible_versions(TENANT, ["guide"], corpus=c2) == {"guide": v2}

    assert await other.delete(TENANT, "guide")
    c3 = await corpus.corpus_version(TENANT)
    assert await store.visible_versions(TENANT, ["guide"], corpus=c3) == {}
    assert await other.visible_versions(TENANT, ["guide"]) == {}


async def test_versions_read_under_a_corpus_version_are_not_read_again(
    redis: Redis, keys: Keys
) -> None:
    """A second question under the same corpus version reads no document record: the
    records can change behind its back (here by hand, which ragq never does) unseen."""
    store = DocumentStore(redis, keys)
    v1 = await _publish(store, "guide", "first text")
    c1 = await AnswerCache(redis, keys, ttl_s=60).corpus_version(TENANT)
    assert await store.visible_versions(TENANT, ["guide"], corpus=c1) == {"guide": v1}
    await redis.hset(keys.document(TENANT, "guide"), "version", "v-by-hand")
    assert await store.visible_versions(TENANT, ["guide"], corpus=c1) == {"guide": v1}
    assert await store.visible_versions(TENANT, ["guide"]) == {"guide": "v-by-hand"}
