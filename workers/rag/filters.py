"""Qdrant filters over the chunk store's payloads: the tenant scope every query carries,
metadata equality, and document versions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from qdrant_client import models

from shared.schemas.common import Scalar


def search_filter(tenant: str, filters: Mapping[str, Scalar] | None) -> models.Filter:
    """The tenant (always) and every metadata value asked for."""
    must = [tenant_condition(tenant)]
    must += [_metadata_condition(key, value) for key, value in (filters or {}).items()]
    return models.Filter(must=must)


def tenant_condition(tenant: str) -> models.FieldCondition:
    """The tenant's chunks only; an empty tenant is refused, never matched."""
    if not tenant:
        raise ValueError("a tenant is required")
    return equals("tenant", tenant)


def equals(key: str, value: str | int | bool) -> models.FieldCondition:
    """Payload field `key` equals `value`."""
    return models.FieldCondition(key=key, match=models.MatchValue(value=value))


def any_of(key: str, values: Sequence[str]) -> models.FieldCondition:
    """Payload field `key` is one of `values`."""
    return models.FieldCondition(key=key, match=models.MatchAny(any=list(values)))


def _metadata_condition(key: str, value: Scalar) -> models.FieldCondition:
    """Equality on `metadata.<key>`; floats match by a closed range (Qdrant has no float match)."""
    if not key or '"' in key:
        raise ValueError(f"metadata key {key!r} cannot be filtered on")
    simple = all(c.isalnum() or c in "_-" for c in key)
    path = f"metadata.{key}" if simple else f'metadata."{key}"'
    if isinstance(value, float):
        return models.FieldCondition(key=path, range=models.Range(gte=value, lte=value))
    return equals(path, value)
