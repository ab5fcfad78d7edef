"""The API's handlers in the fleet mode: the single-server handlers (`routes.ApiRoutes`) on a `FleetQueue`, plus
what only a fleet has: a 503 with the reason while the job database is unusable, fal's
`X-Fal-Queue-Priority: low` (behind every normal request of the fleet), and result files from the shared storage.
"""

from __future__ import annotations

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
