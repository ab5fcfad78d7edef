"""The fleet's retention: finished jobs older than `result_retention_hours` leave the database (their log lines go
with them) and their files leave the shared storage.

Every worker calls `Pruner.maybe_prune` from its housekeeping; it looks at most every `PRUNE_EVERY_SECONDS` and
only one instance prunes at a time (a transaction-scoped advisory lock, not waited for: the others skip their
turn). Only finished rows are deleted, by `finished_at` on the database's clock; waiting and running jobs stay
whatever their age.
"""

from __future__ import annotations

import asyncio
import logging
import time

from psycopg_pool import AsyncConnectionPool

from ..retention import PRUNE_EVERY_SECONDS
from .migrations import LOCK_KEY
from .storage import SharedStorage

logger = logging.getLogger(__name__)

PRUNE_LOCK_KEY = LOCK_KEY + 1
"""The advisory lock held while one instance prunes."""


async def prune_finished(pool: AsyncConnectionPool, retention_seconds: float) -> list[tuple[str, str | None]] | None:
    """Delete the finished jobs that ended more than `retention_seconds` ago, and the workers not seen for as long;
    returns (request id, the stored mp4's path) of each deleted job, or None when another instance is pruning."""
    async with pool.connection() as connection:
        async with connection.transaction():
            locked = await (await connection.execute("SELECT pg_try_advisory_xact_lock(%s)",
                                                     (PRUNE_LOCK_KEY,))).fetchone()
            if not locked[0]:
                return None
            rows = await (await connection.execute(
                "DELETE FROM ltxv097_jobs WHERE state IN ('completed', 'failed', 'cancelled') "
                "AND finished_at < clock_timestamp() - %s * interval '1 second' "
                "RETURNING request_id::text, result->'video'->>'path'", (retention_seconds,))).fetchall()
            await connection.execute("DELETE FROM ltxv097_workers WHERE seen_at < clock_timestamp() - %s * "
                                     "interval '1 second'", (retention_seconds,))
    return [(request_id, path) for request_id, path in rows]


class Pruner:
    """`retention_seconds` None: keep everything (the setting is null)."""

    def __init__(self, pool: AsyncConnectionPool, storage: SharedStorage, retention_seconds: float | None):
        self.pool, self.storage, self.retention_seconds = pool, storage, retention_seconds
        self._last = float("-inf")

    async def maybe_prune(self) -> None:
        if self.retention_seconds is None or time.monotonic() - self._last < PRUNE_EVERY_SECONDS:
            return
        self._last = time.monotonic()
        pruned = await prune_finished(self.pool, self.retention_seconds)
        for request_id, path in pruned or ():  # off the event loop: the storage may be a network volume
            await asyncio.to_thread(self.storage.remove_results, request_id, path)
        if pruned:
            logger.info("LTX-Video API: %d finished requests older than the retention pruned", len(pruned))
