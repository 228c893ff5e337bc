"""What every `ragq` subcommand that talks to the API shares: its default address and the key."""

from __future__ import annotations

import os

DEFAULT_URL = "http://127.0.0.1:8000"


def api_headers(key: str | None) -> dict[str, str]:
    """The Authorization header for `key`, else $RAGQ_API_KEY; without either, exit with a line."""
    key = key or os.environ.get("RAGQ_API_KEY")
    if not key:
        raise SystemExit("an API key is needed: pass --key or set RAGQ_API_KEY")
    return {"Authorization": f"Bearer {key}"}
