"""Requests and their life: queued → running → completed / failed / cancelled, with logs, in fal's JSON shapes.

`JobBook` holds every request this server knows (thread-safe: the log listener runs on ComfyUI's worker thread)
and writes each state change through `JobStore`, so finished results outlive a restart. Pure Python.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

QUEUED, RUNNING, COMPLETED, FAILED, CANCELLED = "queued", "running", "completed", "failed", "cancelled"
FINISHED = (COMPLETED, FAILED, CANCELLED)
MAX_LOG_LINES = 2000
FILES_PREFIX = "/ltxv097_api/files"
"""Where the server serves a result's mp4: `<server>/ltxv097_api/files/{request id}/{file name}`."""


START_TIMEOUT = "request_timeout"
"""The error type of a request that did not start by its `X-Fal-Request-Timeout` (answered 504)."""


def start_timeout_error(seconds: float) -> str:
    """The error of a request that did not start within its `X-Fal-Request-Timeout` of `seconds` (every queue's)."""
    return f"the request did not start within {round(seconds, 1):g} s (X-Fal-Request-Timeout)"


def utc_timestamp(seconds: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if seconds is None else seconds, timezone.utc).isoformat()


@dataclass
class Job:
    request_id: str
    seed: int
    prompt: str
    state: str = QUEUED
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    logs: list = field(default_factory=list)
    video: dict | None = None
    """{"path": relative to the output folder, "file_name", "file_size"} once completed."""
    error: str | None = None
    error_type: str | None = None
    webhook_url: str | None = None
    server_url: str = ""
    """`scheme://host` the request was submitted to (for the file URL a webhook receives)."""
    cancel_requested: bool = False
    endpoint: str = "text-to-video"
    priority: str = "normal"
    """`X-Fal-Queue-Priority`: "low" runs behind every "normal" request."""
    start_deadline: float | None = None
    """`X-Fal-Request-Timeout`: the time by which the request must have started, else it fails (504)."""

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    def as_record(self) -> dict:
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict) -> Job:
        return cls(**record)


@dataclass(frozen=True)
class Urls:
    """The queue URLs of one request (absolute, on the host the client called)."""
    base: str

    def of(self, request_id: str) -> dict:
        root = f"{self.base}/requests/{request_id}"
        return {"response_url": root, "status_url": f"{root}/status", "cancel_url": f"{root}/cancel"}


def status_json(job: Job, urls: Urls, *, queue_position: int | None, with_logs: bool) -> dict:
    """fal's status object: IN_QUEUE (queue_position) / IN_PROGRESS / COMPLETED (error for failed and cancelled)."""
    body = {"request_id": job.request_id, **urls.of(job.request_id),
            "logs": list(job.logs) if with_logs else None}
    if job.state == QUEUED:
        body.update(status="IN_QUEUE", queue_position=queue_position or 0)
    elif job.state == RUNNING:
        body.update(status="IN_PROGRESS")
    else:
        body.update(status="COMPLETED", metrics=metrics(job))
        if job.state != COMPLETED:
            body.update(error=job.error, error_type=job.error_type)
    return body


def metrics(job: Job) -> dict:
    if job.started_at is None or job.finished_at is None:
        return {}
    return {"inference_time": round(job.finished_at - job.started_at, 3)}


def video_url(server_url: str, job: Job) -> str:
    """The absolute URL of a completed request's mp4 on the server at `server_url` (`scheme://host`)."""
    return f"{server_url}{FILES_PREFIX}/{job.request_id}/{job.video['file_name']}"


def result_json(job: Job, file_url: str) -> dict:
    """The service's output: `{video: File, seed, prompt}` with an absolute URL to the mp4."""
    video = job.video or {}
    return {"video": {"url": file_url, "content_type": "video/mp4", "file_name": video.get("file_name"),
                      "file_size": video.get("file_size")},
            "seed": job.seed, "prompt": job.prompt}


class JobBook:
    """Every known request by id; `on_change(job)` persists a copy after each state change."""

    def __init__(self, on_change: Callable[[Job], None] = lambda job: None):
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._on_change = on_change

    def add(self, job: Job, *, persist: bool = True) -> None:
        with self._lock:
            self._jobs[job.request_id] = job
        if persist:
            self._on_change(job)

    def discard(self, request_id: str) -> None:
        with self._lock:
            self._jobs.pop(request_id, None)

    def get(self, request_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(request_id)

    def finished_before(self, moment: float) -> list[Job]:
        """The requests that ended before `moment` (a time.time()): those past the retention."""
        with self._lock:
            return [job for job in self._jobs.values() if job.finished and (job.finished_at or job.created_at) < moment]

    def active(self) -> list[Job]:
        with self._lock:
            return [job for job in self._jobs.values() if not job.finished]

    def log(self, request_id: str, message: str, level: str = "INFO") -> None:
        with self._lock:
            job = self._jobs.get(request_id)
            if job is None or job.finished or len(job.logs) >= MAX_LOG_LINES:
                return
            job.logs.append({"message": message, "level": level, "source": "user", "timestamp": utc_timestamp()})

    def start(self, request_id: str) -> None:
        self._update(request_id, lambda job: job.state == QUEUED, state=RUNNING, started_at=time.time())

    def complete(self, request_id: str, video: dict, prompt: str) -> None:
        """The request succeeded with this mp4; `prompt` is the prompt used (expanded or the request's own)."""
        self._update(request_id, lambda job: not job.finished, state=COMPLETED, video=video, prompt=prompt,
                     finished_at=time.time())

    def fail(self, request_id: str, message: str, error_type: str, *, cancelled: bool = False) -> None:
        self._update(request_id, lambda job: not job.finished, state=CANCELLED if cancelled else FAILED,
                     error=message, error_type=error_type, finished_at=time.time())

    def request_cancel(self, request_id: str) -> None:
        self._update(request_id, lambda job: not job.finished, cancel_requested=True)

    def _update(self, request_id: str, allowed: Callable[[Job], bool], **changes) -> None:
        with self._lock:
            job = self._jobs.get(request_id)
            if job is None or not allowed(job):
                return
            for name, value in changes.items():
                setattr(job, name, value)
            if job.started_at is None and job.finished:
                job.started_at = job.finished_at
            snapshot = Job.from_record(job.as_record())
        self._on_change(snapshot)
