"""Schemathesis hooks for tests/faults/test_schemathesis.py, loaded by the `schemathesis`
process (`SCHEMATHESIS_HOOKS=tests.faults.schemathesis_hooks`).

They state the request rules that JSON Schema cannot, so that the cases schemathesis calls
valid are valid; every other part of each case is still generated from the document:

- an NDJSON bulk body is documents, one JSON object per line (a `string` in OpenAPI 3.1);
- an uploaded file holds UTF-8 text, sent as `text/plain` (the document says which types
  are read, not how a readable PDF or page looks);
- a chat's last message is the user's question, with text (OpenAI's rule);
- an integer is written as one: JSON Schema calls `5.0` an integer, ragq does not (strict
  on purpose, docs/API.md "Basics"), so an integral float of a valid case is sent as an
  integer (harmless where a float is expected: an integer is a valid float).

And one rule depends on a job's state, not on the request: resuming a running job's events
after a number it has not reached is a 422 (docs/API.md, events). That failure of a valid
case is excused, and only that one; each is written to `$RAGQ_SCHEMATHESIS_EXCUSED`.
"""

from __future__ import annotations

import json
import os
from typing import Any

import schemathesis
from hypothesis import strategies as st

QUESTION = {"role": "user", "content": "How long is the overlap window?"}
TEXT = "text/plain"
EVENTS = "/v1/jobs/{job_id}/events"
NOT_YET = "there is no event"  # api/sse.py's detail for a number a running job has not reached

_key = st.text(
    st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters='"'),
    min_size=1,
    max_size=12,
)
_value = st.one_of(
    st.text(max_size=12), st.integers(-(10**6), 10**6), st.booleans(), st.floats(-1e6, 1e6)
)
_document = st.fixed_dictionaries(
    {"text": st.text(min_size=1, max_size=40).map(lambda text: text + " words")},
    optional={
        "id": st.from_regex(r"\A[A-Za-z0-9_.:-]{1,20}\Z"),
        "title": st.text(max_size=20),
        "metadata": st.dictionaries(_key, _value, max_size=3),
    },
)
_ndjson = st.lists(_document, min_size=1, max_size=3).map(
    lambda docs: "\n".join(json.dumps(doc) for doc in docs).encode()
)
schemathesis.openapi.media_type("application/x-ndjson", _ndjson)


def _integers(value: Any) -> Any:
    """`value` with its integral floats (within float precision) written as integers."""
    if isinstance(value, dict):
        return {key: _integers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_integers(item) for item in value]
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def _positive(case: Any) -> bool:
    meta = case.meta
    return meta is not None and meta.generation.mode.is_positive


def _text_file(data: Any) -> bytes:
    """Generated file bytes made a readable UTF-8 text (no NUL, not blank)."""
    raw = getattr(data, "data", data)
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    # a leading word: bytes that open like a PDF or an image would name the file after it
    return ("notes: " + text.replace("\x00", "").replace("#", "") + " overlap window").encode()


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    """Make the positive cases of the rules above valid; leave negative ones alone."""
    if not _positive(case) or not isinstance(case.body, dict):
        return case
    if case.media_type == "application/json":
        case.body = _integers(case.body)
    if case.path == "/v1/chat/completions" and isinstance(case.body.get("messages"), list):
        case.body["messages"] = [*case.body["messages"], QUESTION]
    elif case.path == "/v1/documents" and "file" in case.body:
        case.body["file"] = _text_file(case.body["file"])
        case.multipart_content_types = {**(case.multipart_content_types or {}), "file": TEXT}
    return case


@schemathesis.hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    """Keep every failure but a valid resume point that the job has not reached yet."""
    if failure.code != "ST202" or case.path != EVENTS or response.status_code != 422:
        return True
    try:
        detail = str(response.json().get("detail", ""))
    except ValueError:
        return True
    if NOT_YET not in detail:
        return True
    if path := os.environ.get("RAGQ_SCHEMATHESIS_EXCUSED"):
        with open(path, "a", encoding="utf-8") as excused:
            excused.write(f"{case.method} {case.formatted_path} {detail}\n")
    return False
