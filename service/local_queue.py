"""The requests of one ComfyUI: kept in this process (and on disk), run on its own queue, followed to their end.

`LocalQueue` is the `JobQueue` of a single server. It queues each request's prompt on ComfyUI's queue (a
low-priority one behind every normal one), follows every unfinished one through ComfyUI's queue and history (a task
that runs while any is unfinished), fails a queued one whose start deadline passed, settles it (the saved mp4, a
failure or a cancellation), removes its condition media, sends its webhook once whatever the ending (a cancel while
queued included), and writes the lines of the run log to the running request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from .graph import OUTPUT_NODE
from .jobs import COMPLETED, QUEUED, START_TIMEOUT, Job, JobBook, result_json, start_timeout_error, video_url
from .outcome import failure, prompt_used, saved_video
from .queue import QueueStatus
from .retention import PRUNE_EVERY_SECONDS, remove_result_file
from .store import JobStore

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.2


class LocalQueue:
    """`host` is a `service.host.ComfyHost` (or a stand-in with the same methods); `notify(job, output JSON or
    None)` is called when a request with a webhook finishes; `remove_media(request_id)` deletes its input files (and
    whatever else a request holds until it ends); `sign(url)` is the mp4 URL a webhook receives (signed when keys
    are set); `retention_seconds` is how long a finished request is kept (None: forever)."""

    def __init__(self, host, store: JobStore, notify: Callable[[Job, dict | None], Awaitable[None]],
                 remove_media: Callable[[str], None], sign: Callable[[str], str] = lambda url: url,
                 retention_seconds: float | None = None):
        self.host, self.store, self.notify, self.remove_media = host, store, notify, remove_media
        self.sign, self.retention_seconds = sign, retention_seconds
        self.book = JobBook(store.save)
        for job in store.load_all():
            self.book.add(job, persist=False)
        self._follower: asyncio.Task | None = None
        self._last_prune = float("-inf")
        self.prune()

    # JobQueue -------------------------------------------------------------------------------------------------

    async def enqueue(self, job: Job, prompt: dict) -> None:
        self.prune()
        self.book.add(job, persist=False)  # before ComfyUI may start it, so its first log lines find it
        try:
            await self.host.queue(prompt, job.request_id, low_priority=job.priority == "low")
        except Exception:
            self.book.discard(job.request_id)
            raise
        self.store.save(job)
        self.ensure_following()

    async def get(self, request_id: str) -> Job | None:
        return self.book.get(request_id)

    async def status(self, request_id: str) -> QueueStatus | None:
        job = self.book.get(request_id)
        if job is None or job.state != QUEUED:
            return None if job is None else QueueStatus(job, None)
        # ComfyUI may have taken it from its queue since the follower last looked: then it is in progress, and the
        # requests behind it are counted from 0 without it.
        running, pending = self.host.queue_order()
        if request_id in running:
            self.book.start(request_id)
            return QueueStatus(self.book.get(request_id), None)
        return QueueStatus(job, pending.index(request_id) if request_id in pending else 0)

    async def cancel(self, request_id: str) -> bool:
        job = self.book.get(request_id)
        if job is None or job.finished:
            return False
        self.book.request_cancel(request_id)
        if job.state == QUEUED and self.host.remove_queued(request_id):
            self.book.fail(request_id, "the request was cancelled before it started", "request_cancelled",
                           cancelled=True)
            self.ended(request_id)
        else:
            self.host.interrupt(request_id)
        return True

    async def finished(self, request_id: str) -> Job:
        while not (job := self.book.get(request_id)).finished:
            await asyncio.sleep(POLL_SECONDS)
        return job

    # retention ------------------------------------------------------------------------------------------------

    def prune(self) -> None:
        """Forget the requests that ended more than the retention ago: their record, their mp4 (at most every
        PRUNE_EVERY_SECONDS)."""
        if self.retention_seconds is None or time.monotonic() - self._last_prune < PRUNE_EVERY_SECONDS:
            return
        self._last_prune = time.monotonic()
        expired = self.book.finished_before(time.time() - self.retention_seconds)
        for job in expired:
            self.book.discard(job.request_id)
            self.store.remove(job.request_id)
            if job.video:
                remove_result_file(self.host.output_dir(), job.video.get("path"))
        if expired:
            logger.info("LTX-Video API: %d finished requests older than the retention pruned", len(expired))

    # following ComfyUI ----------------------------------------------------------------------------------------

    def on_log(self, message: str) -> None:
        """run_log listener (ComfyUI's worker thread): the line belongs to the prompt running now."""
        prompt_id = self.host.current_prompt_id()
        if prompt_id:
            self.book.log(prompt_id, message)

    def ensure_following(self) -> None:
        if self._follower is None or self._follower.done():
            self._follower = asyncio.get_running_loop().create_task(self.follow_until_done())

    async def follow_until_done(self) -> None:
        """Follow every unfinished request through ComfyUI's queue and history until none is left."""
        while True:
            active = self.book.active()
            if not active:
                return
            try:
                self.follow(active)
            except Exception:
                logger.exception("LTX-Video API: following the queue failed")
            await asyncio.sleep(POLL_SECONDS)

    def follow(self, active: list[Job]) -> None:
        running, pending = self.host.queue_order()
        for job in active:
            if job.request_id in running:
                self.book.start(job.request_id)
            elif job.request_id not in pending:
                self.settle(job)
            elif job.state == QUEUED and job.start_deadline is not None and time.time() > job.start_deadline:
                self.time_out(job)

    def time_out(self, job: Job) -> None:
        """A request that did not start within its `X-Fal-Request-Timeout` leaves the queue and fails (504)."""
        if not self.host.remove_queued(job.request_id):
            return
        self.book.fail(job.request_id, start_timeout_error(job.start_deadline - job.created_at), START_TIMEOUT)
        self.remove_media(job.request_id)
        self.ended(job.request_id)

    def settle(self, job: Job) -> None:
        entry = self.host.history(job.request_id)
        if entry is None:  # removed from the queue by someone else (e.g. the UI's queue panel)
            self.book.fail(job.request_id, "the request was removed from the queue", "request_cancelled",
                           cancelled=True)
        elif (entry.get("status") or {}).get("status_str") == "success":
            video = saved_video(entry, self.host.output_dir())
            if video is None:
                self.book.fail(job.request_id, f"the prompt finished without an mp4 from {OUTPUT_NODE}",
                               "execution_error")
            else:
                self.book.complete(job.request_id, video, prompt_used(entry) or job.prompt)
        else:
            message, error_type, interrupted = failure(entry)
            current = self.book.get(job.request_id)
            by_api = interrupted and current is not None and current.cancel_requested
            # an interrupt from ComfyUI's UI cancels the request too: it ends as cancelled, not as a server error
            self.book.fail(job.request_id, "the request was cancelled" if by_api else message, error_type,
                           cancelled=interrupted)
        self.remove_media(job.request_id)
        self.ended(job.request_id)

    def ended(self, request_id: str) -> None:
        """Send the webhook of a request that has just ended (whatever the ending: each ending comes here once)."""
        record = self.book.get(request_id)
        if record is not None and record.finished and record.webhook_url:
            output = result_json(record, self.sign(video_url(record.server_url, record))) \
                if record.state == COMPLETED else None
            asyncio.get_running_loop().create_task(self.notify(record, output))
