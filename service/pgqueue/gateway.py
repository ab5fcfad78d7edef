"""The API's handlers in the fleet mode: the single-server handlers (`routes.ApiRoutes`) on a `FleetQueue`, plus
what only a fleet has: a 503 with the reason while the job database is unusable, and result files from the shared
storage. fal's queue headers (`X-Fal-Queue-Priority`, `X-Fal-Request-Timeout`) are parsed by `ApiRoutes` into the
`Job`; `FleetQueue` stores them with the job.
"""

from __future__ import annotations

import functools
import json

from aiohttp import web

from ..jobs import COMPLETED
from ..routes import ApiRoutes, json_response, not_found
from .fleet import FleetQueue


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

    def unauthorized(self, request: web.Request) -> web.Response | None:
        if self.queue.problem is not None:
            return json_response({"detail": self.queue.problem}, 503)
        return super().unauthorized(request)

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
