"""What the test LLM is told to do wrong: the `Behaviour` (latency, injected failures,
hangs, dropped streams, misshapen replies) set at start-up or via `POST /_control`.

A request reads the behaviour once, when it arrives: changing it later does not affect
requests in flight. `hang_after_tokens` and `drop_after_tokens` apply to streaming requests
only (if the answer is shorter, all tokens are sent before stalling/dropping); `hang` stalls
before any byte and `drop_before_headers` closes the connection before any byte (both for
every chat request). `drop_with` is how a connection is cut: "close" (a FIN after the bytes
already written) or "reset" (SO_LINGER 0: an RST, unsent bytes discarded).
`stream_reply` shapes the 200 reply to a streaming request, as engines that misbehave do:
"sse" (the default: a well-formed event stream), "json" (the non-streamed `chat.completion`
body, as a server that ignores `stream` sends), "garbage" (the JSON body
`{"nonsense": true}`), "garbage_events" (an event stream of `{"nonsense": true}` events,
then `[DONE]`), "no_finish" (the answer's chunks and usage, then `[DONE]`, but no chunk
with a `finish_reason`: a truncated stream) and "empty" (a well-formed stream with a
`finish_reason` but no text). Non-streaming requests always get the JSON body.
`condense_fail_status` fails only ragq's condensation requests (scripts/testllm/condense.py),
every one of them while set, so the answer calls that follow still succeed.
`answer_tokens` N makes every answer (not a condensation rewrite) exactly N streamed tokens:
the normal answer's tokens cycled, a space between two rounds, and cut at N, so it still
cites its `[n]` markers and its usage reports N completion tokens; `max_tokens` still cuts
it shorter. Its tokens are streamed on a schedule, token k at `first_token_latency_ms + k *
token_latency_ms`, so that latencies below the event loop's timer resolution (1 ms under
uvloop) add up to the stated duration; without it, each token sleeps `token_latency_ms`
after the one before. None (the default) leaves the answer and its pacing as they are.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

StreamReply = Literal["sse", "json", "garbage", "garbage_events", "no_finish", "empty"]
STREAM_REPLIES: tuple[StreamReply, ...] = get_args(StreamReply)
DropWith = Literal["close", "reset"]
DROP_WITH: tuple[DropWith, ...] = get_args(DropWith)
NONSENSE = {"nonsense": True}  # the body of the "garbage" replies


@dataclass
class Behaviour:
    """How the server behaves; every field can be changed at run time via `POST /_control`.

    `fail_status` with `fail_next` = N fails the next N chat requests (-1: all of them
    until changed; 0: none). `hang` stalls chat requests before sending anything.
    `hang_after_tokens` / `drop_after_tokens` stall / cut streams after that many tokens.
    `drop_before_headers` cuts chat requests before any byte; `drop_with` is how a cut is
    made ("close" or "reset").
    `stream_reply` is the shape of a streaming request's reply (see the module docstring).
    `condense_fail_status` answers every condensation request with that status.
    `cite` false answers with the same quoted sentences but no `[n]` markers.
    `answer_tokens` N makes every answer exactly N tokens long (None: as it comes).
    """

    token_latency_ms: float = 0.0
    first_token_latency_ms: float = 0.0
    fail_status: int | None = None
    fail_next: int = 0
    hang: bool = False
    hang_after_tokens: int | None = None
    drop_after_tokens: int | None = None
    drop_before_headers: bool = False
    drop_with: DropWith = "close"
    stream_reply: StreamReply = "sse"
    embedding_dim: int = 64
    condense_fail_status: int | None = None
    cite: bool = True
    answer_tokens: int | None = None

    def __post_init__(self) -> None:
        for name in ("token_latency_ms", "first_token_latency_ms"):
            value: object = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")
            setattr(self, name, float(value))
        _check_int(self, "fail_status", low=400, high=599, optional=True)
        _check_int(self, "condense_fail_status", low=400, high=599, optional=True)
        _check_int(self, "fail_next", low=-1)
        for flag in ("hang", "drop_before_headers", "cite"):
            if not isinstance(getattr(self, flag), bool):
                raise ValueError(f"{flag} must be a boolean, got {getattr(self, flag)!r}")
        _check_int(self, "hang_after_tokens", low=0, optional=True)
        _check_int(self, "drop_after_tokens", low=0, optional=True)
        _check_int(self, "answer_tokens", low=1, optional=True)
        if self.stream_reply not in STREAM_REPLIES:
            choices = ", ".join(STREAM_REPLIES)
            raise ValueError(f"stream_reply must be one of {choices}, got {self.stream_reply!r}")
        if self.drop_with not in DROP_WITH:
            raise ValueError(f"drop_with must be close or reset, got {self.drop_with!r}")
        _check_int(self, "embedding_dim", low=1, high=65536)


def _check_int(
    obj: Behaviour, name: str, *, low: int, high: int | None = None, optional: bool = False
) -> None:
    value: object = getattr(obj, name)
    if value is None and optional:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < low
        or (high is not None and value > high)
    ):
        bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
        none = " or null" if optional else ""
        raise ValueError(f"{name} must be an integer {bounds}{none}, got {value!r}")


def updated(current: Behaviour, changes: Mapping[str, Any]) -> Behaviour:
    """Return `current` with `changes` applied; raise ValueError on unknown or bad fields."""
    known = {f.name for f in dataclasses.fields(Behaviour)}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise ValueError(f"unknown behaviour field(s): {', '.join(unknown)}")
    return dataclasses.replace(current, **changes)
