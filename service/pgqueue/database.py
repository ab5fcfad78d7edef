"""Connecting to the fleet's PostgreSQL: a small connection pool for the queue, a dedicated connection that
LISTENs for cancels, and the start-up check whose message the API answers with (503) while the database is not
usable. Every failure message is redacted: the password never reaches a log or a client.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import psycopg
from psycopg_pool import AsyncConnectionPool

from .migrations import SchemaError, migrate
from .settings import redact

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 5
POOL_SIZE = (1, 4)
APPLICATION_NAME = "ltxv097-api"
RETRY_SECONDS = 5.0


def connection_options() -> dict:
    return {"connect_timeout": CONNECT_TIMEOUT_SECONDS, "application_name": APPLICATION_NAME, "autocommit": True}


def unusable_message(url: str, problem: Exception) -> str:
    """What the start-up log and every API answer say while the database cannot be used."""
    reason = " ".join(str(problem).split()) or type(problem).__name__
    what = "its schema cannot be used" if isinstance(problem, SchemaError) else "it cannot be reached"
    return redact(f"the API's job database ({url}) is not usable, {what}: {reason}; fix database_url in "
                  f"ltxv097_api.json or LTX097_API_DATABASE_URL", url)


async def open_database(url: str) -> AsyncConnectionPool:
    """Connect, bring the schema up to date, and open the pool (raises with the driver's or SchemaError)."""
    async with await psycopg.AsyncConnection.connect(url, **connection_options()) as connection:
        await migrate(connection)
    pool = AsyncConnectionPool(url, kwargs=connection_options(), min_size=POOL_SIZE[0], max_size=POOL_SIZE[1],
                               open=False, name=APPLICATION_NAME, check=AsyncConnectionPool.check_connection,
                               timeout=CONNECT_TIMEOUT_SECONDS)
    # `check`: a connection broken by a database restart is replaced before use instead of failing one call;
    # `timeout`: a call waits that long for a connection while the database is down, then answers 503
    await pool.open(wait=True, timeout=CONNECT_TIMEOUT_SECONDS * 2)
    return pool


async def listen(url: str, handlers: dict[str, Callable[[str], Awaitable[None]]]) -> None:
    """Forever: LISTEN on each channel and hand each notification's payload to its handler, reconnecting after a
    lost connection (a database restart)."""
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(url, **connection_options()) as connection:
                for channel in handlers:
                    await connection.execute(f"LISTEN {channel}")
                async for notice in connection.notifies():
                    await handlers[notice.channel](notice.payload)
        except asyncio.CancelledError:
            raise
        except Exception as lost:  # the database went away: wait and listen again
            logger.warning("LTX-Video API: the notification listener lost the database (%s); retrying",
                           redact(str(lost), url))
        await asyncio.sleep(RETRY_SECONDS)


async def connect_until_ready(url: str, on_problem: Callable[[str | None], None]) -> AsyncConnectionPool:
    """Retry `open_database` until it works, with `on_problem(message)` after each failure (the API answers 503
    with the message meanwhile)."""
    while True:
        try:
            pool = await open_database(url)
        except (psycopg.Error, SchemaError, OSError) as problem:
            on_problem(unusable_message(url, problem))
            await asyncio.sleep(RETRY_SECONDS)
            continue
        return pool
