"""The seam between the API's HTTP handlers and wherever the requests live: what the handlers ask of a queue.

`LocalQueue` (`local_queue.py`) keeps the requests in this process and runs them on this ComfyUI's queue; a queue
shared by many ComfyUIs (e.g. in PostgreSQL) implements the same methods. Every method is async, so an
implementation may ask a database; none takes or returns anything of aiohttp's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .jobs import Job


@dataclass(frozen=True)
class QueueStatus:
    """A request as of now, and while it waits, how many requests run before it (0: it is next)."""
    job: Job
    queue_position: int | None


class JobQueue(Protocol):
    async def enqueue(self, job: Job, prompt: dict) -> None:
        """Queue `job` to run the API-format ComfyUI `prompt`; on an error (e.g. ComfyUI's validation refusing
        the prompt) it is raised and nothing of the request is left behind."""

    async def get(self, request_id: str) -> Job | None:
        """The request as of now (its logs, result or error included); None when unknown."""

    async def status(self, request_id: str) -> QueueStatus | None:
        """The request and its queue position; None when unknown."""

    async def cancel(self, request_id: str) -> bool:
        """Cancel a waiting request or interrupt a running one; False when it had already finished."""

    async def finished(self, request_id: str) -> Job:
        """Wait until the request has finished and return it."""
