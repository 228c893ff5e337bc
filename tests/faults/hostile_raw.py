"""The hostile-input table, below the bodies: headers (huge, many, NUL and control bytes,
odd credentials), HTTP the server cannot parse, declared and streamed oversize bodies,
clients that hang up mid-body, and methods a route does not serve. Paths, queries,
`Last-Event-ID`s and uploads are in tests/faults/hostile_paths.py."""

from __future__ import annotations

from tests.faults.hostile_cases import JSON_TYPE, Case, Headers, Shape

KIB = 1024
MULTIPART: Headers = ((b"Content-Type", b"multipart/form-data; boundary=XyZ"),)
HELLO = (
    b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n'
    b"Content-Type: text/plain\r\n\r\nhello\r\n"
)


def get(
    name: str,
    target: bytes,
    expect: int,
    *headers: tuple[bytes, bytes],
    shape: Shape = "problem",
    auth: bool = True,
) -> Case:
    """A GET (or any bodiless request) with these headers."""
    return Case(name, b"GET", target, None, headers, expect, shape, auth)


def bad_http(name: str, *headers: tuple[bytes, bytes], auth: bool = True) -> Case:
    """A GET the HTTP server refuses before the app: its plain-text 400."""
    return get(name, b"/v1/usage", 400, *headers, shape="server", auth=auth)


def post(
    name: str,
    path: bytes,
    body: bytes | None,
    expect: int,
    *headers: tuple[bytes, bytes],
    shape: Shape = "problem",
    streamed: int = 0,
) -> Case:
    """A POST whose headers say all about its body (no Content-Length added)."""
    return Case(name, b"POST", path, body, headers, expect, shape, length=False, streamed=streamed)


def length(value: bytes) -> tuple[bytes, bytes]:
    """A Content-Length header of this value."""
    return (b"Content-Length", value)


def key(value: bytes) -> tuple[bytes, bytes]:
    """An X-API-Key header."""
    return (b"X-API-Key", value)


CT = JSON_TYPE[0]
MANY = tuple((b"X-H%d" % i, b"v") for i in range(5000))
WIDE = tuple((b"X-P%d" % i, b"x" * KIB) for i in range(40))
HEADERS: list[Case] = [
    get("header of 64 KiB", b"/healthz", 431, (b"X-Big", b"x" * 64 * KIB)),
    get("header of 1 MiB", b"/healthz", 431, (b"X-Big", b"x" * KIB * KIB)),
    get("5000 headers", b"/v1/usage", 431, *MANY),
    get("40 headers of 1 KiB", b"/v1/usage", 431, *WIDE),
    get("key of 64 KiB", b"/v1/usage", 431, (b"Authorization", b"Bearer " + b"k" * 64 * KIB)),
    get("host of 64 KiB", b"/healthz", 431, (b"Host", b"h" * 64 * KIB)),
    bad_http("NUL in a header value", (b"X-A", b"a\x00b")),
    bad_http("NUL in the key", key(b"k\x00"), auth=False),
    bad_http("NUL in a header name", (b"X-\x00", b"a")),
    bad_http("CR in a header value", (b"X-A", b"a\rb")),
    bad_http("control byte in a header", (b"X-A", b"\x01")),
    bad_http("space in a header name", (b"X A", b"1")),
    bad_http("non-ASCII header name", (b"X-\xc3\x9c", b"1")),
    bad_http("header with no name", (b"", b"novalue")),
    get("no key", b"/v1/usage", 401, auth=False),
    get("Basic credentials", b"/v1/usage", 401, (b"Authorization", b"Basic YTpi"), auth=False),
    get("Bearer and no key", b"/v1/usage", 401, (b"Authorization", b"Bearer"), auth=False),
    get("non-ASCII key", b"/v1/usage", 401, key(b"\xff\xfe"), auth=False),
    get("key of the wrong shape", b"/v1/usage", 401, key(b"rq_" + b"0" * 200), auth=False),
    get("key with look-alikes", b"/v1/usage", 401, key("rq_ｋ".encode()), auth=False),
    get(
        "request id of 10 KiB",
        b"/v1/usage",
        200,
        (b"X-Request-ID", b"r" * 10 * KIB),
        shape="accepted",
    ),
    get("request id non-ASCII", b"/v1/usage", 200, (b"X-Request-ID", b"\xff"), shape="accepted"),
    get(
        "If-None-Match garbage",
        b"/v1/jobs/{job}",
        200,
        (b"If-None-Match", b'W/"\xff", *x, ,,'),
        shape="accepted",
    ),
    get("HTTP/2.0 request line", b"/healthz HTTP/2.0\r\nX-Ignored: 1", 200, shape="accepted"),
]

JOBS, CHAT, DOCS = b"/v1/jobs", b"/v1/chat/completions", b"/v1/documents"
JSON_POSTS = (JOBS, b"/v1/rag", DOCS, b"/v1/documents/bulk", b"/v1/documents/status")
HUGE = length(b"99999999999")
BODIES: list[Case] = [
    *(post(f"declared oversize {p.decode()}", p, None, 413, CT, HUGE) for p in JSON_POSTS),
    post("declared oversize chat", CHAT, None, 413, CT, HUGE, shape="openai"),
    post("declared 1 MiB + 1 on jobs", JOBS, None, 413, CT, length(str(KIB * KIB + 1).encode())),
    post("Expect 100-continue, oversize", JOBS, None, 413, CT, (b"Expect", b"100-continue"), HUGE),
    post("declared oversize upload", DOCS, None, 413, *MULTIPART, length(b"30000000")),
    *(
        post(f"streamed oversize {p.decode()}", p, None, 413, CT, streamed=340 if p != JOBS else 20)
        for p in JSON_POSTS
    ),
    post("streamed oversize chat", CHAT, None, 413, CT, shape="openai", streamed=20),
    post("streamed oversize upload", DOCS, HELLO[:-2], 413, *MULTIPART, streamed=340),
    post("Content-Length 24 digits", JOBS, None, 400, CT, length(b"9" * 24), shape="server"),
    post("Content-Length negative", JOBS, None, 400, CT, length(b"-1"), shape="server"),
    post("Content-Length letters", JOBS, None, 400, CT, length(b"abc"), shape="server"),
    post("two Content-Lengths", JOBS, b"{}", 400, CT, length(b"2"), length(b"3"), shape="server"),
    post(
        "Content-Length and chunked",
        JOBS,
        b"0\r\n\r\n",
        400,
        CT,
        length(b"5"),
        (b"Transfer-Encoding", b"chunked"),
        shape="server",
    ),
    post(
        "bad chunk size",
        JOBS,
        b"zz\r\nabc\r\n0\r\n\r\n",
        400,
        CT,
        (b"Transfer-Encoding", b"chunked"),
        shape="server",
    ),
    post(
        "Transfer-Encoding gzip",
        JOBS,
        b"",
        400,
        CT,
        (b"Transfer-Encoding", b"gzip"),
        shape="server",
    ),
    Case("binary garbage for a method", b"\x16\x03\x01\x02\x00", b"/", expect=400, shape="server"),
]

# a client that sends part of a body and hangs up: no answer to read; the log shows the rest
HANGUPS: list[Case] = [
    *(
        post(
            f"hang-up mid-body {p.decode()}",
            p,
            b'{"question": "',
            0,
            CT,
            length(b"1000"),
            shape="hangup",
        )
        for p in (*JSON_POSTS, CHAT)
    ),
    post("hang-up mid-upload", DOCS, HELLO[:60], 0, *MULTIPART, length(b"1000"), shape="hangup"),
]

ROUTES_405 = (JOBS, b"/v1/rag", b"/v1/documents/bulk")
METHODS: list[Case] = [
    *(
        Case(f"{m.decode()} {p.decode()}", m, p, expect=405)
        for m in (b"PUT", b"PATCH", b"DELETE", b"OPTIONS", b"TRACE")
        for p in ROUTES_405
        if (m, p) != (b"DELETE", b"/v1/documents/bulk")
    ),
    Case("DELETE the document 'bulk'", b"DELETE", b"/v1/documents/bulk", expect=404),
    Case("POST a job", b"POST", b"/v1/jobs/{job}", b"{}", expect=405),
    Case(
        "HEAD a job (FastAPI serves no HEAD)", b"HEAD", b"/v1/jobs/{job}", None, (), 405, "accepted"
    ),
    Case("GET rag", b"GET", b"/v1/rag", expect=405),
    Case("GET chat", b"GET", CHAT, expect=405, shape="openai"),
    Case("DELETE usage", b"DELETE", b"/v1/usage", expect=405),
    Case("POST healthz", b"POST", b"/healthz", b"{}", expect=405),
    Case("unknown method", b"FROB", JOBS, expect=400, shape="server"),
    Case("lowercase method", b"get", b"/v1/usage", expect=400, shape="server"),
    Case("CONNECT", b"CONNECT", b"127.0.0.1:443", expect=400, shape="server"),
]

RAW_CASES: list[Case] = HEADERS + BODIES + HANGUPS + METHODS
