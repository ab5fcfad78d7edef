"""The fleet's job queue in PostgreSQL: one row per request, claimed by idle workers, held under a lease.

Every method is one short transaction (one or two round trips). A claim takes the oldest waiting job of the best
priority with `FOR UPDATE SKIP LOCKED`, so concurrent workers never wait for each other nor take the same row;
the claim hands out a fresh `lease` id and every later write of the worker names it, so a worker that lost its
lease (it stopped renewing and the job went back to the queue) can no longer change the job: its late result is
discarded. Cancels are announced on the `CANCEL_CHANNEL` notification channel. A job with a start timeout
(`settings.start_timeout`, fal's `X-Fal-Request-Timeout`) is never claimed after `queued_at` + that many seconds
(the database's clock, the same for every instance): the housekeeping fails it (`fail_late`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from ..jobs import (
    CANCELLED,
    COMPLETED,
    FAILED,
    MAX_LOG_LINES,
    QUEUED,
    RUNNING,
    START_TIMEOUT,
    Job,
    start_timeout_error,
    utc_timestamp,
)
from .channels import CANCEL_CHANNEL, LOW, NORMAL, SUBMIT_CHANNEL

ATTEMPTS_MESSAGE = "the request's worker stopped {attempts} times while running it (the most allowed); submit it again"
NO_WORKER_MESSAGE = "no worker of the fleet can run this request: {reason}"
LATE = ("(attempts = 0 AND coalesce(queued_at + (settings->>'start_timeout')::float8 * interval '1 second' "
        "< clock_timestamp(), false))")
"""SQL: a job never started whose start timeout has passed (false without a timeout; a job that started and lost
its worker is retried whatever the time)."""


@dataclass(frozen=True)
class Claim:
    request_id: str
    lease: str
    prompt: dict
    """The API-format ComfyUI prompt the gateway built: the request's input under the settings it was submitted."""
    settings: dict
    """seed, prompt text, webhook_url, server_url (what the gateway knew of the request)."""
    attempts: int
    sealed: dict
    """The secret parts of the prompt's sealed LoRA URLs (reference → full URL, `fetch.sealed`)."""


class PgJobQueue:
    def __init__(self, pool: AsyncConnectionPool, *, lease_seconds: float, max_attempts: int):
        self.pool, self.lease_seconds, self.max_attempts = pool, lease_seconds, max_attempts

    # gateway side ---------------------------------------------------------------------------------------------

    async def shared_secret(self, name: str, new_value: str) -> str:
        """The fleet's value of secret `name`: `new_value` when this instance is the first to ask (instances starting
        together agree on one)."""
        async with self.pool.connection() as connection:
            await connection.execute("INSERT INTO ltxv097_secrets (name, value) VALUES (%s, %s) "
                                     "ON CONFLICT (name) DO NOTHING", (name, new_value))
            row = await (await connection.execute("SELECT value FROM ltxv097_secrets WHERE name = %s",
                                                  (name,))).fetchone()
        return row[0]

    async def submit(self, request_id: str, prompt: dict, settings: dict, priority: int = NORMAL,
                     sealed: dict | None = None) -> int:
        """Store a validated request as waiting and wake the idle workers; returns its position in the fleet.
        `sealed` (the secret parts of its LoRA URLs) is handed to the worker that claims it, to no one else, and
        forgotten when the job ends."""
        async with self.pool.connection() as connection:
            await connection.execute(
                "INSERT INTO ltxv097_jobs (request_id, priority, prompt, settings, sealed) VALUES (%s, %s, %s, %s, %s)",
                (request_id, priority, Jsonb(prompt), Jsonb(settings), Jsonb(sealed or {})))
            await connection.execute("SELECT pg_notify(%s, '')", (SUBMIT_CHANNEL,))
            return await self._position(connection, request_id)

    @staticmethod
    async def _position(connection, request_id: str) -> int:
        """How many waiting jobs run before this one (best priority first, then the oldest)."""
        row = await (await connection.execute(
            "SELECT count(*) FROM ltxv097_jobs AS other, ltxv097_jobs AS job WHERE job.request_id = %s "
            "AND other.state = 'queued' AND (other.priority, other.queued_at, other.request_id) "
            "< (job.priority, job.queued_at, job.request_id)", (request_id,))).fetchone()
        return row[0]

    async def get(self, request_id: str) -> Job | None:
        """The request with its log lines; None when unknown."""
        async with self.pool.connection() as connection:
            return await self._job(connection, request_id)

    async def status(self, request_id: str) -> tuple[Job, int | None] | None:
        """The request and, while it waits, its position in the fleet's queue."""
        async with self.pool.connection() as connection:
            job = await self._job(connection, request_id)
            if job is None:
                return None
            return job, (await self._position(connection, request_id) if job.state == QUEUED else None)

    @staticmethod
    async def _job(connection, request_id: str) -> Job | None:
        cursor = connection.cursor(row_factory=dict_row)
        row = await (await cursor.execute(
            "SELECT request_id::text, state, priority, settings, result, error, error_type, cancel_requested, "
            "extract(epoch FROM queued_at)::float8 AS queued, extract(epoch FROM started_at)::float8 AS started, "
            "extract(epoch FROM finished_at)::float8 AS finished FROM ltxv097_jobs WHERE request_id = %s",
            (request_id,))).fetchone()
        if row is None:
            return None
        logs = [{"message": message, "level": level, "source": "user", "timestamp": utc_timestamp(at)}
                for message, level, at in await (await connection.execute(
                    "SELECT message, level, extract(epoch FROM logged_at)::float8 FROM ltxv097_job_logs "
                    "WHERE request_id = %s ORDER BY id LIMIT %s", (request_id, MAX_LOG_LINES))).fetchall()]
        return job_of(row, logs)

    async def cancel(self, request_id: str) -> str | None:
        """Cancel a waiting job at once, or ask its worker to stop a running one (NOTIFY). Returns the job's
        state before (None: unknown request)."""
        async with self.pool.connection() as connection:
            row = await (await connection.execute(
                "UPDATE ltxv097_jobs AS job SET "
                "state = CASE WHEN job.state = 'queued' THEN 'cancelled' ELSE job.state END, "
                "error = CASE WHEN job.state = 'queued' THEN 'the request was cancelled before it started' "
                "ELSE job.error END, "
                "error_type = CASE WHEN job.state = 'queued' THEN 'request_cancelled' ELSE job.error_type END, "
                "finished_at = CASE WHEN job.state = 'queued' THEN clock_timestamp() ELSE job.finished_at END, "
                "cancel_requested = job.state IN ('queued', 'running') OR job.cancel_requested "
                "FROM (SELECT request_id, state FROM ltxv097_jobs WHERE request_id = %s FOR UPDATE) AS before "
                "WHERE job.request_id = before.request_id RETURNING before.state", (request_id,))).fetchone()
            if row is not None and row[0] == RUNNING:
                await connection.execute("SELECT pg_notify(%s, %s)", (CANCEL_CHANNEL, request_id))
        return None if row is None else row[0]

    async def take_webhook(self, request_id: str) -> bool:
        """True once per finished request: the caller sends its webhook (whichever instance asks first)."""
        async with self.pool.connection() as connection:
            row = await (await connection.execute(
                "UPDATE ltxv097_jobs SET webhook_sent = true WHERE request_id = %s AND NOT webhook_sent "
                "AND state IN ('completed', 'failed', 'cancelled') RETURNING 1", (request_id,))).fetchone()
        return row is not None

    # worker side ----------------------------------------------------------------------------------------------

    async def heartbeat(self, worker: str, *, runs_jobs: bool) -> None:
        async with self.pool.connection() as connection:
            await connection.execute(
                "INSERT INTO ltxv097_workers (name, runs_jobs) VALUES (%s, %s) ON CONFLICT (name) DO UPDATE "
                "SET runs_jobs = excluded.runs_jobs, seen_at = clock_timestamp()", (worker, runs_jobs))

    async def claim(self, worker: str) -> Claim | None:
        """Take the next waiting job this worker has not refused, under a new lease."""
        lease = str(uuid.uuid4())
        async with self.pool.connection() as connection:
            row = await (await connection.execute(
                "UPDATE ltxv097_jobs SET state = 'running', worker = %(worker)s, lease = %(lease)s, "
                "lease_until = clock_timestamp() + %(seconds)s * interval '1 second', attempts = attempts + 1, "
                "started_at = clock_timestamp() WHERE request_id = (SELECT request_id FROM ltxv097_jobs "
                f"WHERE state = 'queued' AND NOT (%(worker)s = ANY (refused_by)) AND NOT {LATE} "
                "ORDER BY priority, queued_at "
                "LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING request_id::text, prompt, settings, attempts, sealed",
                {"worker": worker, "lease": lease, "seconds": self.lease_seconds})).fetchone()
        return None if row is None else Claim(row[0], lease, row[1], row[2], row[3], row[4])

    async def renew(self, request_id: str, lease: str) -> bool | None:
        """Extend the lease; returns whether a cancel was asked, or None when the lease is lost."""
        async with self.pool.connection() as connection:
            row = await (await connection.execute(
                "UPDATE ltxv097_jobs SET lease_until = clock_timestamp() + %s * interval '1 second' "
                "WHERE request_id = %s AND lease = %s AND state = 'running' RETURNING cancel_requested",
                (self.lease_seconds, request_id, lease))).fetchone()
        return None if row is None else row[0]

    async def log(self, request_id: str, lease: str, lines: list[tuple[str, str]]) -> None:
        """Append (level, message) lines, only while the lease holds (a lost worker's lines are dropped)."""
        async with self.pool.connection() as connection:
            await connection.execute(
                "INSERT INTO ltxv097_job_logs (request_id, level, message) SELECT %s, line.level, line.message "
                "FROM unnest(%s::text[], %s::text[]) AS line(level, message) WHERE EXISTS (SELECT 1 FROM "
                "ltxv097_jobs WHERE request_id = %s AND lease = %s AND state = 'running')",
                (request_id, [level for level, _ in lines], [message for _, message in lines], request_id, lease))

    async def complete(self, request_id: str, lease: str, result: dict) -> bool:
        """Record the result; False (and nothing written) when the lease was lost: the job belongs to another."""
        return await self._finish(request_id, lease, COMPLETED, result=Jsonb(result))

    async def fail(self, request_id: str, lease: str, message: str, error_type: str, *,
                   cancelled: bool = False) -> bool:
        return await self._finish(request_id, lease, CANCELLED if cancelled else FAILED, error=message,
                                  error_type=error_type)

    async def _finish(self, request_id: str, lease: str, state: str, *, result=None, error=None,
                      error_type=None) -> bool:
        async with self.pool.connection() as connection:
            row = await (await connection.execute(
                "UPDATE ltxv097_jobs SET state = %s, result = %s, error = %s, error_type = %s, "
                "finished_at = clock_timestamp(), lease = NULL, lease_until = NULL WHERE request_id = %s "
                "AND lease = %s AND state = 'running' RETURNING 1",
                (state, result, error, error_type, request_id, lease))).fetchone()
        return row is not None

    async def release(self, request_id: str, lease: str, worker: str, reason: str) -> str | None:
        """This worker cannot run the job (e.g. a model file missing here): back to the queue for the others, or
        failed when every live worker has refused it. Returns the new state (None: the lease was lost)."""
        async with self.pool.connection() as connection:
            async with connection.transaction():
                row = await (await connection.execute(
                    "UPDATE ltxv097_jobs SET state = 'queued', worker = NULL, lease = NULL, lease_until = NULL, "
                    "attempts = attempts - 1, refused_by = array_append(refused_by, %s), refusal = %s "
                    "WHERE request_id = %s AND lease = %s AND state = 'running' RETURNING 1",
                    (worker, reason, request_id, lease))).fetchone()
                if row is None:
                    return None
                await connection.execute(
                    "INSERT INTO ltxv097_job_logs (request_id, level, message) VALUES (%s, 'WARNING', %s)",
                    (request_id, f"worker {worker} cannot run this request: {reason}"))
                return FAILED if request_id in await self._fail_unrunnable(connection) else QUEUED

    async def fail_late(self) -> list[str]:
        """Waiting jobs past their start timeout fail as the single server's do (504 `request_timeout`); returns
        their ids."""
        async with self.pool.connection() as connection:
            rows = await (await connection.execute(
                f"SELECT request_id::text, (settings->>'start_timeout')::float8 FROM ltxv097_jobs "
                f"WHERE state = 'queued' AND {LATE}")).fetchall()
            # each UPDATE re-checks the state: a job cancelled meanwhile (or failed by another instance) stays so
            failed = []
            for request_id, seconds in rows:
                row = await (await connection.execute(
                    "UPDATE ltxv097_jobs SET state = 'failed', error = %s, error_type = %s, "
                    "finished_at = clock_timestamp() WHERE request_id = %s AND state = 'queued' RETURNING 1",
                    (start_timeout_error(seconds), START_TIMEOUT, request_id))).fetchone()
                if row is not None:
                    failed.append(request_id)
        return failed

    async def fail_unrunnable(self) -> list[str]:
        """Waiting jobs that every live worker has refused fail, naming the last refusal (a worker that refused one
        may have been the last alive, or the others died since); returns their ids."""
        async with self.pool.connection() as connection:
            return await self._fail_unrunnable(connection)

    async def _fail_unrunnable(self, connection) -> list[str]:
        rows = await (await connection.execute(
            "UPDATE ltxv097_jobs AS job SET state = 'failed', error = format(%s, job.refusal), "
            "error_type = 'no_worker', finished_at = clock_timestamp() WHERE job.state = 'queued' "
            "AND cardinality(job.refused_by) > 0 AND NOT EXISTS (SELECT 1 FROM ltxv097_workers AS live "
            "WHERE live.runs_jobs AND live.seen_at > clock_timestamp() - %s * interval '1 second' "
            "AND NOT (live.name = ANY (job.refused_by))) RETURNING job.request_id::text",
            (NO_WORKER_MESSAGE.replace("{reason}", "%s"), self.lease_seconds))).fetchall()
        return [row[0] for row in rows]

    async def requeue_expired(self) -> list[tuple[str, str]]:
        """Jobs whose worker stopped renewing go back to the queue (or fail after `max_attempts`, or end cancelled
        when a cancel was asked); returns (request id, new state) pairs."""
        async with self.pool.connection() as connection:
            rows = await (await connection.execute(
                "WITH lost AS (SELECT request_id, CASE WHEN cancel_requested THEN 'cancelled' "
                "WHEN attempts >= %(most)s THEN 'failed' ELSE 'queued' END AS next FROM ltxv097_jobs "
                "WHERE state = 'running' AND lease_until < clock_timestamp() FOR UPDATE SKIP LOCKED) "
                "UPDATE ltxv097_jobs AS job SET state = lost.next, worker = NULL, lease = NULL, lease_until = NULL, "
                "error = CASE lost.next WHEN 'failed' THEN format(%(message)s, job.attempts) "
                "WHEN 'cancelled' THEN 'the request was cancelled' END, "
                "error_type = CASE lost.next WHEN 'failed' THEN 'worker_lost' "
                "WHEN 'cancelled' THEN 'request_cancelled' END, "
                "finished_at = CASE WHEN lost.next <> 'queued' THEN clock_timestamp() END "
                "FROM lost WHERE job.request_id = lost.request_id RETURNING job.request_id::text, job.state",
                {"most": self.max_attempts,
                 "message": ATTEMPTS_MESSAGE.replace("{attempts}", "%s")})).fetchall()
        return [(request_id, state) for request_id, state in rows]

def job_of(row: dict, logs: list) -> Job:
    """A database row as the service's `Job` (fal's JSON shapes are built from it as in the single-server mode)."""
    settings, result = row["settings"], row["result"] or {}
    timeout = settings.get("start_timeout")
    return Job(row["request_id"], settings["seed"], result.get("prompt", settings["prompt"]), state=row["state"],
               created_at=float(row["queued"]), started_at=_seconds(row["started"]),
               finished_at=_seconds(row["finished"]), logs=logs, video=result.get("video"), error=row["error"],
               error_type=row["error_type"], webhook_url=settings.get("webhook_url"),
               server_url=settings.get("server_url", ""), cancel_requested=row["cancel_requested"],
               endpoint=settings.get("endpoint", Job.endpoint),
               priority="low" if row["priority"] == LOW else "normal",
               start_deadline=None if timeout is None else float(row["queued"]) + timeout)


def _seconds(value) -> float | None:
    return None if value is None else float(value)
