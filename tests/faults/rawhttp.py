"""A raw HTTP/1.1 client for the hostile-input cases: each case's request sent as the bytes
it is, on a connection of its own (httpx would resolve `..`, refuse NUL bytes in headers
and fix up lengths), and the answer read to the end of the connection."""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
from dataclasses import dataclass, field

from tests.faults.hostile_cases import Case

CASE_TIMEOUT_S = 30.0  # a hang guard, not a measure: every answer here comes at once
CHUNK = b"x" * 65536


@dataclass
class Reply:
    """What came back on the connection: a status and a body, or why nothing did."""

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    hung: bool = False


def wire(case: Case, key: str, fill: dict[bytes, bytes]) -> bytes:
    """The request's head (and body) as bytes, with the placeholders filled in."""

    def filled(raw: bytes) -> bytes:
        for name, value in fill.items():
            raw = raw.replace(name, value)
        return raw

    lines = [case.method + b" " + filled(case.target) + b" HTTP/1.1"]
    headers = [(name, filled(value)) for name, value in case.headers]
    if not any(name.lower() == b"host" for name, _ in headers):
        lines.append(b"Host: ragq.test")
    if case.auth:
        lines.append(b"Authorization: Bearer " + key.encode())
    lines += [name + b": " + value for name, value in headers]
    lines.append(b"Connection: close")
    if case.streamed:
        lines.append(b"Transfer-Encoding: chunked")
    elif case.length and case.body is not None:
        lines.append(b"Content-Length: %d" % len(case.body))
    head = b"\r\n".join(lines) + b"\r\n\r\n"
    return head if case.streamed else head + (case.body or b"")


def parse(raw: bytes) -> Reply:
    """An HTTP/1.1 response read to the end of the connection (chunked bodies joined)."""
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        return Reply()
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        joined, rest = b"", body
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0] or b"0", 16)
            if size == 0:
                break
            joined, rest = joined + rest[:size], rest[size + 2 :]
        body = joined
    return Reply(int(parts[1]), headers, body)


async def exchange(host: str, port: int, request: bytes, case: Case) -> Reply:
    """Send one case on a connection of its own and read the answer to its end.

    A plain non-blocking socket, not asyncio's streams: a server that answers an oversize
    body before reading it all and closes makes the next send fail, and the answer must
    still be read from the socket after that (a stream transport drops it on the error)."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    received = bytearray()
    try:
        async with asyncio.timeout(CASE_TIMEOUT_S):
            await loop.sock_connect(sock, (host, port))
            await loop.sock_sendall(sock, request)
            if case.shape == "hangup":
                return Reply()
            if case.streamed:
                await stream_body(sock, case)
            with contextlib.suppress(ConnectionError):  # a reset after the answer: keep it
                while chunk := await loop.sock_recv(sock, 65536):
                    received.extend(chunk)
    except TimeoutError:
        return Reply(hung=True)
    finally:
        sock.close()
    return parse(bytes(received))


async def stream_body(sock: socket.socket, case: Case) -> None:
    """Send the case's body chunked, then 64 KiB chunks until it has sent `streamed` of
    them or the server has answered (it stops reading a body over the limit)."""
    loop = asyncio.get_running_loop()
    first = case.body or b" "
    with contextlib.suppress(ConnectionError):
        await loop.sock_sendall(sock, b"%x\r\n%s\r\n" % (len(first), first))
        for _ in range(case.streamed):
            answered, _, _ = select.select([sock], [], [], 0)  # a look, not a wait
            if answered:
                return
            await loop.sock_sendall(sock, b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK))
        await loop.sock_sendall(sock, b"0\r\n\r\n")
