"""The fleet's job queue on a throwaway real PostgreSQL: migrations under concurrency, claiming with SKIP LOCKED,
priorities and fleet-wide positions, leases (renewal, expiry, late results discarded, attempts), refusals,
cancels (NOTIFY), the once-only webhook, the gate's secret shared by the fleet and the sealed LoRA URLs kept with
their job, the pruning of finished jobs past the retention. No ComfyUI here: the servers' side is in test_fleet_api.py.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import psycopg
import pytest

from support.pg_server import PgServer
from support.plain_pack import pack_module

jobs, database, migrations, channels, queue_module, settings_module, worker_module, fleet_module, gate = (
    pack_module(f"service.{name}") for name in ("jobs", "pgqueue.database", "pgqueue.migrations",
                                                "pgqueue.channels", "pgqueue.queue", "pgqueue.settings",
                                                "pgqueue.worker", "pgqueue.fleet", "gate"))
pruning, storage_module = pack_module("service.pgqueue.pruning"), pack_module("service.pgqueue.storage")
sealed, FetchError = pack_module("fetch.sealed"), pack_module("fetch.policy").FetchError
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
    first = worker_module.attempt_prompt(queue_module.Claim("r1", "lease", prompt, {}, 1, {}))
    second = worker_module.attempt_prompt(queue_module.Claim("r1", "lease", prompt, {}, 2, {}))
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


def test_a_job_not_started_within_its_start_timeout_is_never_claimed_and_fails_once(url):
    """fal's X-Fal-Request-Timeout in the fleet: a late waiting job is skipped by claims (even ahead in priority)
    and fails as the single server's do; a job that started and lost its worker is retried whatever the time."""
    async def body(queue: PgJobQueue):
        late = str(uuid.uuid4())
        await queue.submit(late, {"seed": 1}, {**settings(1), "start_timeout": 0.5, "endpoint": "image-to-video"})
        retried = str(uuid.uuid4())
        await queue.submit(retried, {"seed": 2}, {**settings(2), "start_timeout": 0.5}, LOW)
        other = await submit(queue, LOW, seed=3)
        first = await queue.claim("w1")  # the late one, still in time: taken, then its worker dies
        await stop_renewing(queue)
        await queue.requeue_expired()
        await asyncio.sleep(0.7)
        before = await queue.get(late)
        claims = [await queue.claim("w2"), await queue.claim("w3"), await queue.claim("w4")]
        return first, before, claims, [await queue.fail_late(), await queue.fail_late()], \
            await queue.get(late), await queue.get(retried), other

    first, before, claims, failed, late, retried, other = run(with_queue(url, body))
    assert first.request_id == late.request_id and before.state == QUEUED  # a started job is not "late"
    assert [claim and claim.request_id for claim in claims] == [late.request_id, other, None]  # retried is skipped
    assert failed == [[retried.request_id], []]
    assert retried.state == FAILED and retried.error_type == jobs.START_TIMEOUT
    assert retried.error == "the request did not start within 0.5 s (X-Fal-Request-Timeout)"
    assert retried.priority == "low" and abs(retried.start_deadline - retried.created_at - 0.5) < 1e-6
    assert late.priority == "normal" and late.endpoint == "image-to-video" and late.start_deadline is not None


FILES = "/ltxv097_api/files"
VIDEO_URL = f"https://a:1{FILES}/0b7e2a4c-3f1d-4c55-9a0e-5d6f7a8b9c0d/ltxv097_00001_.mp4"


def test_instances_starting_together_share_one_gate_secret_so_each_serves_the_urls_another_signed(url, tmp_path):
    async def body(queue: PgJobQueue):
        return await asyncio.gather(*(queue.shared_secret(fleet_module.GATE_SECRET, gate.new_secret())
                                      for _ in range(6)))

    values = run(with_queue(url, body))
    assert len(set(values)) == 1 and len(bytes.fromhex(values[0])) == 32
    # two instances with their own user folders (their own local secrets), as FleetQueue.connect sets them up
    a, b = (gate.Gate(["k1"], gate.load_secret(tmp_path / name), FILES) for name in ("a", "b"))
    assert a.signed(VIDEO_URL) != b.signed(VIDEO_URL), "the per-instance secrets differ"
    for instance in (a, b):
        instance.use_secret(bytes.fromhex(values[0]))
    assert b.signed(VIDEO_URL) == a.signed(VIDEO_URL)
    assert gate.Gate(["k2"], bytes.fromhex(values[0]), FILES).signed(VIDEO_URL) != a.signed(VIDEO_URL), \
        "the keys are still part of it"


def test_sealed_lora_urls_go_with_the_job_to_its_worker_only_and_are_forgotten_when_it_ends(url):
    full = "https://loras.example/style.safetensors?X-Amz-Signature=s3cr3t"
    owner = str(uuid.uuid4())
    in_prompt = sealed.seal_url(full, owner)  # the accepting instance
    parts = sealed.take_sealed(owner)
    with pytest.raises(FetchError, match="gone"):
        sealed.unseal_url(in_prompt)  # nothing left in the accepting instance's memory

    async def body(queue: PgJobQueue):
        await queue.submit(owner, {"lora": in_prompt}, settings(), NORMAL, parts)
        cancelled = str(uuid.uuid4())  # a waiting job cancelled: no worker ever needs its parts
        await queue.submit(cancelled, {"lora": in_prompt}, settings(2), LOW, parts)
        await queue.cancel(cancelled)
        claim = await queue.claim("w1")
        seen = await queue.get(owner)
        await queue.complete(owner, claim.lease, {"video": {"file_name": "x.mp4"}, "prompt": "p"})
        async with queue.pool.connection() as connection:
            left = await (await connection.execute("SELECT sealed FROM ltxv097_jobs")).fetchall()
        return claim, seen, left

    claim, seen, left = run(with_queue(url, body))
    assert claim.request_id == owner and claim.sealed == parts and "s3cr3t" not in json.dumps(claim.prompt)
    assert "s3cr3t" not in repr(seen), "never in what /status, /result or the logs show"
    assert left == [({},), ({},)], "forgotten once the jobs ended"
    sealed.restore_sealed(claim.sealed, owner)  # the worker, before queueing the prompt on its ComfyUI
    assert sealed.unseal_url(in_prompt) == full
    sealed.release(owner)  # the job ended there
    with pytest.raises(FetchError, match="gone"):
        sealed.unseal_url(in_prompt)


def test_finished_jobs_past_the_retention_go_with_their_files_and_unfinished_ones_stay(url, tmp_path):
    """Finished rows and their mp4s were kept forever: a worker's housekeeping now deletes the jobs that ended more
    than the retention ago (completed, failed or cancelled: their log lines and stored files too), never a waiting
    or running one however old, and one instance at a time (the others skip while one holds the lock)."""
    storage = storage_module.SharedStorage(tmp_path / "storage", tmp_path / "output")

    def stored(request_id: str) -> str:
        path = f"ltxv097_api/results/{request_id}/a.mp4"
        (storage.root / path).parent.mkdir(parents=True, exist_ok=True)
        (storage.root / path).write_bytes(b"mp4")
        return path

    async def body(queue: PgJobQueue):
        old, recent, cancelled, running, waiting = [await submit(queue, seed=seed) for seed in range(5)]
        await queue.cancel(cancelled)
        for request_id in (old, recent, running):
            claim = await queue.claim("w1")
            assert claim.request_id == request_id
            if request_id != running:
                await queue.log(request_id, claim.lease, [("INFO", "a line")])
                await queue.complete(request_id, claim.lease, {"video": {"path": stored(request_id)}, "prompt": "p"})
        storage.inputs(cancelled).mkdir(parents=True)  # condition files a gateway left behind
        async with queue.pool.connection() as connection:  # all queued two hours ago; only `recent` ended since
            await connection.execute(
                "UPDATE ltxv097_jobs SET queued_at = queued_at - interval '2 hours', "
                "started_at = started_at - interval '2 hours', finished_at = finished_at - CASE "
                "WHEN request_id = %s THEN interval '0 hours' ELSE interval '2 hours' END", (recent,))
            async with connection.transaction():  # another instance is pruning: this one skips
                await connection.execute("SELECT pg_advisory_xact_lock(%s)", (pruning.PRUNE_LOCK_KEY,))
                skipped = await pruning.prune_finished(queue.pool, 3600)
        await pruning.Pruner(queue.pool, storage, None).maybe_prune()  # a null retention keeps everything
        kept = [await queue.get(request_id) is not None for request_id in (old, recent, cancelled, running, waiting)]
        await pruning.Pruner(queue.pool, storage, 3600).maybe_prune()
        left = {request_id: (await queue.get(request_id)).state
                for request_id in (old, recent, cancelled, running, waiting) if await queue.get(request_id)}
        async with queue.pool.connection() as connection:
            lines = await (await connection.execute("SELECT request_id::text FROM ltxv097_job_logs")).fetchall()
        return (old, recent, cancelled, running, waiting), skipped, kept, left, lines

    (old, recent, cancelled, running, waiting), skipped, kept, left, lines = run(with_queue(url, body))
    assert skipped is None and kept == [True] * 5
    assert left == {recent: COMPLETED, running: RUNNING, waiting: QUEUED}, left
    assert lines == [(recent,)]  # the old job's log lines went with it
    assert not (storage.root / f"ltxv097_api/results/{old}").exists() and not storage.inputs(cancelled).exists()
    assert (storage.root / f"ltxv097_api/results/{recent}/a.mp4").is_file()
