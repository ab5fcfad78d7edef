"""A fleet worker inside ComfyUI: while its own ComfyUI queue is idle it claims the next job from PostgreSQL, runs
it on that queue exactly as the single-server mode does (same prompt, same node, same history), renews the lease,
writes log lines and the outcome back, and stops the prompt when a cancel arrives or when it lost the lease.

It also does the fleet's housekeeping (a gateway-only instance too): about once a second the failure of jobs that
did not start within their `X-Fal-Request-Timeout`; every lease/3 seconds its heartbeat (who can run jobs), the requeue
of jobs whose worker stopped renewing, the failure of jobs that no live worker can run, and (every few minutes, one
instance at a time) the pruning of finished jobs past the retention (`pruning.py`). Runs as one asyncio task
on ComfyUI's event loop; the log listener is the only part called from ComfyUI's execution thread.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable

from ..graph import OUTPUT_NODE
from ..outcome import failure, prompt_used, saved_video
from .pruning import Pruner
from .queue import Claim, PgJobQueue
from .storage import SharedStorage

logger = logging.getLogger(__name__)

FOLLOW_SECONDS = 0.1
IDLE_SECONDS = 1.0
"""Longest wait between two looks at the queue when no notification arrives (submits notify at once)."""


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def attempt_prompt(claim: Claim) -> dict:
    """The prompt to queue: a retried job writes to a file name of its own, because a ComfyUI that already ran the
    same prompt (a result discarded after its lease was lost) would answer it from its cache without an mp4."""
    if claim.attempts <= 1:
        return claim.prompt
    node = claim.prompt[OUTPUT_NODE]
    prefix = f"{node['inputs']['filename_prefix']}-attempt{claim.attempts}"
    return {**claim.prompt, OUTPUT_NODE: {**node, "inputs": {**node["inputs"], "filename_prefix": prefix}}}


class FleetWorker:
    """`finished(request_id)` is awaited after a job ended here (webhook); `restore_sealed(parts, request_id)` makes
    the job's sealed LoRA URLs readable in this process (`fetch.restore_sealed`); `request_ended(request_id)` deletes
    its condition files from this ComfyUI's input folder and forgets those URLs; `pruner` deletes the jobs past the
    retention."""

    def __init__(self, host, queue: PgJobQueue, storage: SharedStorage, *, runs_jobs: bool,
                 finished: Callable[[str], Awaitable[None]], request_ended: Callable[[str], None],
                 restore_sealed: Callable[[dict, str], None], pruner: Pruner):
        self.host, self.queue, self.storage, self.runs_jobs = host, queue, storage, runs_jobs
        self.finished, self.request_ended, self.restore_sealed = finished, request_ended, restore_sealed
        self.pruner = pruner
        self.name = worker_name()
        self.wake = asyncio.Event()
        self.current: Claim | None = None
        self._cancel_asked = False
        self._lines: list[tuple[str, str]] = []
        self._lines_lock = threading.Lock()
        self._last_housekeeping = self._last_late_look = 0.0

    # notifications (event loop) ---------------------------------------------------------------------------------

    async def on_submitted(self, _payload: str = "") -> None:
        self.wake.set()

    async def on_cancel(self, request_id: str) -> None:
        """A cancel from any instance: the follower stops the prompt if this worker runs that request."""
        if self.current is not None and self.current.request_id == request_id:
            self._cancel_asked = True

    def on_log(self, message: str) -> None:
        """run_log listener (ComfyUI's execution thread): lines of the job this worker runs go to the database."""
        current = self.current
        if current is not None and self.host.current_prompt_id() == current.request_id:
            with self._lines_lock:
                self._lines.append(("INFO", message))

    # the loop ---------------------------------------------------------------------------------------------------

    async def run_forever(self) -> None:
        while True:
            self.wake.clear()  # before looking: a submit notified while looking wakes the next wait at once
            try:
                await self.housekeeping()
                claim = await self.queue.claim(self.name) if self.runs_jobs and self.idle() else None
                if claim is not None:
                    await self.run(claim)
                    continue
            except asyncio.CancelledError:
                raise
            except Exception:  # the database may be restarting: keep the worker alive and try again
                logger.exception("LTX-Video API: the fleet worker's pass failed")
            try:
                await asyncio.wait_for(self.wake.wait(), IDLE_SECONDS)
            except asyncio.TimeoutError:
                pass

    def idle(self) -> bool:
        running, pending = self.host.queue_order()
        return not running and not pending

    async def housekeeping(self) -> None:
        await self.fail_late()
        now = time.monotonic()
        if now - self._last_housekeeping < self.queue.lease_seconds / 3:
            return
        self._last_housekeeping = now
        await self.queue.heartbeat(self.name, runs_jobs=self.runs_jobs)
        for request_id, state in await self.queue.requeue_expired():
            logger.warning("LTX-Video API: request %s lost its worker; now %s", request_id, state)
            if state != "queued":
                await self.finished(request_id)
        for request_id in await self.queue.fail_unrunnable():
            logger.warning("LTX-Video API: request %s failed: no live worker can run it", request_id)
            await self.ended_waiting(request_id)
        await self.pruner.maybe_prune()

    async def fail_late(self) -> None:
        """Waiting jobs past their X-Fal-Request-Timeout fail (about once a second, idle or busy, as on one server)."""
        self._last_late_look = time.monotonic()
        for request_id in await self.queue.fail_late():
            logger.info("LTX-Video API: request %s failed: it did not start within its X-Fal-Request-Timeout",
                        request_id)
            await self.ended_waiting(request_id)

    async def ended_waiting(self, request_id: str) -> None:
        """A job that ended without running: its stashed condition files go, its webhook is sent (once)."""
        self.storage.drop_inputs(request_id)
        await self.finished(request_id)

    # one job ----------------------------------------------------------------------------------------------------

    async def run(self, claim: Claim) -> None:
        self.current, self._cancel_asked = claim, False
        with self._lines_lock:
            self._lines.clear()
        logger.info("LTX-Video API: worker %s runs request %s (attempt %d)", self.name, claim.request_id,
                    claim.attempts)
        try:
            if await self.start(claim):
                await self.follow(claim)
        finally:
            self.current = None
            self.request_ended(claim.request_id)
        if (await self.queue.get(claim.request_id)).finished:
            self.storage.drop_inputs(claim.request_id)
            await self.finished(claim.request_id)

    async def start(self, claim: Claim) -> bool:
        """Queue the request's prompt on this ComfyUI; False when this ComfyUI refused it (released to others)."""
        await asyncio.to_thread(self.storage.take_inputs, self.host.input_dir(), claim.request_id)
        self.restore_sealed(claim.sealed, claim.request_id)  # the prompt names them sealed, as on one server
        try:
            await self.host.queue(attempt_prompt(claim), claim.request_id)
        except Exception as refused:  # this ComfyUI cannot run it (a model file missing here...): others may
            node_errors = getattr(refused, "node_errors", None) or {}
            details = "; ".join(f"{node}: {e.get('message', '')}: {e.get('details', '')}".strip(": ")
                                for node, info in node_errors.items() for e in info.get("errors", []))
            reason = details or " ".join(str(refused).split()) or type(refused).__name__
            await self.queue.release(claim.request_id, claim.lease, self.name, reason)
            return False
        return True

    async def follow(self, claim: Claim) -> None:
        """Until ComfyUI ended the prompt: flush log lines, renew the lease, obey cancels; then write the outcome."""
        renewed, stopped = time.monotonic(), False
        while True:
            await self.flush_logs(claim)
            if time.monotonic() - renewed >= self.queue.lease_seconds / 3:
                renewed = time.monotonic()
                await self.housekeeping()  # a busy worker is still alive for the fleet, and still requeues
                asked = await self.queue.renew(claim.request_id, claim.lease)
                if asked is None:  # the lease is lost: the job is another worker's now
                    logger.warning("LTX-Video API: worker %s lost the lease of request %s; stopping it",
                                   self.name, claim.request_id)
                    self.stop_prompt(claim.request_id)
                    return
                self._cancel_asked = self._cancel_asked or asked  # a NOTIFY missed while reconnecting
            elif time.monotonic() - self._last_late_look >= IDLE_SECONDS:
                await self.fail_late()
            if self._cancel_asked and not stopped:
                stopped = True
                self.stop_prompt(claim.request_id)
            running, pending = self.host.queue_order()
            if claim.request_id not in running and claim.request_id not in pending:
                break
            await asyncio.sleep(FOLLOW_SECONDS)
        await self.flush_logs(claim)
        await self.settle(claim)

    def stop_prompt(self, request_id: str) -> None:
        if not self.host.remove_queued(request_id):
            self.host.interrupt(request_id)

    async def flush_logs(self, claim: Claim) -> None:
        with self._lines_lock:
            lines, self._lines = self._lines, []
        if lines:
            await self.queue.log(claim.request_id, claim.lease, lines)

    async def settle(self, claim: Claim) -> None:
        entry = self.host.history(claim.request_id)
        if entry is None:
            await self.queue.fail(claim.request_id, claim.lease, "the request was removed from the queue",
                                  "request_cancelled", cancelled=True)
        elif (entry.get("status") or {}).get("status_str") == "success":
            video = saved_video(entry, self.host.output_dir())
            if video is None:
                await self.queue.fail(claim.request_id, claim.lease,
                                      f"the prompt finished without an mp4 from {OUTPUT_NODE}", "execution_error")
            else:
                stored = await asyncio.to_thread(self.storage.store_video, claim.request_id, video)
                if not await self.queue.complete(claim.request_id, claim.lease,
                                                 {"video": stored,
                                                  "prompt": prompt_used(entry) or claim.settings["prompt"]}):
                    logger.warning("LTX-Video API: request %s finished here after its lease was lost; the result "
                                   "is discarded", claim.request_id)
        else:
            message, error_type, interrupted = failure(entry)
            cancelled = interrupted and self._cancel_asked
            await self.queue.fail(claim.request_id, claim.lease,
                                  "the request was cancelled" if cancelled else message,
                                  "request_cancelled" if cancelled else error_type, cancelled=cancelled)
