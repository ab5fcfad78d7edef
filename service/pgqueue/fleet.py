"""The fleet mode's `JobQueue` (the seam of `service/queue.py`): requests in PostgreSQL, so any instance accepts,
answers and cancels any request, and this instance's worker runs jobs whoever accepted them.

It connects in the background (ComfyUI and its UI start whatever the database does); until the database is
usable `problem` holds the message the API answers with (503) and the start-up log shows.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from ...fetch import restore_sealed, take_sealed
from ..config import ServiceConfig
from ..gate import new_secret
from ..jobs import COMPLETED, QUEUED, RUNNING, Job, result_json, video_url
from ..queue import QueueStatus
from ..retention import retention_seconds
from .channels import CANCEL_CHANNEL, LOW, NORMAL, SUBMIT_CHANNEL
from .settings import redact
from .storage import SharedStorage

logger = logging.getLogger(__name__)

CONNECTING = "the API is connecting to its job database; try again in a few seconds"
NO_DRIVER = ("database_url is set but psycopg 3 is not installed in ComfyUI's Python: run `pip install "
             "'psycopg[binary]' psycopg_pool` there and restart (or remove database_url)")
FINISHED_POLL_SECONDS = 0.2
GATE_SECRET = "gate"
"""The name of the gate's secret in the database (`service/gate.py`)."""


class FleetQueue:
    """`notify(job, output)` sends a webhook; `media_prefix(request_id)` names a request's condition files in the
    input folder; `request_ended(request_id)` deletes them and forgets its sealed URLs; `sign(url)` is the mp4 URL a
    webhook receives (signed when keys are set); `use_secret(secret)` gives the gate the fleet's shared secret."""

    def __init__(self, host, config: ServiceConfig, url: str, storage: SharedStorage, *,
                 notify: Callable[[Job, dict | None], Awaitable[None]] | None,
                 media_prefix: Callable[[str], str], request_ended: Callable[[str], None],
                 sign: Callable[[str], str] = lambda url: url,
                 use_secret: Callable[[bytes], None] = lambda secret: None):
        self.host, self.config, self.url, self.storage = host, config, url, storage
        self.notify, self.media_prefix, self.request_ended = notify, media_prefix, request_ended
        self.sign, self.use_secret = sign, use_secret
        self.problem: str | None = CONNECTING
        self.jobs = None
        """The `PgJobQueue` once connected."""
        self.worker = None
        """This instance's `FleetWorker` once connected."""
        self.database_errors: tuple[type[BaseException], ...] = ()
        """The driver's errors (a lost connection), known once the driver is imported."""
        self._tasks: list[asyncio.Task] = []

    # start-up ---------------------------------------------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._tasks.append(loop.create_task(self.connect()))

    async def connect(self) -> None:
        try:  # the driver is needed only here: without it the API answers 503 saying what to install
            import psycopg
            import psycopg_pool

            from .database import connect_until_ready, listen
            from .pruning import Pruner
            from .queue import PgJobQueue
            from .worker import FleetWorker
        except ImportError:
            self.report(NO_DRIVER)
            return
        self.database_errors = (psycopg.Error, psycopg_pool.PoolTimeout)
        pool = await connect_until_ready(self.url, self.report)
        retention = retention_seconds(self.config.result_retention_hours)
        self.jobs = PgJobQueue(pool, lease_seconds=self.config.lease_seconds, max_attempts=self.config.max_attempts)
        self.use_secret(bytes.fromhex(await self.jobs.shared_secret(GATE_SECRET, new_secret())))
        self.worker = FleetWorker(self.host, self.jobs, self.storage, runs_jobs=not self.config.gateway_only,
                                  finished=self.finished_here, request_ended=self.request_ended,
                                  restore_sealed=restore_sealed, pruner=Pruner(pool, self.storage, retention))
        self.report(None)  # the API answers from here on
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self.worker.run_forever()))
        self._tasks.append(loop.create_task(listen(self.url, {CANCEL_CHANNEL: self.worker.on_cancel,
                                                              SUBMIT_CHANNEL: self.worker.on_submitted})))
        logger.info("LTX-Video API: the job database is ready; this instance is %s (worker %s)",
                    "a gateway only" if self.config.gateway_only else "a gateway and a worker", self.worker.name)

    def report(self, message: str | None) -> None:
        if message is not None and message != self.problem:
            logger.error("LTX-Video API: %s", message)
        self.problem = message

    def lost_message(self, lost: BaseException) -> str:
        reason = " ".join(str(lost).split()) or type(lost).__name__
        return redact(f"the API's job database cannot be reached right now ({reason}); try again in a few seconds",
                      self.url)

    def on_log(self, message: str) -> None:
        """run_log listener (ComfyUI's execution thread)."""
        if self.worker is not None:
            self.worker.on_log(message)

    # the seam ---------------------------------------------------------------------------------------------------

    async def enqueue(self, job: Job, prompt: dict) -> None:
        await asyncio.to_thread(self.storage.stash_inputs, self.host.input_dir(), self.media_prefix(job.request_id),
                                job.request_id)
        settings = {"seed": job.seed, "prompt": job.prompt, "webhook_url": job.webhook_url,
                    "server_url": job.server_url, "endpoint": job.endpoint,
                    "start_timeout": None if job.start_deadline is None else job.start_deadline - job.created_at}
        # the secret parts of its LoRA URLs leave this process's memory for the job's row (the worker's alone)
        sealed = take_sealed(job.request_id)
        await self.jobs.submit(job.request_id, prompt, settings, LOW if job.priority == "low" else NORMAL, sealed)

    async def get(self, request_id: str) -> Job | None:
        return await self.jobs.get(request_id)

    async def status(self, request_id: str) -> QueueStatus | None:
        found = await self.jobs.status(request_id)
        return None if found is None else QueueStatus(*found)

    async def cancel(self, request_id: str) -> bool:
        before = await self.jobs.cancel(request_id)
        if before == QUEUED:
            self.storage.drop_inputs(request_id)
            await self.finished_here(request_id)
        return before in (QUEUED, RUNNING)

    async def finished(self, request_id: str) -> Job:
        while True:
            job = await self.jobs.get(request_id)
            if job is None or job.finished:
                return job
            await asyncio.sleep(FINISHED_POLL_SECONDS)

    # endings ----------------------------------------------------------------------------------------------------

    async def finished_here(self, request_id: str) -> None:
        """A request ended on this instance (or by its housekeeping): its webhook, once across the fleet."""
        if self.notify is None or not await self.jobs.take_webhook(request_id):
            return
        job = await self.jobs.get(request_id)
        if job is None or not job.webhook_url:
            return
        output = result_json(job, self.sign(video_url(job.server_url, job))) if job.state == COMPLETED else None
        await self.notify(job, output)
