"""The API's handlers in the fleet mode: the same routes, answers and checks as the single-server mode, with the
requests in PostgreSQL instead of this server's memory, so any instance answers for any request.

While the database is not usable every API call answers 503 with the reason (ComfyUI's own UI keeps working).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import Optional

from aiohttp import web

from ..graph import feature_inputs
from ..jobs import COMPLETED, QUEUED, RUNNING, Job, status_json
from ..routes import POLL_SECONDS, QueueService, json_response
from ..schema import InputError, error, parse_input
from ..store import REQUEST_ID
from .fleet import Fleet
from .queue import LOW, NORMAL

logger = logging.getLogger(__name__)

PRIORITY_HEADER = "x-fal-queue-priority"


class FleetService(QueueService):
    def __init__(self, host, config, fleet: Fleet):  # no JobStore, no JobBook: the database holds the requests
        self.host, self.config, self.fleet = host, config, fleet
        self.book = None
        self.media = None
        self.notify = None
        self._monitor = None

    def refused(self, request: web.Request) -> Optional[web.Response]:
        if self.fleet.problem is not None:
            return json_response({"detail": self.fleet.problem}, 503)
        return super().refused(request)

    async def stored_job(self, request: web.Request, *, with_logs: bool = False) -> Job:
        request_id = request.match_info["request_id"]
        job = await self.fleet.queue.get(request_id, with_logs=with_logs) if REQUEST_ID.match(request_id) else None
        if job is None:
            raise web.HTTPNotFound(text=json.dumps({"detail": f"request {request_id} not found"}),
                                   content_type="application/json")
        return job

    # submit / run ---------------------------------------------------------------------------------------------

    async def enqueue(self, request: web.Request) -> tuple[Job, int]:
        """Validate a request and store it as waiting (raises InputError for a 422); returns it and its position."""
        try:
            body = await request.json()
        except ValueError as bad:
            raise InputError([error((), f"the body is not valid JSON: {bad}", "json_invalid")]) from bad
        generation = parse_input(body)
        webhook_url = request.query.get("fal_webhook") or None
        if webhook_url is not None and not webhook_url.lower().startswith(("http://", "https://")):
            raise InputError([{"loc": ["query", "fal_webhook"], "msg": "the webhook must be an http(s) URL",
                               "type": "url_scheme"}])
        priority_name = request.headers.get(PRIORITY_HEADER, "normal").strip().lower()
        if priority_name not in ("normal", "low"):
            raise InputError([{"loc": ["header", PRIORITY_HEADER], "msg": f"the queue priority must be 'normal' "
                               f"or 'low', not {priority_name!r}", "type": "literal_error"}])
        feature_inputs(generation, self.host.node_inputs("LTX097TextToVideo"))  # a 422 before the queue
        request_id = str(uuid.uuid4())
        settings = {"seed": generation.seed, "prompt": generation.prompt, "webhook_url": webhook_url,
                    "server_url": self.base_url(request)}
        position = await self.fleet.queue.submit(request_id, {**body, "seed": generation.seed}, settings,
                                                 LOW if priority_name == "low" else NORMAL)
        logger.info("LTX-Video API: queued request %s (seed %d) for the fleet", request_id, generation.seed)
        return Job(request_id, generation.seed, generation.prompt, webhook_url=webhook_url,
                   server_url=settings["server_url"]), position

    async def accept(self, request: web.Request):
        if (denied := self.refused(request)) is not None:
            return denied
        try:
            return await self.enqueue(request)
        except InputError as bad:
            return json_response({"detail": bad.detail}, 422)

    async def submit(self, request: web.Request) -> web.Response:
        accepted = await self.accept(request)
        if isinstance(accepted, web.Response):
            return accepted
        job, position = accepted
        body = {"status": "IN_QUEUE", "request_id": job.request_id, **self.urls(request).of(job.request_id),
                "queue_position": position}
        return json_response(body, request_id=job.request_id)

    async def run(self, request: web.Request) -> web.Response:
        accepted = await self.accept(request)
        if isinstance(accepted, web.Response):
            return accepted
        job, _position = accepted
        while not job.finished:
            await asyncio.sleep(POLL_SECONDS)
            job = await self.fleet.queue.get(job.request_id)
        return self.outcome(request, job)

    # status / result / cancel / file --------------------------------------------------------------------------

    async def status(self, request: web.Request) -> web.Response:
        if (denied := self.refused(request)) is not None:
            return denied
        with_logs = request.query.get("logs", "0").lower() in ("1", "true", "yes")
        job = await self.stored_job(request, with_logs=with_logs)
        position = await self.fleet.queue.position(job.request_id) if job.state == QUEUED else None
        return json_response(status_json(job, self.urls(request), queue_position=position, with_logs=with_logs),
                             request_id=job.request_id)

    async def result(self, request: web.Request) -> web.Response:
        if (denied := self.refused(request)) is not None:
            return denied
        job = await self.stored_job(request)
        if not job.finished:
            return json_response({"detail": "the request is still in progress"}, 400, job.request_id)
        return self.outcome(request, job)

    async def cancel(self, request: web.Request) -> web.Response:
        if (denied := self.refused(request)) is not None:
            return denied
        job = await self.stored_job(request)
        before = await self.fleet.queue.cancel(job.request_id)
        if before not in (QUEUED, RUNNING):
            return json_response({"status": "ALREADY_COMPLETED"}, 400, job.request_id)
        if before == QUEUED:
            await self.fleet.finished(job.request_id)
        return json_response({"status": "CANCELLATION_REQUESTED"}, 202, job.request_id)

    async def file(self, request: web.Request) -> web.StreamResponse:
        if self.fleet.problem is not None:
            return json_response({"detail": self.fleet.problem}, 503)
        job = await self.stored_job(request)
        if job.state != COMPLETED or request.match_info["file_name"] != job.video["file_name"]:
            raise web.HTTPNotFound(text=json.dumps({"detail": "no such file"}), content_type="application/json")
        path = self.fleet.storage / job.video["path"]
        if not path.is_file():
            raise web.HTTPGone(text=json.dumps({"detail": "the video file is not in the storage folder (storage_dir "
                                                          "in ltxv097_api.json) of this instance"}),
                               content_type="application/json")
        return web.FileResponse(path, headers={"Content-Type": "video/mp4"})

    def on_log(self, message: str) -> None:
        self.fleet.on_log(message)
