"""fal's queue protocol on ComfyUI's own server, as `@fal-ai/client` 1.10 and `fal-client` 1.0 speak it.

Paths (the clients' `queue.fal.run` host is `<server>/queue`, their `fal.run` host is `<server>`):

- `POST /queue/fal-ai/ltx-video-lora` submit (`?fal_webhook=` optional) → request_id, URLs, queue_position; also
  `…/image-to-video` and `…/multiconditioning` (the family's endpoints, same queue and request URLs)
- `GET  /queue/fal-ai/ltx-video-lora/requests/{id}/status?logs=1` → IN_QUEUE / IN_PROGRESS / COMPLETED
- `GET  /queue/fal-ai/ltx-video-lora/requests/{id}/status/stream?logs=1` → the same as server-sent events
- `GET  /queue/fal-ai/ltx-video-lora/requests/{id}` (and `/response`) → the output JSON
- `PUT  /queue/fal-ai/ltx-video-lora/requests/{id}/cancel`
- `POST /fal-ai/ltx-video-lora` (and the two endpoints) run: submit and answer the output when done
- `GET  /ltxv097_api/files/{id}/{file name}` the mp4

The handlers check keys, validate, fetch condition media and build the prompt, then hand the request to a
`JobQueue` (`queue.py`): they do not know whether the requests live in this process or elsewhere. `host` is a
`service.host.ComfyHost` (or a stand-in with the same methods): the node's inputs, the loras and output folders.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import replace

from aiohttp import web

from ..fetch import FetchError, check_url, release, seal_url
from .access import key_accepted
from .bodies import BODY_MARGIN, BodyRefused, read_json
from .config import ServiceConfig
from .downloads import ServerBusy
from .errors import REQUEST_ID_HEADER
from .events import stream_status
from .graph import build_prompt, feature_inputs
from .jobs import COMPLETED, FILES_PREFIX, START_TIMEOUT, Job, Urls, result_json, status_json, video_url
from .lora_checks import lora_errors
from .media import ConditionMedia
from .outcome import error_answer, hide_paths
from .queue import JobQueue
from .schema import (
    ENDPOINTS,
    TEXT_TO_VIDEO,
    GenerationInput,
    InputError,
    MediaLimits,
    data_uri_chars,
    field_error,
    parse_input,
)
from .store import REQUEST_ID
from .uploads import UploadStore

logger = logging.getLogger(__name__)

APP_ID = "fal-ai/ltx-video-lora"
QUEUE_PREFIX = "/queue"
POLL_SECONDS = 0.2
TIMEOUT_HEADER = "X-Fal-Request-Timeout"
TIMEOUT_TYPE_HEADER = "x-fal-request-timeout-type"
PRIORITY_HEADER = "X-Fal-Queue-Priority"
PRIORITIES = ("normal", "low")
MAX_START_TIMEOUT = 7 * 24 * 3600


def json_response(body, status: int = 200, request_id: str | None = None) -> web.Response:
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
    detail = hide_paths("; ".join(f"{node}: {text}" for node, text in messages.items()) or str(rejection))
    return web.HTTPInternalServerError(text=json.dumps({"detail": f"the server could not queue the request "
                                                                  f"(check ltxv097_api.json): {detail}"}),
                                       content_type="application/json")


def checked_webhook(url: str | None) -> str | None:
    """The `fal_webhook` URL when it can be called: http(s), a host, and no user name or password (those would be
    stored with the request); a 422 naming the query parameter otherwise (its message shows no secret)."""
    if url is None:
        return None
    try:
        check_url(url, "the webhook")
    except FetchError as refused:
        raise InputError([{"loc": ["query", "fal_webhook"], "msg": str(refused), "type": "url_invalid"}]) from None
    return url


def start_options(request: web.Request) -> tuple[str, float | None]:
    """(priority, start deadline) from the queue headers; a 422 for values the service does not take."""
    priority = request.headers.get(PRIORITY_HEADER, "normal").strip().lower()
    if priority not in PRIORITIES:
        raise InputError([{"loc": ["header", PRIORITY_HEADER.lower()], "type": "literal_error",
                           "msg": f"{priority[:40]!r} is not a priority; one of {', '.join(PRIORITIES)}"}])
    timeout = request.headers.get(TIMEOUT_HEADER)
    if timeout is None:
        return priority, None
    try:
        seconds = float(timeout)
    except ValueError:
        seconds = -1.0
    if not 1 < seconds <= MAX_START_TIMEOUT:
        raise InputError([{"loc": ["header", TIMEOUT_HEADER.lower()], "type": "value_error",
                           "msg": f"{timeout[:40]!r} is not a number of seconds above 1 and at most "
                                  f"{MAX_START_TIMEOUT}"}])
    return priority, time.time() + seconds


def endpoint_of(request: web.Request) -> str:
    last = request.path.rstrip("/").rsplit("/", 1)[-1]
    return last if last in ENDPOINTS else TEXT_TO_VIDEO


class ApiRoutes:
    """The HTTP handlers; `media` fetches URL inputs into the input folder, `queue` holds and runs the requests,
    `uploads` holds the files uploaded through the storage API, `check_reachable(url, what)` raises
    `fetch_error` for a LoRA URL the download rules refuse, `sign(url)` is a result's mp4 URL as handed out (signed
    when keys are set)."""

    def __init__(self, queue: JobQueue, host, config: ServiceConfig, media: ConditionMedia, *,
                 uploads: UploadStore | None = None,
                 check_reachable: Callable[[str, str], None] = lambda url, what: None,
                 fetch_error: type = Exception, sign: Callable[[str], str] = lambda url: url):
        self.queue, self.host, self.config, self.media = queue, host, config, media
        self.uploads, self.check_reachable, self.fetch_error = uploads, check_reachable, fetch_error
        self.sign = sign

    def register(self, routes) -> None:
        queue_path = f"{QUEUE_PREFIX}/{APP_ID}"
        for endpoint in ENDPOINTS:
            path = "" if endpoint == TEXT_TO_VIDEO else f"/{endpoint}"
            routes.post(queue_path + path)(self.submit)
            routes.post(f"/{APP_ID}{path}")(self.run)
        routes.get(queue_path + "/requests/{request_id}/status")(self.status)
        routes.get(queue_path + "/requests/{request_id}/status/stream")(self.status_stream)
        routes.get(queue_path + "/requests/{request_id}")(self.result)
        routes.get(queue_path + "/requests/{request_id}/response")(self.result)
        routes.put(queue_path + "/requests/{request_id}/cancel")(self.cancel)
        routes.get(FILES_PREFIX + "/{request_id}/{file_name}")(self.file)

    # helpers --------------------------------------------------------------------------------------------------

    def unauthorized(self, request: web.Request) -> web.Response | None:
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

    def body_limit(self) -> int:
        """One video's data URI and the other fields: also the total of a multiconditioning request's URIs (the
        body is held in memory while it is parsed)."""
        return data_uri_chars(self.config.max_video_bytes) + BODY_MARGIN

    async def checked_input(self, request: web.Request) -> GenerationInput:
        """The validated request: fields, switched-on features' models and LoRAs, all before anything is queued."""
        body = await read_json(request, self.body_limit())
        limits = MediaLimits(self.config.max_image_bytes, self.config.max_video_bytes)
        generation = parse_input(body, endpoint=endpoint_of(request), limits=limits,
                                 defaults=self.config.request_defaults())
        missing = await asyncio.to_thread(lora_errors, generation, file_missing=self.host.lora_file_missing,
                                          check_reachable=self.check_reachable, fetch_error=self.fetch_error)
        if missing:
            raise InputError(missing)
        feature_inputs(generation, self.host.node_inputs("LTX097TextToVideo"), self.host.missing_feature_models())
        return generation

    def local_upload(self, request: web.Request) -> Callable[[str], tuple[bytes, str] | None]:
        """`url -> (bytes, content type) | None` for files uploaded to this server."""
        base = base_url(request)
        return (lambda url: self.uploads.local(url, base)) if self.uploads is not None else (lambda url: None)

    async def enqueue(self, request: web.Request) -> Job:
        """Validate, build and queue one request (raises InputError for a 422)."""
        priority, start_deadline = start_options(request)
        generation = await self.checked_input(request)
        webhook_url = checked_webhook(request.query.get("fal_webhook") or None)
        request_id = str(uuid.uuid4())
        node_inputs = self.host.node_inputs("LTX097TextToVideo")
        # every request's memory is estimated there, a text-only one too
        media_files = await self.media(generation, request_id, self.local_upload(request))
        # a LoRA URL's query string stays in this process: the queued prompt (ComfyUI's history) holds the rest
        sealed = replace(generation, loras=tuple(replace(lora, path=seal_url(lora.path, request_id))
                                                 for lora in generation.loras))
        prompt = build_prompt(sealed, self.config, request_id, media_files=media_files, node_inputs=node_inputs)
        job = Job(request_id, generation.seed, generation.prompt, webhook_url=webhook_url,
                  server_url=base_url(request), endpoint=endpoint_of(request), priority=priority,
                  start_deadline=start_deadline)
        try:
            await self.queue.enqueue(job, prompt)
        except Exception as rejection:
            self.media.remove(request_id)
            release(request_id)
            raise queueing_error(rejection, generation) from rejection
        logger.info("LTX-Video API: queued %s request %s (seed %d)", job.endpoint, request_id, generation.seed)
        return job

    async def accept(self, request: web.Request) -> Job | web.Response:
        """The queued job of a submit or run, or the answer refusing it (401 / 422)."""
        if (denied := self.unauthorized(request)) is not None:
            return denied
        try:
            return await self.enqueue(request)
        except InputError as bad:
            return json_response({"detail": bad.detail}, 422)
        except ServerBusy as busy:
            return web.json_response({"detail": str(busy)}, status=503, headers={"Retry-After": "5"})
        except BodyRefused as refused:
            return json_response({"detail": refused.detail}, refused.status)

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

    async def current_status(self, request: web.Request, request_id: str, *, with_logs: bool) -> dict:
        standing = await self.queue.status(request_id)
        if standing is None:
            raise not_found(f"request {request_id} not found")
        return status_json(standing.job, queue_urls(request), queue_position=standing.queue_position,
                           with_logs=with_logs)

    async def status(self, request: web.Request) -> web.Response:
        if (denied := self.unauthorized(request)) is not None:
            return denied
        request_id = self.request_id_of(request)
        with_logs = request.query.get("logs", "0").lower() in ("1", "true", "yes")
        return json_response(await self.current_status(request, request_id, with_logs=with_logs),
                             request_id=request_id)

    async def status_stream(self, request: web.Request) -> web.StreamResponse:
        if (denied := self.unauthorized(request)) is not None:
            return denied
        job = await self.job_of(request)
        return await stream_status(request, lambda: self.current_status(request, job.request_id, with_logs=True),
                                   poll_seconds=POLL_SECONDS, headers={REQUEST_ID_HEADER: job.request_id})

    async def result(self, request: web.Request) -> web.Response:
        if (denied := self.unauthorized(request)) is not None:
            return denied
        job = await self.job_of(request)
        if not job.finished:
            return json_response({"detail": "the request is still in progress"}, 400, job.request_id)
        return self.outcome(request, job)

    def outcome(self, request: web.Request, job: Job) -> web.Response:
        if job.state == COMPLETED:
            return json_response(result_json(job, self.sign(video_url(base_url(request), job))),
                                 request_id=job.request_id)
        http_status, body = error_answer(job.state, job.error, job.error_type)
        response = json_response(body, http_status, job.request_id)
        if job.error_type == START_TIMEOUT:  # the service's answer to a request that did not start in time
            response.headers[TIMEOUT_TYPE_HEADER] = "user"
        return response

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
