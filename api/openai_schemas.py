"""The bodies of the OpenAI-compatible routes (api/routes/openai.py) as the OpenAPI
document describes them: a model list, a `chat.completion` and the events of its stream."""

from __future__ import annotations

from typing import Any

from api.responses import REF, json_data

_INT = {"type": "integer", "minimum": 0}
_USAGE = {
    "type": "object",
    "required": ["prompt_tokens", "completion_tokens", "total_tokens"],
    "properties": {"prompt_tokens": _INT, "completion_tokens": _INT, "total_tokens": _INT},
}
MODEL_LIST: dict[str, Any] = {
    "type": "object",
    "required": ["object", "data"],
    "properties": {
        "object": {"const": "list"},
        "data": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "object", "created", "owned_by"],
                "properties": {
                    "id": {"type": "string"},
                    "object": {"const": "model"},
                    "created": {"type": "integer"},
                    "owned_by": {"type": "string"},
                },
            },
        },
    },
}
_MESSAGE = {
    "type": "object",
    "required": ["role", "content"],
    "properties": {"role": {"const": "assistant"}, "content": {"type": "string"}},
}
_RAGQ = {
    "type": "object",
    "required": ["job_id", "degraded", "degraded_reason", "grounded", "cached"],
    "properties": {
        "job_id": {"type": "string"},
        "degraded": {"type": "boolean"},
        "degraded_reason": {"type": ["string", "null"]},
        "grounded": {"type": ["boolean", "null"]},
        "cached": {"type": "boolean"},
    },
}
CHAT_COMPLETION: dict[str, Any] = {
    "type": "object",
    "required": ["id", "object", "created", "model", "choices", "usage", "citations", "ragq"],
    "properties": {
        "id": {"type": "string"},
        "object": {"const": "chat.completion"},
        "created": {"type": "integer"},
        "model": {"type": "string"},
        "choices": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["index", "message", "finish_reason"],
                "properties": {
                    "index": _INT,
                    "message": _MESSAGE,
                    "finish_reason": {"const": "stop"},
                },
            },
        },
        "usage": _USAGE,
        "citations": {"type": "array", "items": {"$ref": REF + "Citation"}},
        "ragq": _RAGQ,
    },
}
# each event: a `chat.completion.chunk`, an error body, or `[DONE]`
CHUNK_EVENT: dict[str, Any] = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "data": {
            "anyOf": [
                {"const": "[DONE]"},
                json_data(
                    {
                        "anyOf": [
                            {
                                "type": "object",
                                "required": ["id", "object", "created", "model", "choices"],
                                "properties": {"object": {"const": "chat.completion.chunk"}},
                            },
                            {"$ref": REF + "OpenAIError"},
                        ]
                    }
                ),
            ]
        }
    },
}
