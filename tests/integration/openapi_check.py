"""Checking a response against the OpenAPI document: is its status declared for its
operation, its content type declared for that status, each required header there, and its
body (each event of a stream) valid against the declared schema?"""

from __future__ import annotations

import json
from typing import Any

import httpx
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

JSON_TYPES = frozenset({"application/json", "application/problem+json"})


class Document:
    """The document of `/openapi.json`, and what it promises each operation answers."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.components = spec.get("components", {})

    def operations(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(method, path template, operation) of every operation."""
        return [
            (method.upper(), path, operation)
            for path, item in self.spec["paths"].items()
            for method, operation in item.items()
        ]

    def operation(self, method: str, template: str) -> dict[str, Any]:
        """One operation; KeyError for one the document does not have."""
        operation: dict[str, Any] = self.spec["paths"][template][method.lower()]
        return operation

    def validate(self, schema: dict[str, Any], value: Any) -> list[str]:
        """Why `value` breaks `schema` (whose `$ref`s point into the components)."""
        validator = Draft202012Validator({**schema, "components": self.components})
        return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(value)]

    def problems(self, method: str, template: str, response: httpx.Response) -> list[str]:
        """Everything about `response` that its operation does not declare."""
        declared = self.operation(method, template)["responses"]
        entry = declared.get(str(response.status_code))
        if entry is None:
            return [f"status {response.status_code} is not declared (only {sorted(declared)})"]
        out = [
            f"header {name} is missing"
            for name, header in entry.get("headers", {}).items()
            if header.get("required") and name.lower() not in response.headers
        ]
        content = entry.get("content", {})
        media = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if not response.content and not media:
            return out if not content else [*out, "no body, but the document declares one"]
        if media not in content:
            return [*out, f"content type {media!r} is not declared (only {sorted(content)})"]
        schema = content[media].get("schema")
        if schema is None:
            return out
        if media in JSON_TYPES:
            return out + self.validate(schema, response.json())
        if media == "text/event-stream":
            return out + [p for event in events(response.text) for p in self._event(schema, event)]
        return out + self.validate(schema, response.text)

    def _event(self, schema: dict[str, Any], event: dict[str, str]) -> list[str]:
        found = self.validate(schema, event)
        data = schema.get("properties", {}).get("data", {})
        if "contentSchema" in data and not found:  # JSON text whose value has a schema
            found = self.validate(data["contentSchema"], json.loads(event["data"]))
        return [f"event {event.get('id')}: {p}" for p in found]

    def check(self, method: str, template: str, response: httpx.Response) -> None:
        """Assert that the document declares `response` for its operation."""
        found = self.problems(method, template, response)
        assert found == [], (method, template, response.status_code, found, response.text[:300])


def events(text: str) -> list[dict[str, str]]:
    """The events of an SSE body, each as its fields (`data`, `event`, `id`); comments
    (pings) left out."""
    out: list[dict[str, str]] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            fields[name] = (
                f"{fields[name]}\n{value}" if name == "data" and name in fields else value
            )
        if fields:
            out.append(fields)
    return out
