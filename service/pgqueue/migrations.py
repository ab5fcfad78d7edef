"""The shared queue's tables, created and upgraded by the pack itself.

`MIGRATIONS[n]` takes the schema from version n to n + 1. `migrate` runs the missing ones in one transaction
under an advisory lock, so several workers starting at once upgrade the database exactly once; a database whose
schema is newer than this pack knows is refused with a message (never half-used).
"""

from __future__ import annotations

import psycopg

LOCK_KEY = 0x4C545839_37  # "LTX9" "7": the advisory lock of this pack's migrations
VERSION_TABLE = "ltxv097_schema_version"

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE ltxv097_jobs (
        request_id uuid PRIMARY KEY,
        state text NOT NULL DEFAULT 'queued'
            CHECK (state IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
        priority smallint NOT NULL DEFAULT 0,
        prompt jsonb NOT NULL,
        settings jsonb NOT NULL,
        queued_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        started_at timestamptz,
        finished_at timestamptz,
        attempts integer NOT NULL DEFAULT 0,
        worker text,
        lease uuid,
        lease_until timestamptz,
        refused_by text[] NOT NULL DEFAULT '{}',
        refusal text,
        cancel_requested boolean NOT NULL DEFAULT false,
        result jsonb,
        error text,
        error_type text,
        webhook_sent boolean NOT NULL DEFAULT false
    );
    CREATE INDEX ltxv097_jobs_waiting ON ltxv097_jobs (priority, queued_at) WHERE state = 'queued';
    CREATE INDEX ltxv097_jobs_leased ON ltxv097_jobs (lease_until) WHERE state = 'running';
    CREATE TABLE ltxv097_job_logs (
        id bigserial PRIMARY KEY,
        request_id uuid NOT NULL REFERENCES ltxv097_jobs ON DELETE CASCADE,
        logged_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        level text NOT NULL,
        message text NOT NULL
    );
    CREATE INDEX ltxv097_job_logs_request ON ltxv097_job_logs (request_id, id);
    CREATE TABLE ltxv097_workers (
        name text PRIMARY KEY,
        runs_jobs boolean NOT NULL,
        seen_at timestamptz NOT NULL DEFAULT clock_timestamp()
    );
    """,
    # issue 17 in a fleet: the gate's secret shared by every instance (a URL signed by one is served by all), and
    # the secret parts of a request's sealed LoRA URLs, kept with the job until it ends (never in logs or results)
    """
    CREATE TABLE ltxv097_secrets (
        name text PRIMARY KEY,
        value text NOT NULL
    );
    ALTER TABLE ltxv097_jobs ADD COLUMN sealed jsonb NOT NULL DEFAULT '{}';
    CREATE FUNCTION ltxv097_forget_sealed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.state IN ('completed', 'failed', 'cancelled') THEN
            NEW.sealed := '{}';
        END IF;
        RETURN NEW;
    END $$;
    CREATE TRIGGER ltxv097_jobs_forget_sealed BEFORE UPDATE OF state ON ltxv097_jobs
        FOR EACH ROW EXECUTE FUNCTION ltxv097_forget_sealed();
    """,
    # the retention: finished jobs are deleted by age (service/pgqueue/pruning.py)
    """
    CREATE INDEX ltxv097_jobs_finished ON ltxv097_jobs (finished_at)
        WHERE state IN ('completed', 'failed', 'cancelled');
    """,
)
VERSION = len(MIGRATIONS)


class SchemaError(RuntimeError):
    """The database holds a schema this pack cannot use."""


async def migrate(connection: psycopg.AsyncConnection) -> int:
    """Bring the schema to `VERSION`; returns the version found before. Safe to run from many workers at once."""
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        await connection.execute(f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (version integer NOT NULL)")
        row = await (await connection.execute(f"SELECT version FROM {VERSION_TABLE}")).fetchone()
        found = row[0] if row else 0
        if found > VERSION:
            raise SchemaError(f"the database's LTX-Video queue schema is version {found}, newer than this pack's "
                              f"version {VERSION}: update the pack on this machine (or use another database)")
        for step in MIGRATIONS[found:]:
            await connection.execute(step)
        if row is None:
            await connection.execute(f"INSERT INTO {VERSION_TABLE} (version) VALUES (%s)", (VERSION,))
        elif found != VERSION:
            await connection.execute(f"UPDATE {VERSION_TABLE} SET version = %s", (VERSION,))
        return found
