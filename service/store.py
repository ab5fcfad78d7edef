"""Requests on disk: one JSON record per request, so results (and failures) outlive a server restart.

Records live in `<user dir>/ltxv097_api/requests/<request id>.json` (the mp4s in the output folder). On start-up,
requests that were queued or running when the server stopped become failed ones with a clear message.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from pathlib import Path

from ..fetch import redact_url
from .jobs import FAILED, FINISHED, Job

logger = logging.getLogger(__name__)

REQUEST_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
LOST_MESSAGE = "the server stopped before this request finished; submit it again"
LOST_TYPE = "server_restarted"


class JobStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, request_id: str) -> Path:
        if not REQUEST_ID.match(request_id):
            raise ValueError(f"not a request id: {request_id!r}")
        return self.root / f"{request_id}.json"

    def save(self, job: Job) -> None:
        """Write atomically (temporary file + rename): a crash never leaves half a record. The webhook URL is
        stored without its query string or credentials (the full URL lives in memory while the request runs)."""
        path = self.path(job.request_id)
        temporary = path.with_suffix(".tmp")
        record = job.as_record()
        if record.get("webhook_url"):
            record["webhook_url"] = redact_url(record["webhook_url"])
        temporary.write_text(json.dumps(record))
        os.replace(temporary, path)

    def remove(self, request_id: str) -> None:
        self.path(request_id).unlink(missing_ok=True)

    def load_all(self) -> list[Job]:
        """Every stored request; unfinished ones are turned into failed ones (and saved so)."""
        jobs = []
        for path in sorted(self.root.glob("*.json")):
            try:
                job = Job.from_record(json.loads(path.read_text()))
            except (ValueError, TypeError) as error:
                logger.warning("skipping unreadable request record %s: %s", path, error)
                continue
            if job.state not in FINISHED:
                job.state, job.error, job.error_type = FAILED, LOST_MESSAGE, LOST_TYPE
                job.finished_at = time.time()
                self.save(job)
            jobs.append(job)
        for leftover in self.root.glob("*.tmp"):
            leftover.unlink(missing_ok=True)
        return jobs
