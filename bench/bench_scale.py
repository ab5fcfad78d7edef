#!/usr/bin/env python
"""The fleet queue's own cost (issue 19): submit-to-start latency with an idle worker, database round trips per
job, and throughput with 1, 2 and 3 workers, on a throwaway PostgreSQL.

The workers are the pack's real `FleetWorker`s on the real `PgJobQueue`; only ComfyUI is replaced by a host whose
"prompt" waits `--job-seconds` and writes a small mp4-named file, so the figures are the queue's (claiming, leases,
logs, results, webhooks bookkeeping) and not the CPU's. The server-level behaviour (real ComfyUI workers) is what
tests/test_fleet_api.py checks.

    .venv/bin/python bench/bench_scale.py                    # 40 latency jobs, 60 jobs of 0.2 s per worker count
    .venv/bin/python bench/bench_scale.py --json scale.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.append(str(REPO))
sys.path.append(str(REPO / "tests"))

from support.pg_server import PgServer  # noqa: E402
from support.plain_pack import pack_module  # noqa: E402

graph, database, pg_queue, channels, storage, worker_module, pruning = (
    pack_module(f"service.{name}") for name in ("graph", "pgqueue.database", "pgqueue.queue", "pgqueue.channels",
                                                "pgqueue.storage", "pgqueue.worker", "pgqueue.pruning"))
OUTPUT_NODE, OUTPUT_SUBFOLDER = graph.OUTPUT_NODE, graph.OUTPUT_SUBFOLDER
listen, open_database = database.listen, database.open_database
CANCEL_CHANNEL, SUBMIT_CHANNEL, PgJobQueue = channels.CANCEL_CHANNEL, channels.SUBMIT_CHANNEL, pg_queue.PgJobQueue
SharedStorage, FleetWorker, Pruner = storage.SharedStorage, worker_module.FleetWorker, pruning.Pruner


class WaitingHost:
    """ComfyUI's queue as the worker sees it, running each prompt by waiting (one at a time, like ComfyUI)."""

    def __init__(self, folder: Path, job_seconds: float):
        self.folder, self.job_seconds = folder, job_seconds
        self.running: str | None = None
        self.entries: dict[str, dict] = {}

    def input_dir(self) -> Path:
        return self.folder / "input"

    def output_dir(self) -> Path:
        return self.folder / "output"

    async def queue(self, prompt: dict, prompt_id: str) -> None:
        self.running = prompt_id
        asyncio.get_running_loop().create_task(self._run(prompt_id))

    async def _run(self, prompt_id: str) -> None:
        await asyncio.sleep(self.job_seconds)
        name = f"{prompt_id}.mp4"
        (self.output_dir() / OUTPUT_SUBFOLDER).mkdir(parents=True, exist_ok=True)
        (self.output_dir() / OUTPUT_SUBFOLDER / name).write_bytes(b"\0" * 1024)
        self.entries[prompt_id] = {"status": {"status_str": "success"}, "outputs": {OUTPUT_NODE: {"images": [
            {"type": "output", "filename": name, "subfolder": OUTPUT_SUBFOLDER}]}}}
        self.running = None

    def queue_order(self) -> tuple[set[str], list[str]]:
        return ({self.running} if self.running else set()), []

    def history(self, prompt_id: str) -> dict | None:
        return self.entries.get(prompt_id)

    def remove_queued(self, prompt_id: str) -> bool:
        return False

    def interrupt(self, prompt_id: str) -> None:
        pass

    def current_prompt_id(self) -> str | None:
        return self.running


async def transactions(queue: PgJobQueue) -> int:
    """Committed transactions of the database so far (every autocommit statement is one round trip)."""
    async with queue.pool.connection() as connection:
        await connection.execute("SELECT pg_stat_clear_snapshot()")
        row = await (await connection.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")).fetchone()
    return row[0]


async def start_workers(url: str, folder: Path, count: int, job_seconds: float, lease_seconds: float):
    workers, tasks, pools = [], [], []
    for number in range(count):
        pool = await open_database(url)
        pools.append(pool)
        queue = PgJobQueue(pool, lease_seconds=lease_seconds, max_attempts=3)
        host = WaitingHost(folder / f"w{number}", job_seconds)
        host.output_dir().mkdir(parents=True, exist_ok=True)

        async def finished(_request_id: str) -> None:
            return None

        shared = SharedStorage(host.output_dir(), host.output_dir())
        worker = FleetWorker(host, queue, shared, runs_jobs=True, finished=finished,
                             request_ended=lambda request_id: None, restore_sealed=lambda parts, request_id: None,
                             pruner=Pruner(pool, shared, None))  # nothing is old enough to prune in a benchmark
        workers.append(worker)
        tasks.append(asyncio.create_task(worker.run_forever()))
        tasks.append(asyncio.create_task(listen(url, {CANCEL_CHANNEL: worker.on_cancel,
                                                      SUBMIT_CHANNEL: worker.on_submitted})))
    await asyncio.sleep(1.0)  # every worker is listening and has done its first housekeeping
    return workers, tasks, pools


async def wait_finished(queue: PgJobQueue, request_ids: list[str]) -> None:
    for request_id in request_ids:
        while not (await queue.get(request_id)).finished:
            await asyncio.sleep(0.01)


async def latency(url: str, folder: Path, jobs: int, job_seconds: float) -> dict:
    """One idle worker; jobs submitted one at a time: queued → started (the database's clock) per job."""
    workers, tasks, pools = await start_workers(url, folder / "latency", 1, job_seconds, lease_seconds=30)
    gateway = PgJobQueue(await open_database(url), lease_seconds=30, max_attempts=3)
    before = await transactions(gateway)
    ids = []
    for number in range(jobs):
        request_id = str(uuid.uuid4())
        await gateway.submit(request_id, {"prompt": number}, {"seed": number, "prompt": f"job {number}"})
        await wait_finished(gateway, [request_id])
        ids.append(request_id)
    after = await transactions(gateway)
    async with gateway.pool.connection() as connection:
        waits = [row[0] * 1000 for row in await (await connection.execute(
            "SELECT extract(epoch FROM started_at - queued_at)::float8 FROM ltxv097_jobs WHERE request_id = ANY(%s)",
            (ids,))).fetchall()]
    for task in tasks:
        task.cancel()
    for pool in pools + [gateway.pool]:
        await pool.close()
    waits.sort()
    return {"jobs": jobs, "start_p50_ms": statistics.median(waits),
            "start_p99_ms": waits[min(len(waits) - 1, int(len(waits) * 0.99))],
            "transactions_per_job_all": (after - before) / jobs}


async def worker_round_trips(url: str, folder: Path, jobs: int, job_seconds: float) -> float:
    """Transactions per job of the worker side alone: jobs queued first, then one worker runs them all."""
    gateway = PgJobQueue(await open_database(url), lease_seconds=30, max_attempts=3)
    ids = [str(uuid.uuid4()) for _ in range(jobs)]
    for number, request_id in enumerate(ids):
        await gateway.submit(request_id, {"prompt": number}, {"seed": number, "prompt": f"job {number}"})
    before = await transactions(gateway)
    workers, tasks, pools = await start_workers(url, folder / "trips", 1, job_seconds, lease_seconds=30)
    while True:
        async with gateway.pool.connection() as connection:
            left = (await (await connection.execute(
                "SELECT count(*) FROM ltxv097_jobs WHERE request_id = ANY(%s) AND state <> 'completed'",
                (ids,))).fetchone())[0]
        if not left:
            break
        await asyncio.sleep(0.5)
    after = await transactions(gateway)
    for task in tasks:
        task.cancel()
    for pool in pools + [gateway.pool]:
        await pool.close()
    return (after - before) / jobs


async def throughput(url: str, folder: Path, workers_count: int, jobs: int, job_seconds: float) -> dict:
    workers, tasks, pools = await start_workers(url, folder / f"t{workers_count}", workers_count, job_seconds,
                                                lease_seconds=30)
    gateway = PgJobQueue(await open_database(url), lease_seconds=30, max_attempts=3)
    started = time.perf_counter()
    ids = []
    for number in range(jobs):
        request_id = str(uuid.uuid4())
        await gateway.submit(request_id, {"prompt": number}, {"seed": number, "prompt": f"job {number}"})
        ids.append(request_id)
    await wait_finished(gateway, ids)
    seconds = time.perf_counter() - started
    for task in tasks:
        task.cancel()
    for pool in pools + [gateway.pool]:
        await pool.close()
    ideal = jobs * job_seconds / workers_count
    return {"workers": workers_count, "jobs": jobs, "seconds": seconds, "jobs_per_s": jobs / seconds,
            "vs_ideal": ideal / seconds}


async def measure(args: argparse.Namespace, url: str, folder: Path) -> dict:
    results = {"latency": await latency(url, folder, args.latency_jobs, args.job_seconds),
               "worker_transactions_per_job": await worker_round_trips(url, folder, args.latency_jobs,
                                                                       args.job_seconds),
               "throughput": [await throughput(url, folder, count, args.jobs, args.job_seconds)
                              for count in (1, 2, 3)]}
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--latency-jobs", type=int, default=40)
    parser.add_argument("--jobs", type=int, default=60)
    parser.add_argument("--job-seconds", type=float, default=0.2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as folder, PgServer() as pg:
        results = asyncio.run(measure(args, pg.url, Path(folder)))
    print(json.dumps(results, indent=1))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
