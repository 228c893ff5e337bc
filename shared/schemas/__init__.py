"""Pydantic models that are both the HTTP contract (docs/API.md) and the job payloads."""
