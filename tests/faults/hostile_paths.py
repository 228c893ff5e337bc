"""The hostile-input table, addresses and uploads: path tricks in ids (`../`, `%2e%2e`,
`%00`, very long ids, look-alikes), query parameters of the wrong type, garbage
`Last-Event-ID`s on a finished job's stream, and multipart uploads with bad parts."""

from __future__ import annotations

from tests.faults.hostile_cases import Case, Shape, nested
from tests.faults.hostile_raw import HELLO, KIB, MULTIPART, get

PATHS: list[Case] = [
    get("../ in a job id", b"/v1/jobs/../usage", 404),
    get("../ in a document id", b"/v1/documents/../../etc/passwd", 404),
    get("..%2f..", b"/v1/jobs/..%2f..", 404),
    get("..%2f.. then events", b"/v1/jobs/..%2f..%2fusage/events", 404),
    get("%2e%2e", b"/v1/jobs/%2e%2e", 404),
    get("%2e%2e%2f document", b"/v1/documents/%2e%2e%2f%2e%2e%2fetc%2fpasswd", 404),
    get("%00 job id", b"/v1/jobs/%00", 404),
    get("%00 job events", b"/v1/jobs/%00/events", 404),
    get("a%00b document", b"/v1/documents/a%00b", 404),
    get("%00 document content", b"/v1/documents/%00/content", 404),
    get("%ff document id", b"/v1/documents/%ff%fe", 404),
    get("UTF-8-encoded surrogate id", b"/v1/jobs/%ed%a0%80", 404),
    get("fullwidth look-alike job id", b"/v1/jobs/job_%EF%BC%A1", 404),
    get("one-dot leader document id", b"/v1/documents/a%E2%80%A4b", 404),
    get("RTL override document id", b"/v1/documents/%E2%80%AEab", 404),
    get("encoded CRLF in an id", b"/v1/jobs/%0d%0aX-Injected:%201", 404),
    get("encoded space id", b"/v1/jobs/%20", 404),
    get("job id of 8 KiB", b"/v1/jobs/" + b"j" * 8 * KIB, 404),
    get("job id of 60 KiB", b"/v1/jobs/" + b"j" * 60 * KIB, 404),
    get("document id of 60 KiB", b"/v1/documents/" + b"d" * 60 * KIB, 404),
    get("URL of 100 KiB", b"/v1/jobs/" + b"j" * 100 * KIB, 400, shape="server"),
    get("raw non-ASCII in the path", b"/v1/jobs/\xc3\xa9", 400, shape="server"),
    get("raw 0xff in the path", b"/v1/jobs/\xff", 400, shape="server"),
    get("double slash", b"//v1/jobs", 404),
    get("asterisk target", b"*", 404),
    get("absolute-form target", b"http://evil.example/v1/usage", 200, shape="accepted"),
    get("trailing slash redirects", b"/v1/jobs/{job}/", 307, shape="accepted"),
    get("static ../ traversal", b"/static/docs/../../pyproject.toml", 404),
    get("static %2e%2e traversal", b"/static/docs/%2e%2e/%2e%2e/pyproject.toml", 404),
    get("static ..%2f traversal", b"/static/playground/..%2f..%2fapi%2fapp.py", 404),
    get("playground unknown asset", b"/static/playground/%00", 404),
    get("unknown route", b"/v1/admin", 404),
    Case("cancel a%00b", b"POST", b"/v1/jobs/a%00b/cancel", b"", expect=404),
    Case("delete %00", b"DELETE", b"/v1/documents/%00", expect=404),
    Case("delete ..%2fx", b"DELETE", b"/v1/documents/..%2fx", expect=404),
]

_LIMITS = (b"abc", b"0", b"101", b"1e400", b"NaN", b"-1", b"1.5", b"9" * 5000, b"", b"%00")
_WAITS = (b"abc", b"NaN", b"inf", b"-1", b"31", b"1e400", b"9" * 5000)
_AFTERS = (b"abc", b"-1", b"1.5", str(2**64).encode(), b"9" * 5000, b"", b"1e3")
EVENTS = b"/v1/jobs/{job}/events"
QUERIES: list[Case] = [
    *(get(f"limit={v[:12]!r}", b"/v1/documents?limit=" + v, 422) for v in _LIMITS),
    get("cursor of 129 chars", b"/v1/documents?cursor=" + b"c" * 129, 422),
    get("cursor %00", b"/v1/documents?cursor=%00", 200, shape="accepted"),
    get("cursor %ff", b"/v1/documents?cursor=%ff%fe", 200, shape="accepted"),
    get("limit twice", b"/v1/documents?limit=1&limit=2", 200, shape="accepted"),
    get("malformed escapes", b"/v1/documents?%zz=%zz&limit=%", 422),
    *(get(f"wait={v[:12]!r}", b"/v1/jobs/{job}?wait=" + v, 422) for v in _WAITS),
    *(get(f"starting_after={v[:12]!r}", EVENTS + b"?starting_after=" + v, 422) for v in _AFTERS),
    get("starting_after at the end", EVENTS + b"?starting_after={last}", 200, shape="accepted"),
    get("starting_after past the end", EVENTS + b"?starting_after=9{last}", 200, shape="accepted"),
]

_GARBAGE_IDS = (b"abc", b"-1", b"1.5", b"+1", b"0x10", b"1e3", b"9" * 5000, str(2**64).encode())
_ODD_IDS = (b" ", b"1 2", b"\xd9\xa1", b"\xb2", b"\xff" * 100, b"")
# a finished job's stream: at or past its end an empty 200 that ends at once; else replayed
_RESUMES = (b"\t{last}\t", b"{last}", b"9{last}", str(2**64 - 1).encode(), b"0")


def _last_event_id(value: bytes, expect: int, shape: Shape = "problem") -> Case:
    name = f"Last-Event-ID {value[:16]!r}"
    return get(name, EVENTS, expect, (b"Last-Event-ID", value), shape=shape)


LAST_EVENT_IDS: list[Case] = [
    *(_last_event_id(v, 422) for v in _GARBAGE_IDS + _ODD_IDS),
    *(_last_event_id(v, 400, "server") for v in (b"\x00", b"1\x01", b"\x7f")),
    *(_last_event_id(v, 200, "accepted") for v in _RESUMES),
]


def _part(name: bytes, value: bytes) -> bytes:
    return (
        b'--XyZ\r\nContent-Disposition: form-data; name="' + name + b'"\r\n\r\n' + value + b"\r\n"
    )


def _file(filename: bytes, content: bytes, content_type: bytes = b"text/plain") -> bytes:
    return (
        b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="' + filename + b'"\r\n'
        b"Content-Type: " + content_type + b"\r\n\r\n" + content + b"\r\n"
    )


def _upload(name: str, body: bytes, expect: int = 422) -> Case:
    shape: Shape = "accepted" if expect < 400 else "problem"
    return Case(f"upload: {name}", b"POST", b"/v1/documents", body, MULTIPART, expect, shape)


END = b"--XyZ--\r\n"
_METADATA = {
    "1000 deep": nested(1000),
    "100000 deep": nested(100_000),
    "arrays 100000 deep": nested(100_000, array=True),
    "not JSON": b"{",
    "invalid UTF-8": b"\xff\xfe",
    "NaN": b'{"k": NaN}',
    "1e400": b'{"k": 1e400}',
    "a list": b"[1]",
    "null": b"null",
    "lone surrogate": b'{"k": "\\ud800"}',
    "17 keys": b"{" + b",".join(b'"k%d": 1' % i for i in range(17)) + b"}",
}
UPLOADS: list[Case] = [
    *(
        _upload(f"metadata {what}", HELLO + _part(b"metadata", raw) + END)
        for what, raw in _METADATA.items()
    ),
    _upload("id ../x", HELLO + _part(b"id", b"../x") + END),
    _upload("id NUL", HELLO + _part(b"id", b"\x00") + END),
    _upload("title 600 chars", HELLO + _part(b"title", b"t" * 600) + END),
    _upload("file text invalid UTF-8", _file(b"a.txt", b"\xff\xfe") + END),
    _upload("file text empty", _file(b"a.txt", b"") + END),
    _upload("file text with NUL", _file(b"a.txt", b"a\x00b") + END, 415),
    _upload("file .exe", _file(b"a.exe", b"MZ", b"application/octet-stream") + END, 415),
    _upload("file .pdf not a PDF", _file(b"a.pdf", b"hello") + END, 415),
    _upload("file .pdf broken", _file(b"a.pdf", b"%PDF-1.4\n garbage") + END),
    _upload("file .html with NUL", _file(b"a.html", b"<p>a\x00</p>") + END, 415),
    _upload("two files", HELLO + HELLO + END),
    _upload("nine fields", HELLO + b"".join(_part(b"f%d" % i, b"v") for i in range(9)) + END),
    _upload("no file part", _part(b"title", b"t") + END),
    _upload("a file part with no file name", _part(b"file", b"hi") + END),
    _upload("no closing boundary", HELLO),
    _upload("boundary not in the body", b"garbage"),
    _upload("part headers garbage", b"--XyZ\r\n\xff\xfe\r\n\r\nx\r\n" + END),
    Case(
        "upload: no boundary",
        b"POST",
        b"/v1/documents",
        HELLO + END,
        ((b"Content-Type", b"multipart/form-data"),),
    ),
    _upload("file name ../../etc/passwd.txt", _file(b"../../etc/passwd.txt", b"hello") + END, 202),
    _upload("file name %2e%2e%2f", _file(b"%2e%2e%2fx.txt", b"hello") + END, 202),
]

PATH_CASES: list[Case] = PATHS + QUERIES + LAST_EVENT_IDS + UPLOADS
