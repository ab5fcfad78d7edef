"""The fleet mode in one ComfyUI: connects to the database in the background (ComfyUI and its UI start whatever the
database does), then runs this instance's worker and its notification listener. Until the database is usable,
`problem` holds the message the API answers with (503) and the start-up log shows.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Awaitable, Callable, Optional

from ..config import ServiceConfig
from ..jobs import COMPLETED, Job, result_json
from .database import connect_until_ready, listen
from .queue import CANCEL_CHANNEL, SUBMIT_CHANNEL, PgJobQueue
from .worker import FleetWorker

logger = logging.getLogger(__name__)

CONNECTING = "the API is connecting to its job database; try again in a few seconds"


class Fleet:
    """`file_url(base_url, job)` builds a result's URL (for webhooks); `notify(job, output)` sends a webhook."""

    def __init__(self, host, config: ServiceConfig, url: str, *, file_url: Callable[[str, Job], str],
                 notify: Optional[Callable[[Job, Optional[dict]], Awaitable[None]]] = None, media=None,
                 remove_media: Callable[[str], None] = lambda request_id: None):
        self.host, self.config, self.url = host, config, url
        self.file_url, self.notify, self.media, self.remove_media = file_url, notify, media, remove_media
        self.storage = Path(config.storage_dir).expanduser() if config.storage_dir else host.output_dir()
        self.problem: Optional[str] = CONNECTING
        self.queue: Optional[PgJobQueue] = None
        self.worker: Optional[FleetWorker] = None
        self._tasks: list[asyncio.Task] = []

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._tasks.append(loop.create_task(self.connect()))

    async def connect(self) -> None:
        pool = await connect_until_ready(self.url, self.report)
        self.queue = PgJobQueue(pool, lease_seconds=self.config.lease_seconds, max_attempts=self.config.max_attempts)
        self.worker = FleetWorker(self.host, self.queue, self.config, storage=self.storage,
                                  runs_jobs=not self.config.gateway_only, finished=self.finished, media=self.media,
                                  remove_media=self.remove_media)
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self.worker.run_forever()))
        self._tasks.append(loop.create_task(listen(self.url, {CANCEL_CHANNEL: self.worker.on_cancel,
                                                              SUBMIT_CHANNEL: self.on_submitted})))
        logger.info("LTX-Video API: the job database is ready; this instance is %s (worker %s)",
                    "a gateway only" if self.config.gateway_only else "a gateway and a worker", self.worker.name)

    async def on_submitted(self, _payload: str) -> None:
        self.worker.on_submitted()

    def report(self, message: Optional[str]) -> None:
        if message is not None and message != self.problem:
            logger.error("LTX-Video API: %s", message)
        self.problem = message

    def on_log(self, message: str) -> None:
        if self.worker is not None:
            self.worker.on_log(message)

    async def finished(self, request_id: str) -> None:
        """A request ended (here or by housekeeping): send its webhook, once across the fleet."""
        if self.notify is None or not await self.queue.take_webhook(request_id):
            return
        job = await self.queue.get(request_id)
        if job is None or not job.webhook_url:
            return
        output = result_json(job, self.file_url(job.server_url, job)) if job.state == COMPLETED else None
        await self.notify(job, output)
