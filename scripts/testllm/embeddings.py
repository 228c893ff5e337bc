"""The test LLM's embeddings: a signed hashed bag of lowercase words (`\\w+`),
L2-normalised (a text without words gets the unit vector on dimension 0), and the
`POST /v1/embeddings` endpoint that serves them as floats or base64."""

from __future__ import annotations

import base64
import hashlib
import math
import re
import struct
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from scripts.testllm.replies import error, json_object, optional_int
from scripts.testllm.state import Runtime

_WORD = re.compile(r"\w+")


def embed_text(text: str, dim: int) -> list[float]:
    """Deterministic L2-normalised embedding: signed hashed bag of lowercase words."""
    vector = [0.0] * dim
    for word in _WORD.findall(text.lower()):
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        bits = int.from_bytes(digest, "little")
        vector[bits % dim] += -1.0 if bits >> 63 else 1.0
    norm = math.sqrt(sum(v * v for v in vector))
    if norm == 0.0:
        vector[0] = 1.0
        return vector
    return [v / norm for v in vector]


async def embeddings(rt: Runtime, request: Request) -> Response:
    """`POST /v1/embeddings`: one vector per input text, usage counted in words."""
    rt.count("embedding_requests")
    body = await json_object(request)
    if isinstance(body, Response):
        return body
    raw = body.get("input")
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        return error(400, "`input` must be a string or a non-empty list of strings.")
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        return error(400, "`encoding_format` must be `float` or `base64`.")
    try:
        dim = optional_int(body, "dimensions") or rt.behaviour.embedding_dim
    except ValueError as exc:
        return error(400, str(exc))
    data: list[dict[str, Any]] = []
    for index, text in enumerate(texts):
        vector = embed_text(text, dim)
        encoded: list[float] | str = vector
        if encoding == "base64":
            encoded = base64.b64encode(struct.pack(f"<{dim}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    words = sum(len(_WORD.findall(t)) for t in texts)
    model = body.get("model")
    return JSONResponse(
        {
            "object": "list",
            "data": data,
            "model": model if isinstance(model, str) else rt.model,
            "usage": {"prompt_tokens": words, "total_tokens": words},
        }
    )
