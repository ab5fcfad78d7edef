"""fal's queue protocol on ComfyUI's own server, as `@fal-ai/client` 1.10 and `fal-client` 1.0 speak it.

Paths (the clients' `queue.fal.run` host is `<server>/queue`, their `fal.run` host is `<server>`):

- `POST /queue/fal-ai/ltx-video-lora` submit (`?fal_webhook=` optional) → request_id, URLs, queue_position
- `GET  /queue/fal-ai/ltx-video-lora/requests/{id}/status?logs=1` → IN_QUEUE / IN_PROGRESS / COMPLETED
- `GET  /queue/fal-ai/ltx-video-lora/requests/{id}` (and `/response`) → the output JSON
- `PUT  /queue/fal-ai/ltx-video-lora/requests/{id}/cancel`
- `POST /fal-ai/ltx-video-lora` run: submit and answer the output when done
- `GET  /ltxv097_api/files/{id}/{file name}` the mp4

The handlers check keys, validate, fetch condition media and build the prompt, then hand the request to a
`JobQueue` (`queue.py`): they do not know whether the requests live in this process or elsewhere. `host` is a
`service.host.ComfyHost` (or a stand-in with the same methods): the node's inputs, the loras and output folders.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Optional

from aiohttp import web

from .access import key_accepted
from .config import ServiceConfig
from .graph import build_prompt, feature_inputs
from .jobs import CANCELLED, COMPLETED, FILES_PREFIX, Job, Urls, result_json, status_json, video_url
from .media import ConditionMedia
from .queue import JobQueue
from .schema import GenerationInput, InputError, field_error, parse_input
from .store import REQUEST_ID

logger = logging.getLogger(__name__)

APP_ID = "fal-ai/ltx-video-lora"
QUEUE_PREFIX = "/queue"
CANCELLED_STATUS = 499
"""What fal answers for a cancelled request (its apps' `RequestCancelledException` handler): 499 with `detail`."""
REQUEST_ID_HEADER = "x-fal-request-id"


def json_response(body, status: int = 200, request_id: Optional[str] = None) -> web.Response:
    headers = {REQUEST_ID_HEADER: request_id} if request_id else None
    return web.json_response(body, status=status, headers=headers)


def not_found(detail: str) -> web.HTTPNotFound:
    return web.HTTPNotFound(text=json.dumps({"detail": detail}), content_type="application/json")


def base_url(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def queue_urls(request: web.Request) -> Urls:
    return Urls(f"{base_url(request)}{QUEUE_PREFIX}/{APP_ID}")


def queueing_error(rejection: Exception, generation: GenerationInput) -> Exception:
    """ComfyUI's validation errors: a LoRA's are the caller's (422), the rest the server's set-up (500)."""
    node_errors = getattr(rejection, "node_errors", None) or {}
    messages = {node: "; ".join(f"{e.get('message', '')}: {e.get('details', '')}".strip(": ")
                                for e in info.get("errors", [])) for node, info in node_errors.items()}
    if "loras" in messages and generation.loras:
        return InputError([field_error(("loras",), messages["loras"])])
    detail = "; ".join(f"{node}: {text}" for node, text in messages.items()) or str(rejection)
    return web.HTTPInternalServerError(text=json.dumps({"detail": f"the server could not queue the request "
                                                                  f"(check ltxv097_api.json): {detail}"}),
                                       content_type="application/json")


class ApiRoutes:
    """The HTTP handlers; `media` fetches URL inputs into the input folder, `queue` holds and runs the requests."""

    def __init__(self, queue: JobQueue, host, config: ServiceConfig, media: ConditionMedia):
        self.queue, self.host, self.config, self.media = queue, host, config, media

    def register(self, routes) -> None:
        queue_path = f"{QUEUE_PREFIX}/{APP_ID}"
        routes.post(queue_path)(self.submit)
        routes.get(queue_path + "/requests/{request_id}/status")(self.status)
        routes.get(queue_path + "/requests/{request_id}")(self.result)
        routes.get(queue_path + "/requests/{request_id}/response")(self.result)
        routes.put(queue_path + "/requests/{request_id}/cancel")(self.cancel)
        routes.post(f"/{APP_ID}")(self.run)
        routes.get(FILES_PREFIX + "/{request_id}/{file_name}")(self.file)

    # helpers --------------------------------------------------------------------------------------------------

    def unauthorized(self, request: web.Request) -> Optional[web.Response]:
        """The 401 answer when the request lacks a configured key; None when it may go on."""
        if key_accepted(request.headers.get("Authorization"), self.config.api_keys):
            return None
        return json_response({"detail": "missing or wrong API key: send 'Authorization: Key <key>' with a key "
                                        "from api_keys in ltxv097_api.json"}, 401)

    @staticmethod
    def request_id_of(request: web.Request) -> str:
        request_id = request.match_info["request_id"]
        if not REQUEST_ID.match(request_id):
            raise not_found(f"request {request_id} not found")
        return request_id

    async def job_of(self, request: web.Request) -> Job:
        request_id = self.request_id_of(request)
        job = await self.queue.get(request_id)
        if job is None:
            raise not_found(f"request {request_id} not found")
        return job

    # submit / run ---------------------------------------------------------------------------------------------

    async def enqueue(self, request: web.Request) -> Job:
        """Validate, build and queue one request (raises InputError for a 422)."""
        try:
            body = await request.json()
        except ValueError as bad:
            raise InputError([field_error((), f"the body is not valid JSON: {bad}", "json_invalid")]) from bad
        generation = parse_input(body)
        missing = [field_error(("loras", index, "path"), f"no LoRA file {lora.path!r} in models/loras; give a URL, "
                                                         "a Hugging Face repository or a file in models/loras")
                   for index, lora in enumerate(generation.loras) if self.host.lora_file_missing(lora.path)]
        if missing:
            raise InputError(missing)
        webhook_url = request.query.get("fal_webhook") or None
        if webhook_url is not None and not webhook_url.lower().startswith(("http://", "https://")):
            raise InputError([{"loc": ["query", "fal_webhook"], "msg": "the webhook must be an http(s) URL",
                               "type": "url_scheme"}])
        request_id = str(uuid.uuid4())
        node_inputs = self.host.node_inputs("LTX097TextToVideo")
        feature_inputs(generation, node_inputs)  # a 422 for an unavailable feature before any download
        media_files = await self.media(generation, request_id) if generation.conditions else {}
        prompt = build_prompt(generation, self.config, request_id, media_files=media_files, node_inputs=node_inputs)
        job = Job(request_id, generation.seed, generation.prompt, webhook_url=webhook_url,
                  server_url=base_url(request))
        try:
            await self.queue.enqueue(job, prompt)
        except Exception as rejection:
            self.media.remove(request_id)
            raise queueing_error(rejection, generation) from rejection
        logger.info("LTX-Video API: queued request %s (seed %d)", request_id, generation.seed)
        return job

    async def accept(self, request: web.Request) -> Job | web.Response:
        """The queued job of a submit or run, or the answer refusing it (401 / 422)."""
        if (denied := self.unauthorized(request)) is not None:
            return denied
        try:
            return await self.enqueue(request)
        except InputError as bad:
            return json_response({"detail": bad.detail}, 422)

    async def submit(self, request: web.Request) -> web.Response:
        job = await self.accept(request)
        if isinstance(job, web.Response):
            return job
        standing = await self.queue.status(job.request_id)
        body = {"status": "IN_QUEUE", "request_id": job.request_id, **queue_urls(request).of(job.request_id),
                "queue_position": (standing.queue_position if standing else None) or 0}
        return json_response(body, request_id=job.request_id)

    async def run(self, request: web.Request) -> web.Response:
        job = await self.accept(request)
        if isinstance(job, web.Response):
            return job
        return self.outcome(request, await self.queue.finished(job.request_id))

    # status / result / cancel ---------------------------------------------------------------------------------

    async def status(self, request: web.Request) -> web.Response:
        if (denied := self.unauthorized(request)) is not None:
            return denied
        request_id = self.request_id_of(request)
        standing = await self.queue.status(request_id)
        if standing is None:
            raise not_found(f"request {request_id} not found")
        with_logs = request.query.get("logs", "0").lower() in ("1", "true", "yes")
        return json_response(status_json(standing.job, queue_urls(request), queue_position=standing.queue_position,
                                         with_logs=with_logs), request_id=request_id)

    async def result(self, request: web.Request) -> web.Response:
        if (denied := self.unauthorized(request)) is not None:
            return denied
        job = await self.job_of(request)
        if not job.finished:
            return json_response({"detail": "the request is still in progress"}, 400, job.request_id)
        return self.outcome(request, job)

    def outcome(self, request: web.Request, job: Job) -> web.Response:
        if job.state == COMPLETED:
            return json_response(result_json(job, video_url(base_url(request), job)), request_id=job.request_id)
        if job.error_type == "content_policy_violation":  # the service's answer to flagged content
            detail = [{"loc": ["body"], "msg": job.error, "type": job.error_type}]
            return json_response({"detail": detail}, 422, job.request_id)
        http_status = CANCELLED_STATUS if job.state == CANCELLED else 500
        return json_response({"detail": job.error, "error_type": job.error_type}, http_status, job.request_id)

    async def cancel(self, request: web.Request) -> web.Response:
        if (denied := self.unauthorized(request)) is not None:
            return denied
        job = await self.job_of(request)
        if job.finished or not await self.queue.cancel(job.request_id):
            return json_response({"status": "ALREADY_COMPLETED"}, 400, job.request_id)
        return json_response({"status": "CANCELLATION_REQUESTED"}, 202, job.request_id)

    async def file(self, request: web.Request) -> web.StreamResponse:
        job = await self.job_of(request)
        if job.state != COMPLETED or request.match_info["file_name"] != job.video["file_name"]:
            raise not_found("no such file")
        path = self.host.output_dir() / job.video["path"]
        if not path.is_file():
            raise web.HTTPGone(text=json.dumps({"detail": "the video file was deleted from the output folder"}),
                               content_type="application/json")
        return web.FileResponse(path, headers={"Content-Type": "video/mp4"})
