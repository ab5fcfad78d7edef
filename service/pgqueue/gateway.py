"""The API's handlers in the fleet mode: the single-server handlers (`routes.ApiRoutes`) on a `FleetQueue`, plus
what only a fleet has: a 503 with the reason while the job database is unusable, fal's
`X-Fal-Queue-Priority: low` (behind every normal request of the fleet), and result files from the shared storage.
"""

from __future__ import annotations

import functools
import json
from typing import Optional

from aiohttp import web

from ..jobs import COMPLETED
from ..routes import ApiRoutes, json_response, not_found
from ..schema import InputError
from .channels import LOW, NORMAL
from .fleet import SUBMIT_PRIORITY, FleetQueue

PRIORITY_HEADER = "x-fal-queue-priority"
PRIORITIES = {"normal": NORMAL, "low": LOW}


class FleetRoutes(ApiRoutes):
    queue: FleetQueue

    def register(self, routes) -> None:
        super().register(_Guarded(routes, self.guard))

    def guard(self, handler):
        """A database lost in the middle of a call (a restart) answers 503 with the reason, as at start-up."""
        @functools.wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except self.queue.database_errors as lost:
                return json_response({"detail": self.queue.lost_message(lost)}, 503)
        return guarded

    def unauthorized(self, request: web.Request) -> Optional[web.Response]:
        if self.queue.problem is not None:
            return json_response({"detail": self.queue.problem}, 503)
        return super().unauthorized(request)

    async def enqueue(self, request: web.Request):
        name = request.headers.get(PRIORITY_HEADER, "normal").strip().lower()
        if name not in PRIORITIES:
            raise InputError([{"loc": ["header", PRIORITY_HEADER], "msg": f"the queue priority must be one of "
                               f"{', '.join(PRIORITIES)}, not {name!r}", "type": "literal_error"}])
        token = SUBMIT_PRIORITY.set(PRIORITIES[name])
        try:
            return await super().enqueue(request)
        finally:
            SUBMIT_PRIORITY.reset(token)

    async def file(self, request: web.Request) -> web.StreamResponse:
        if self.queue.problem is not None:
            return json_response({"detail": self.queue.problem}, 503)
        job = await self.job_of(request)
        if job.state != COMPLETED or request.match_info["file_name"] != job.video["file_name"]:
            raise not_found("no such file")
        path = self.queue.storage.video_path(job.video)
        if not path.is_file():
            raise web.HTTPGone(text=json.dumps({"detail": "the video file is not in this instance's storage folder "
                                                          "(storage_dir in ltxv097_api.json)"}),
                               content_type="application/json")
        return web.FileResponse(path, headers={"Content-Type": "video/mp4"})


class _Guarded:
    """ComfyUI's route table as `ApiRoutes.register` uses it (`routes.get(path)(handler)`), each handler guarded."""

    def __init__(self, routes, guard):
        self.routes, self.guard = routes, guard

    def __getattr__(self, method: str):
        register = getattr(self.routes, method)
        return lambda path: lambda handler: register(path)(self.guard(handler))
