"""Building blocks shared by the wire models: strict base classes and small value types."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Scalar = str | int | float | bool
Metadata = Annotated[dict[str, Scalar], Field(max_length=16)]
FreeMetadata = Annotated[dict[str, object], Field(max_length=16)]
TrimmedText = Annotated[str, StringConstraints(strip_whitespace=True)]


class StrictModel(BaseModel):
    """A request body: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


class WireModel(BaseModel):
    """A response or stored record: tolerant of fields added by newer code."""

    model_config = ConfigDict(extra="ignore")


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def rfc3339(value: datetime) -> str:
    """RFC 3339 UTC text with millisecond precision and a `Z`."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
