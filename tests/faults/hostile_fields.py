"""The hostile-input table, field by field: values a route refuses (with its status), values
that look odd but are valid, and bodies of another content type."""

from __future__ import annotations

from tests.faults.hostile_cases import PATHS, ROUTES, Case, Headers, Shape, js, nested

J, R, C, D, S, B = "jobs", "rag", "chat", "documents", "documents/status", "documents/bulk"
USER = {"role": "user", "content": "q"}
Q = {"question": "q"}
TEXT = {"text": "t"}
LETTERS17 = dict.fromkeys("abcdefghijklmnopq", 1)
TURN = {"role": "user", "content": "x"}

# (route, what, body): refused with the route's status (422, or 400 on the chat route)
REFUSED: list[tuple[str, str, dict[str, object] | bytes]] = [
    (J, "question empty", {"question": ""}),
    (J, "question blank", {"question": " \t\n "}),
    (J, "question 4001 chars", {"question": "q" * 4001}),
    (J, "question list", {"question": ["q"]}),
    (J, "question null", {"question": None}),
    (J, "top_k string", {**Q, "top_k": "5"}),
    (J, "top_k bool", {**Q, "top_k": True}),
    (J, "top_k 0", {**Q, "top_k": 0}),
    (J, "top_k 1.5", {**Q, "top_k": 1.5}),
    (J, "priority urgent", {**Q, "priority": "urgent"}),
    (J, "unknown field", {**Q, "admin": True}),
    (J, "17 filters", {**Q, "filters": LETTERS17}),
    (J, "filter key with a quote", {**Q, "filters": {'a"': 1}}),
    (J, "filter key with NUL", {**Q, "filters": {"a\x00": 1}}),
    (J, "filter value an object", {**Q, "filters": {"a": {}}}),
    (J, "metadata 9 deep", b'{"question": "q", "metadata": ' + nested(9) + b"}"),
    (J, "metadata over 16 KiB", {**Q, "metadata": {"b": "x" * 16384}}),
    (J, "conversation an object", {**Q, "conversation": {}}),
    (J, "conversation system turn", {**Q, "conversation": [{"role": "system", "content": "x"}]}),
    (J, "21 turns", {**Q, "conversation": [TURN] * 21}),
    (R, "stream a string", {**Q, "stream": "true"}),
    (R, "timeout 0", {**Q, "timeout": 0}),
    (R, "timeout 121", {**Q, "timeout": 121}),
    (C, "messages an object", {"messages": {}}),
    (C, "no messages", {"messages": []}),
    (C, "role wizard", {"messages": [{"role": "wizard", "content": "q"}]}),
    (
        C,
        "last message the assistant's",
        {"messages": [USER, {"role": "assistant", "content": "a"}]},
    ),
    (C, "content a number", {"messages": [{"role": "user", "content": 5}]}),
    (C, "content blank", {"messages": [{"role": "user", "content": " \n"}]}),
    (C, "content parts of numbers", {"messages": [{"role": "user", "content": [1, 2]}]}),
    (
        C,
        "content part text surrogate",
        b'{"messages": [{"role": "user", "content": [{"type": "text", "text": "\\ud800"}]}]}',
    ),
    (
        C,
        "extra field 1000 deep",
        b'{"messages": [{"role": "user", "content": "q"}], "x": ' + nested(1000) + b"}",
    ),
    (
        C,
        "message extra field 1000 deep",
        b'{"messages": [{"role": "user", "content": "q", "x": ' + nested(1000, array=True) + b"}]}",
    ),
    (C, "unknown model", {"messages": [USER], "model": "nope"}),
    (D, "id ../x", {**TEXT, "id": "../x"}),
    (D, "id %2e%2e", {**TEXT, "id": "%2e%2e"}),
    (D, "id a/b", {**TEXT, "id": "a/b"}),
    (D, "id NUL", {**TEXT, "id": "\x00"}),
    (D, "id 129 chars", {**TEXT, "id": "d" * 129}),
    (D, "id fullwidth look-alike", {**TEXT, "id": "ｄｏｃ"}),
    (D, "id one-dot leader", {**TEXT, "id": "a\u2024b"}),
    (D, "id right-to-left override", {**TEXT, "id": "\u202eab"}),
    (D, "id empty", {**TEXT, "id": ""}),
    (D, "text empty", {"text": ""}),
    (D, "text blank", {"text": " \n\t"}),
    (D, "text a number", {"text": 5}),
    (D, "title 501 chars", {**TEXT, "title": "x" * 501}),
    (D, "17 metadata keys", {**TEXT, "metadata": LETTERS17}),
    (D, "metadata value an object", {**TEXT, "metadata": {"k": {"a": 1}}}),
    (D, "metadata key with a quote", {**TEXT, "metadata": {'k"': 1}}),
    (D, "unknown field", {**TEXT, "owner": "x"}),
    (S, "no ids", {"ids": []}),
    (S, "id 129 chars", {"ids": ["d" * 129]}),
    (S, "id a number", {"ids": [5]}),
    (S, "wait 61", {"ids": ["d"], "wait": 61}),
    (B, "no documents", {"documents": []}),
    (B, "documents an object", {"documents": {}}),
    (B, "skip_unchanged a string", {"documents": [TEXT], "skip_unchanged": "yes"}),
    (B, "unknown field", {"documents": [TEXT], "x": 1}),
    (B, "NaN in one document", b'{"documents": [{"text": "t", "metadata": {"k": NaN}}]}'),
]

# (route, what, body, status): valid however odd it looks, or refused with another status
OTHER: list[tuple[str, str, dict[str, object] | bytes, int]] = [
    (J, "duplicate keys (the last wins)", b'{"question": "a", "question": "b"}', 202),
    (J, "escaped NUL in the question", {"question": "a\x00b"}, 202),
    (J, "escaped NUL in metadata", {**Q, "metadata": {"\x00": "\x00"}}, 202),
    (J, "look-alike and bidi characters", {"question": "ｑ\u202e\u2024"}, 202),
    (J, "separators Python strips, pydantic keeps", {"question": "\x1c\x1d\x1e\x1f"}, 202),
    (D, "escaped NUL in text and title", {"text": "a\x00b", "title": "\x00"}, 202),
    (S, "odd ids are missing", {"ids": ["\x00", "../x", "ｄ", "%2e%2e"]}, 200),
    (S, "501 ids", {"ids": ["d"] * 501}, 413),
    (B, "501 documents", {"documents": [TEXT] * 501}, 413),
    (
        B,
        "odd items fail alone",
        {"documents": [1, None, [], {"text": ""}, {**TEXT, "id": "../x"}]},
        200,
    ),
    (
        B,
        "a repeated id fails alone",
        {"documents": [{**TEXT, "id": "d"}, {**TEXT, "id": "d"}]},
        200,
    ),
]

# (route, what, content type, body): a body of another kind
PLAIN = b"text/plain"
FORM = b"application/x-www-form-urlencoded"
TYPED: list[tuple[str, str, bytes | None, bytes, int]] = [
    (J, "text/plain", PLAIN, js(Q), 422),
    (J, "a form", FORM, b"question=q", 422),
    (J, "multipart", b"multipart/form-data; boundary=x", b"--x--\r\n", 422),
    (J, "a garbage content type", b"\xff/\xfe; ;;=", js(Q), 422),
    (J, "JSON as latin-1", b"application/json; charset=latin-1", b'{"question": "\xe9"}', 422),
    (R, "text/plain", PLAIN, js(Q), 422),
    (C, "text/plain", PLAIN, js({"messages": [USER]}), 400),
    (D, "text/plain", PLAIN, b"t", 415),
    (D, "no content type", None, js(TEXT), 415),
    (D, "a form", FORM, b"text=t", 415),
    (D, "multipart/mixed", b"multipart/mixed; boundary=x", b"--x--\r\n", 415),
    (S, "text/plain", PLAIN, js({"ids": ["d"]}), 422),
    (B, "text/plain", PLAIN, b"t", 415),
    (B, "no content type", None, js({"documents": [TEXT]}), 415),
]

# NDJSON bulk loads: one document per line; a line that is not JSON refuses the whole load
DOC_LINE = b'{"text": "t"}\n'
NDJSON: list[tuple[str, bytes, int]] = [
    ("a line 1000 deep", DOC_LINE + nested(1000) + b"\n", 422),
    ("a line 100000 deep", DOC_LINE + nested(100_000, array=True), 422),
    ("a line unclosed 100000 deep", DOC_LINE + b'{"a":' * 100_000, 422),
    ("a line invalid UTF-8", DOC_LINE + b'{"text": "\xff"}', 422),
    ("a line with NaN", b'{"text": "t", "metadata": {"k": NaN}}', 422),
    ("a line with a lone surrogate", b'{"text": "\\ud800"}', 422),
    ("a line of garbage", DOC_LINE + b"garbage\n", 422),
    ("two documents on a line", b'{"text": "a"} {"text": "b"}', 422),
    ("blank lines only", b"\n \r\n\t\n", 422),
    ("501 lines", DOC_LINE * 501, 413),
    ("odd lines fail alone", DOC_LINE + b"[1]\nnull\n" + nested(150) + b"\n", 200),
    ("CRLF lines", b'{"text": "a"}\r\n{"text": "b"}\r\n', 200),
]


def field_cases() -> list[Case]:
    """The rows above as cases."""
    cases: list[Case] = []
    for route, what, body in REFUSED:
        _, status, shape = ROUTES[route]
        raw = body if isinstance(body, bytes) else js(body)
        cases.append(
            Case(f"{route}: {what}", b"POST", PATHS[route], raw, expect=status, shape=shape)
        )
    for route, what, body, status in OTHER:
        raw = body if isinstance(body, bytes) else js(body)
        shape = "accepted" if status < 400 else ROUTES[route][2]
        cases.append(
            Case(f"{route}: {what}", b"POST", PATHS[route], raw, expect=status, shape=shape)
        )
    for route, what, content_type, raw, status in TYPED:
        headers: Headers = () if content_type is None else ((b"Content-Type", content_type),)
        cases.append(
            Case(
                f"{route}: {what} body",
                b"POST",
                PATHS[route],
                raw,
                headers,
                status,
                ROUTES[route][2],
            )
        )
    ndjson: Headers = ((b"Content-Type", b"application/x-ndjson"),)
    for what, raw, status in NDJSON:
        kind: Shape = "accepted" if status < 400 else "problem"
        cases.append(Case(f"ndjson: {what}", b"POST", PATHS[B], raw, ndjson, status, kind))
    return cases
