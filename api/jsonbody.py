"""The route class of every router whose routes take a JSON body model: the body is parsed
by pydantic's JSON parser, the one the document routes use (api/uploads.py), not the
standard library's.

Both parsers refuse malformed JSON; the standard library's also takes what is not JSON
text a client should send — UTF-16 and UTF-32 bodies, `NaN` and `Infinity`, lone
surrogates (`"\\ud800"`, or their UTF-8 bytes), nesting up to its recursion limit — and a
lone surrogate accepted there fails far from the request, as a 500, when the value is
hashed or written to Redis. pydantic's refuses all of them (nesting past 200 levels) with
an error FastAPI answers as a 422 (`json_invalid`, docs/API.md, Errors).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine
from typing import Any

import pydantic_core
from fastapi import Request, Response
from fastapi.routing import APIRoute

_UNSET: Any = object()
_AT = re.compile(r"at line (\d+) column (\d+)$")


class JsonBodyRequest(Request):
    """A request whose `json()` is pydantic's parse of the body."""

    _parsed: Any = _UNSET

    async def json(self) -> Any:
        """The body as JSON values; `json.JSONDecodeError` (FastAPI's 422) when it is not
        UTF-8 JSON text within the parser's limits."""
        if self._parsed is _UNSET:
            body = await self.body()
            try:
                self._parsed = pydantic_core.from_json(body, allow_inf_nan=False)
            except ValueError as exc:
                text = body.decode("utf-8", errors="replace")
                raise json.JSONDecodeError(str(exc), text, _offset(text, str(exc))) from None
        return self._parsed


def _offset(text: str, message: str) -> int:
    """The character offset pydantic's "… at line L column C" points at (0 if none)."""
    where = _AT.search(message)
    if where is None:
        return 0
    line, column = int(where[1]), int(where[2])
    return sum(len(row) + 1 for row in text.split("\n")[: line - 1]) + max(column - 1, 0)


class JsonBodyRoute(APIRoute):
    """An APIRoute whose handler reads the request as a `JsonBodyRequest`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            return await handler(JsonBodyRequest(request.scope, request.receive))

        return route
