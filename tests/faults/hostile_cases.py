"""The hostile-input table: what a fuzzing outsider sends to the API, each request with the
answer docs/API.md gives it. Whole bodies and bad values on every JSON route here; field by
field (and NDJSON) in tests/faults/hostile_fields.py; headers, protocol, oversize bodies,
hang-ups and methods in tests/faults/hostile_raw.py; paths, queries, `Last-Event-ID`s and
uploads in tests/faults/hostile_paths.py.

A case is one HTTP/1.1 request, sent as bytes on a connection of its own. `{job}` and
`{last}` in a target or header stand for a finished job's id and its terminal event's
number, known only once the stack runs; the API key is added unless `auth` is false.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

# problem: problem+json with the status; openai: OpenAI's error body (its routes); server:
# refused by the HTTP server before the app (not HTTP it can parse: a plain-text 400);
# accepted: the request is valid, answered with that status; hangup: the client sends part
# of the body and hangs up, so nothing comes back (the log shows what the API made of it)
Shape = Literal["problem", "openai", "server", "accepted", "hangup"]
Headers = tuple[tuple[bytes, bytes], ...]
JSON_TYPE: Headers = ((b"Content-Type", b"application/json"),)


@dataclass(frozen=True)
class Case:
    """One hostile request and the answer it must get."""

    name: str
    method: bytes
    target: bytes
    body: bytes | None = None
    headers: Headers = JSON_TYPE
    expect: int = 422
    shape: Shape = "problem"
    auth: bool = True
    length: bool = True  # send Content-Length for the body (else the headers say it all)
    streamed: int = 0  # then stream this many 64 KiB chunks, chunked, with no Content-Length


def nested(depth: int, *, leaf: bytes = b"1", array: bool = False) -> bytes:
    """JSON text of `depth` nested objects or arrays around `leaf` (json.dumps recurses)."""
    if array:
        return b"[" * depth + leaf + b"]" * depth
    return b'{"a":' * depth + leaf + b"}" * depth


def js(value: object) -> bytes:
    """A value as compact JSON."""
    return json.dumps(value, separators=(",", ":")).encode()


def with_field(base: dict[str, object], path: tuple[str | int, ...], raw: bytes) -> bytes:
    """`base` as JSON with the value at `path` replaced by the raw JSON text `raw`."""
    tree = json.loads(json.dumps(base))
    node = tree
    for step in path[:-1]:
        node = node.setdefault(step, {}) if isinstance(node, dict) else node[step]
    node[path[-1]] = "@RAW@"
    return json.dumps(tree).encode().replace(b'"@RAW@"', raw)


# route → (a valid body, the status and shape of its invalid requests)
ROUTES: dict[str, tuple[dict[str, object], int, Shape]] = {
    "jobs": ({"question": "q"}, 422, "problem"),
    "rag": ({"question": "q", "timeout": 1}, 422, "problem"),
    "chat": ({"messages": [{"role": "user", "content": "q"}]}, 400, "openai"),
    "documents": ({"text": "t"}, 422, "problem"),
    "documents/status": ({"ids": ["d"]}, 422, "problem"),
    "documents/bulk": ({"documents": [{"text": "t"}]}, 422, "problem"),
}
PATHS = {route: f"/v1/{route}".encode() for route in ROUTES} | {"chat": b"/v1/chat/completions"}

# whole bodies no route may take
MALFORMED: dict[str, bytes] = {
    "truncated": b'{"question": "q"',
    "syntax": b'{"question": }',
    "not-json": b"hello",
    "single-quotes": b"{'question': 'q'}",
    "trailing-comma": b'{"question": "q",}',
    "trailing-garbage": b'{"question": "q"}}',
    "two-values": b'{"question": "q"} {"question": "q"}',
    "comment": b'{"question": "q" /* c */}',
    "array": b"[]",
    "array-of-object": b'[{"question": "q"}]',
    "string": b'"q"',
    "number": b"1",
    "null": b"null",
    "true": b"true",
    "empty": b"",
    "whitespace": b" \r\n\t ",
    "invalid-utf8": b"\xff\xfe\xfd",
    "invalid-utf8-in-string": b'{"question": "\xc3\x28"}',
    "utf8-encoded-surrogate": b'{"question": "\xed\xa0\x80"}',
    "overlong-utf8": b'{"question": "\xc0\xaf"}',
    "raw-nul-in-string": b'{"question": "a\x00b"}',
    "raw-control-in-string": b'{"question": "a\x01b"}',
    "utf16": '{"question": "q"}'.encode("utf-16"),
    "utf32": '{"question": "q"}'.encode("utf-32"),
    "objects-1000": nested(1000),
    "objects-100000": nested(100_000),
    "arrays-1000": nested(1000, array=True),
    "arrays-100000": nested(100_000, array=True),
    "unclosed-arrays-100000": b"[" * 100_000,
    "unclosed-objects-100000": b'{"a":' * 100_000,
    "nan": b"NaN",
    "lone-surrogate-key": b'{"\\ud800": 1}',
}

# values no numeric field may take (strict or lax): non-finite, out of range, not numbers
BAD_NUMBERS: dict[str, bytes] = {
    "nan": b"NaN",
    "infinity": b"Infinity",
    "minus-infinity": b"-Infinity",
    "1e400": b"1e400",
    "minus-1e400": b"-1e400",
    "5000-digits": b"9" * 5000,
    "minus-5000-digits": b"-" + b"9" * 5000,
    "2**64": str(2**64).encode(),
    "list": b"[1]",
    "object": b'{"n": 1}',
    "nested-1000": nested(1000, array=True),
}
NUMERIC_FIELDS: dict[str, tuple[tuple[str | int, ...], ...]] = {
    "jobs": (("top_k",), ("temperature",), ("max_tokens",)),
    "rag": (("timeout",), ("top_k",)),
    "chat": (("temperature",), ("top_k",), ("max_tokens",), ("max_completion_tokens",)),
    "documents/status": (("wait",),),
}

SURROGATE = b'"\\ud800"'
TRAILING_SURROGATE = b'"a\\udfff"'
# fields a string (or a key) reaches: each gets a lone surrogate, deep nesting, NaN
FIELDS: dict[str, tuple[tuple[str | int, ...], ...]] = {
    "jobs": (("question",), ("model",), ("priority",), ("filters", "k"), ("metadata", "k")),
    "rag": (("question",), ("filters", "k"), ("metadata", "k")),
    "chat": (("messages", 0, "content"), ("model",), ("messages", 0, "role")),
    "documents": (("text",), ("title",), ("id",), ("metadata", "k")),
    "documents/status": (("ids", 0),),
    "documents/bulk": (("documents", 0, "text"), ("documents", 0, "metadata", "k")),
}
FIELD_VALUES: dict[str, bytes] = {
    "lone-surrogate": SURROGATE,
    "trailing-surrogate": TRAILING_SURROGATE,
    "objects-1000": nested(1000),
    "arrays-100000": nested(100_000, array=True),
    "nan": b"NaN",
    "1e400": b"1e400",
}
# where a value may be of any type but must be finite and not deep: valid elsewhere
BULK_ITEM_FAILS = frozenset({"1e400"})  # a bad document fails alone, the load is a 200


def body_cases() -> list[Case]:
    """Every malformed body on every JSON route, and every bad value in its fields."""
    cases: list[Case] = []
    for route, (base, status, shape) in ROUTES.items():
        path = PATHS[route]
        for name, body in MALFORMED.items():
            cases.append(Case(f"{route}: {name}", b"POST", path, body, expect=status, shape=shape))
        for field in NUMERIC_FIELDS.get(route, ()):
            for name, raw in BAD_NUMBERS.items():
                label = f"{route}: {'.'.join(map(str, field))}={name}"
                body = with_field(base, field, raw)
                cases.append(Case(label, b"POST", path, body, expect=status, shape=shape))
        for field in FIELDS[route]:
            for name, raw in FIELD_VALUES.items():
                label = f"{route}: {'.'.join(map(str, field))}={name}"
                body = with_field(base, field, raw)
                if route == "documents/bulk" and name in BULK_ITEM_FAILS:
                    cases.append(Case(label, b"POST", path, body, expect=200, shape="accepted"))
                else:
                    cases.append(Case(label, b"POST", path, body, expect=status, shape=shape))
    return cases
