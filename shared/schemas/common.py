"""Building blocks shared by the wire models: strict base classes and small value types."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, FiniteFloat, StringConstraints

# A metadata key that a filter can name: what the vector store's `metadata."<key>"` path
# can express (non-empty, no `"`), without control characters (Unicode's Cc: U+0000-U+001F
# and U+007F-U+009F, spelled out so that every regex dialect of a JSON Schema reader, Python's
# `re` included, reads it), of bounded length
MAX_FILTER_KEY_CHARS = 128
FilterKey = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=MAX_FILTER_KEY_CHARS, pattern=r'^[^"\x00-\x1f\x7f-\x9f]+$'
    ),
]
Scalar = str | int | FiniteFloat | bool
Metadata = Annotated[dict[FilterKey, Scalar], Field(max_length=16)]
# For the JSON Schema only: "holds a character that is not whitespace", as a text's own
# check strips it: pydantic's strip (Unicode White_Space) and Python's str.strip(), which
# also strips U+001C-U+001F.
NOT_BLANK_TRIMMED = r"[^\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
NOT_BLANK_STRIPPED = r"[^\t-\r\x1c- \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
TrimmedText = Annotated[
    str,
    StringConstraints(strip_whitespace=True),
    Field(json_schema_extra={"pattern": NOT_BLANK_TRIMMED}),
]

# a job's free-form metadata is stored, enqueued and returned as is: bounded so every layer
# (pydantic's serializer stops at 255 levels, json at ~1000) can handle what was accepted
MAX_METADATA_DEPTH = 8  # levels of objects and arrays, the metadata object included
MAX_METADATA_BYTES = 16 * 1024  # as compact UTF-8 JSON


def _bounded_json(value: dict[str, object]) -> dict[str, object]:
    """Refuse metadata nested deeper than MAX_METADATA_DEPTH or larger than
    MAX_METADATA_BYTES, walking it without recursion (it may be nested arbitrarily deep)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth > MAX_METADATA_DEPTH:
                raise ValueError(f"nested deeper than {MAX_METADATA_DEPTH} levels")
            if isinstance(node, dict) and not all(isinstance(k, str) for k in node):
                raise ValueError("object keys must be strings")
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children)
        elif isinstance(node, float) and not math.isfinite(node):
            raise ValueError("numbers must be finite")
        elif node is not None and not isinstance(node, str | int | float):
            raise ValueError(f"not a JSON value: {type(node).__name__}")
    size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
    if size > MAX_METADATA_BYTES:
        raise ValueError(f"{size} bytes as JSON, over the limit of {MAX_METADATA_BYTES}")
    return value


FreeMetadata = Annotated[dict[str, object], Field(max_length=16), AfterValidator(_bounded_json)]


class StrictModel(BaseModel):
    """A request body: unknown fields and values of the wrong JSON type are refused (no
    coercion: `"5"` and `true` are not integers; an integer is still a valid float)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class WireModel(BaseModel):
    """A response or stored record: tolerant of fields added by newer code."""

    model_config = ConfigDict(extra="ignore")


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def rfc3339(value: datetime) -> str:
    """RFC 3339 UTC text with millisecond precision and a `Z`."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
