"""The fleet's job queue on a throwaway real PostgreSQL: migrations under concurrency, claiming with SKIP LOCKED,
priorities and fleet-wide positions, leases (renewal, expiry, late results discarded, attempts), refusals,
cancels (NOTIFY) and the once-only webhook. No ComfyUI here: the servers' side is in test_fleet_api.py.
"""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import pytest

from support.pg_server import PgServer
from support.plain_pack import pack_module

jobs, database, migrations, channels, queue_module, settings_module, worker_module = (
    pack_module(f"service.{name}") for name in ("jobs", "pgqueue.database", "pgqueue.migrations",
                                                "pgqueue.channels", "pgqueue.queue", "pgqueue.settings",
                                                "pgqueue.worker"))
CANCELLED, COMPLETED, FAILED, QUEUED, RUNNING = jobs.CANCELLED, jobs.COMPLETED, jobs.FAILED, jobs.QUEUED, jobs.RUNNING
CANCEL_CHANNEL, LOW, NORMAL = channels.CANCEL_CHANNEL, channels.LOW, channels.NORMAL
PgJobQueue = queue_module.PgJobQueue
ENV_VAR, database_url, redact = settings_module.ENV_VAR, settings_module.database_url, settings_module.redact


@pytest.fixture(scope="module")
def pg():
    with PgServer() as server:
        yield server


@pytest.fixture
def url(pg):
    """A fresh empty database per test (created from template0 on the shared throwaway server)."""
    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(pg.url, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    return pg.url_with(database=name)


def run(coroutine):
    return asyncio.run(coroutine)


async def with_queue(url: str, body, *, lease_seconds: float = 30, max_attempts: int = 3):
    pool = await database.open_database(url)
    try:
        return await body(PgJobQueue(pool, lease_seconds=lease_seconds, max_attempts=max_attempts))
    finally:
        await pool.close()


def settings(seed: int = 1) -> dict:
    return {"seed": seed, "prompt": f"prompt {seed}", "server_url": "http://a:1", "webhook_url": None}


async def stop_renewing(queue: PgJobQueue, worker: str = "") -> None:
    """What a dead worker leaves behind, without waiting for it: every running lease (or `worker`'s heartbeat)
    older than the lease time."""
    async with queue.pool.connection() as connection:
        if worker:
            await connection.execute("UPDATE ltxv097_workers SET seen_at = seen_at - interval '1 hour' "
                                     "WHERE name = %s", (worker,))
        else:
            await connection.execute("UPDATE ltxv097_jobs SET lease_until = clock_timestamp() - interval '1 second' "
                                     "WHERE state = 'running'")


async def submit(queue: PgJobQueue, priority: int = NORMAL, seed: int = 1) -> str:
    request_id = str(uuid.uuid4())
    await queue.submit(request_id, {"prompt": f"prompt {seed}", "seed": seed}, settings(seed), priority)
    return request_id


def test_migrations_run_once_when_many_workers_start_together(url):
    async def start_many():
        async def one():
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as connection:
                return await migrations.migrate(connection)
        return await asyncio.gather(*(one() for _ in range(6)))

    found = run(start_many())
    assert sorted(found) == [0] + [migrations.VERSION] * 5  # one worker created the schema, five found it
    with psycopg.connect(url) as connection:
        assert connection.execute("SELECT version FROM ltxv097_schema_version").fetchall() == [
            (migrations.VERSION,)]


def test_a_database_of_a_newer_schema_is_refused_with_a_message(url):
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("CREATE TABLE ltxv097_schema_version (version integer NOT NULL)")
        connection.execute("INSERT INTO ltxv097_schema_version VALUES (%s)", (migrations.VERSION + 1,))
    with pytest.raises(migrations.SchemaError) as refused:
        run(database.open_database(url))
    message = database.unusable_message(url, refused.value)
    assert f"version {migrations.VERSION + 1}" in message and "update the pack" in message
    assert "ltx-test-password" not in message and "***" in message


def test_a_wrong_password_and_an_unreachable_host_give_redacted_messages(pg):
    wrong = pg.url_with(password="not-the-password")
    with pytest.raises(psycopg.OperationalError) as refused:
        run(database.open_database(wrong))
    message = database.unusable_message(wrong, refused.value)
    assert "password authentication failed" in message and "not-the-password" not in message
    unreachable = pg.url_with(port=1)
    with pytest.raises(psycopg.OperationalError) as refused:
        run(database.open_database(unreachable))
    message = database.unusable_message(unreachable, refused.value)
    assert "cannot be reached" in message and "ltx-test-password" not in message and "127.0.0.1" in message


def test_settings_environment_wins_and_passwords_are_redacted():
    assert database_url("postgresql://a@h/db", {ENV_VAR: "postgresql://b@h/db"}) == "postgresql://b@h/db"
    assert database_url("postgresql://a@h/db", {}) == "postgresql://a@h/db"
    assert database_url(None, {ENV_VAR: " "}) is None
    assert redact("x postgresql://u:s3cret@h:5/d y") == "x postgresql://u:***@h:5/d y"
    assert redact("host=h password=s3cret user=u") == "host=h password=*** user=u"
    assert redact("failed for s3cret", "postgresql://u:s3cret@h/d") == "failed for ***"


def test_claims_follow_priority_then_age_and_positions_count_the_whole_queue(url):
    async def body(queue: PgJobQueue):
        low = await submit(queue, LOW, 1)
        first, second = await submit(queue, seed=2), await submit(queue, seed=3)
        positions = [(await queue.status(request_id))[1] for request_id in (first, second, low)]
        claims = [await queue.claim(worker) for worker in ("w1", "w2", "w3")]
        return positions, [claim.request_id for claim in claims], (first, second, low), await queue.claim("w4")

    positions, claimed, (first, second, low), none_left = run(with_queue(url, body))
    assert positions == [0, 1, 2]
    assert claimed == [first, second, low] and none_left is None


def test_concurrent_workers_never_claim_the_same_job(url):
    async def body(queue: PgJobQueue):
        submitted = {await submit(queue, seed=seed) for seed in range(8)}
        claims = await asyncio.gather(*(queue.claim(f"w{n}") for n in range(12)))
        return submitted, [claim.request_id for claim in claims if claim is not None]

    submitted, claimed = run(with_queue(url, body))
    assert sorted(claimed) == sorted(submitted)  # each once, none twice


def test_a_lost_lease_requeues_the_job_and_the_late_result_is_discarded(url):
    async def body(queue: PgJobQueue):
        request_id = await submit(queue)
        lost = await queue.claim("w1")
        assert await queue.renew(request_id, lost.lease) is False
        await stop_renewing(queue)  # w1 stops renewing: its lease runs out
        assert await queue.requeue_expired() == [(request_id, QUEUED)]
        taken = await queue.claim("w2")
        late = await queue.complete(request_id, lost.lease, {"video": {"file_name": "late.mp4"}, "prompt": "x"})
        await queue.log(request_id, lost.lease, [("INFO", "from the lost worker")])
        assert await queue.renew(request_id, lost.lease) is None
        await queue.log(request_id, taken.lease, [("INFO", "from the new worker")])
        done = await queue.complete(request_id, taken.lease, {"video": {"file_name": "a.mp4"}, "prompt": "x"})
        return taken, late, done, await queue.get(request_id)

    taken, late, done, job = run(with_queue(url, body))
    assert taken.attempts == 2 and late is False and done is True
    assert job.state == COMPLETED and job.video == {"file_name": "a.mp4"}
    assert [line["message"] for line in job.logs] == ["from the new worker"]


def test_a_job_whose_workers_keep_dying_fails_after_the_most_attempts(url):
    async def body(queue: PgJobQueue):
        request_id = await submit(queue)
        for attempt in range(2):
            assert (await queue.claim(f"w{attempt}")).attempts == attempt + 1
            await stop_renewing(queue)
            await queue.requeue_expired()
        return await queue.get(request_id)

    job = run(with_queue(url, body, max_attempts=2))
    assert job.state == FAILED and job.error_type == "worker_lost"
    assert job.error.startswith("the request's worker stopped 2 times while running it")


def test_a_refused_job_goes_to_another_worker_or_fails_when_none_is_left(url):
    async def body(queue: PgJobQueue):
        for worker in ("w1", "w2"):
            await queue.heartbeat(worker, runs_jobs=True)
        await queue.heartbeat("gateway", runs_jobs=False)
        request_id = await submit(queue)
        first = await queue.claim("w1")
        after_first = await queue.release(request_id, first.lease, "w1", "no checkpoint x.safetensors here")
        assert await queue.claim("w1") is None  # w1 does not take it again
        second = await queue.claim("w2")
        after_second = await queue.release(request_id, second.lease, "w2", "no checkpoint x.safetensors here")
        return after_first, after_second, await queue.get(request_id)

    after_first, after_second, job = run(with_queue(url, body))
    assert (after_first, after_second) == (QUEUED, FAILED)
    assert job.state == FAILED and job.error == "no worker of the fleet can run this request: no checkpoint " \
                                                 "x.safetensors here"
    assert [line["message"] for line in job.logs] == [f"worker {w} cannot run this request: no checkpoint "
                                                      f"x.safetensors here" for w in ("w1", "w2")]


def test_cancel_ends_a_waiting_job_and_notifies_the_worker_of_a_running_one(url):
    async def body(queue: PgJobQueue):
        running = await submit(queue, seed=1)
        claim = await queue.claim("w1")
        waiting = await submit(queue, seed=2)
        heard = asyncio.Queue()
        listener = asyncio.create_task(database.listen(url, {CANCEL_CHANNEL: heard.put}))
        await asyncio.sleep(0.5)  # LISTEN is in place
        states = [await queue.cancel(waiting), await queue.cancel(running), await queue.cancel(waiting)]
        notified = await asyncio.wait_for(heard.get(), 5)
        asked = await queue.renew(running, claim.lease)
        listener.cancel()
        return states, notified, asked, await queue.get(waiting), await queue.get(running), await queue.claim("w2")

    states, notified, asked, waiting, running, claim = run(with_queue(url, body))
    assert states == [QUEUED, RUNNING, CANCELLED]
    assert notified == running.request_id and asked is True
    assert waiting.state == CANCELLED and waiting.error_type == "request_cancelled" and claim is None
    assert running.state == RUNNING and running.cancel_requested


def test_the_webhook_is_taken_once_and_only_when_finished(url):
    async def body(queue: PgJobQueue):
        request_id = await submit(queue)
        claim = await queue.claim("w1")
        before = await queue.take_webhook(request_id)
        await queue.fail(request_id, claim.lease, "boom", "execution_error")
        return before, await asyncio.gather(*(queue.take_webhook(request_id) for _ in range(4)))

    before, takes = run(with_queue(url, body))
    assert before is False and sorted(takes) == [False, False, False, True]


def test_a_retried_job_writes_to_a_file_name_of_its_own():
    """A ComfyUI that ran the same prompt before (its result discarded after a lost lease) would answer a second
    run from its cache, with no mp4: the retry's prompt differs in the output file name only."""
    prompt = {"text_to_video": {"class_type": "LTX097TextToVideo",
                                "inputs": {"filename_prefix": "ltxv097_api/r1", "seed": 3}},
              "model": {"class_type": "LTX097ModelLoader", "inputs": {}}}
    first = worker_module.attempt_prompt(queue_module.Claim("r1", "lease", prompt, {}, 1))
    second = worker_module.attempt_prompt(queue_module.Claim("r1", "lease", prompt, {}, 2))
    assert first == prompt
    assert second["text_to_video"]["inputs"] == {"filename_prefix": "ltxv097_api/r1-attempt2", "seed": 3}
    assert second["model"] == prompt["model"] and prompt["text_to_video"]["inputs"]["filename_prefix"] == \
        "ltxv097_api/r1"


def test_a_refused_job_fails_once_the_workers_that_could_run_it_are_gone(url):
    async def body(queue: PgJobQueue):
        for worker in ("w1", "w2"):
            await queue.heartbeat(worker, runs_jobs=True)
        request_id = await submit(queue)
        claim = await queue.claim("w1")
        after_release = await queue.release(request_id, claim.lease, "w1", "no file only_here.safetensors")
        still_alive = await queue.fail_unrunnable()
        await stop_renewing(queue, worker="w2")  # w2 dies; w1 lives on but refused it
        return after_release, still_alive, await queue.fail_unrunnable(), request_id, await queue.get(request_id)

    after_release, still_alive, failed, request_id, job = run(with_queue(url, body))
    assert after_release == QUEUED and still_alive == [] and failed == [request_id]
    assert job.state == FAILED and job.error_type == "no_worker"
    assert job.error == "no worker of the fleet can run this request: no file only_here.safetensors"
