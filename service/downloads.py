"""The API's image and video downloads, on their own bounded thread pool.

Downloads used to share the event loop's default pool (6 threads on a small machine) with webhooks and aiohttp's
own file serving: six slow senders made every later submit wait. Here a submit reserves its slots at once or is
answered 503 at once (`ServerBusy`), so it never waits for another request's download; one request has at most
`per_request` downloads in flight, all requests together at most `workers`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class ServerBusy(Exception):
    """Every download slot is taken by other requests (HTTP 503; the client may retry)."""


class DownloadPool:
    def __init__(self, workers: int, per_request: int):
        self.workers, self.per_request = workers, per_request
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ltxv097-download")
        self.in_flight = 0
        """Slots reserved now (changed on the event loop only)."""

    async def run(self, calls: list[Callable[[], T]]) -> list[T]:
        """Results of `calls` (one request's downloads), run on the pool; ServerBusy when no slot is free."""
        if not calls:
            return []
        slots = min(len(calls), self.per_request)
        if self.in_flight + slots > self.workers:
            raise ServerBusy(f"the server is downloading {self.in_flight} files for other requests (at most "
                             f"{self.workers} at once); try again in a few seconds")
        self.in_flight += slots
        try:
            loop = asyncio.get_running_loop()
            gate = asyncio.Semaphore(slots)

            async def one(call: Callable[[], T]) -> T:
                async with gate:
                    return await loop.run_in_executor(self.executor, call)

            # every download ends before its slots are freed (a thread cannot be stopped midway)
            results = await asyncio.gather(*(one(call) for call in calls), return_exceptions=True)
        finally:
            self.in_flight -= slots
        failed = next((result for result in results if isinstance(result, BaseException)), None)
        if failed is not None:
            raise failed
        return list(results)
