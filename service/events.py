"""The status stream (`GET …/requests/{id}/status/stream`): server-sent events as `@fal-ai/client` parses them.

One `data: <status JSON>` event whenever the status, the queue position or the logs change; each event carries
only the log lines that are new since the previous one (the client's streaming `subscribe` appends them), and the
stream closes after the event with `COMPLETED`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

CONTENT_TYPE = "text/event-stream"
KEEP_ALIVE_SECONDS = 15.0


def event(data: dict) -> bytes:
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


class StatusEvents:
    """Turns successive full statuses into the events to send (new log lines only; nothing when nothing changed)."""

    def __init__(self, with_logs: bool):
        self.with_logs, self.logs_sent, self.last = with_logs, 0, None

    def next(self, status: dict) -> dict | None:
        logs = list(status.get("logs") or [])
        new_logs = logs[self.logs_sent:]
        key = (status.get("status"), status.get("queue_position"))
        if key == self.last and not new_logs:
            return None
        self.last, self.logs_sent = key, len(logs)
        return {**status, "logs": new_logs if self.with_logs else None}


async def stream_status(request: web.Request, current: Callable[[], Awaitable[dict]], *, poll_seconds: float,
                        headers: dict | None = None) -> web.StreamResponse:
    """Answer `request` with the events of `current()` (polled every `poll_seconds`) until `COMPLETED`."""
    response = web.StreamResponse(headers={"Content-Type": CONTENT_TYPE, "Cache-Control": "no-cache",
                                           **(headers or {})})
    await response.prepare(request)
    events = StatusEvents(request.query.get("logs", "0").lower() in ("1", "true", "yes"))
    quiet_since = time.monotonic()
    while True:
        status = await current()
        data = events.next(status)
        if data is not None:
            await response.write(event(data))
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > KEEP_ALIVE_SECONDS:
            await response.write(b": keep-alive\n\n")
            quiet_since = time.monotonic()
        if status.get("status") == "COMPLETED":
            break
        await asyncio.sleep(poll_seconds)
    await response.write_eof()
    return response
