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

`host` is a `service.host.ComfyHost` (or a stand-in with the same methods).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from typing import Optional

from aiohttp import web

from .access import key_accepted
from .bodies import BODY_MARGIN, BodyRefused, read_json
from .config import ServiceConfig
from .errors import REQUEST_ID_HEADER
from .events import stream_status
from .graph import OUTPUT_NODE, build_prompt, feature_inputs
from .jobs import COMPLETED, QUEUED, Job, JobBook, Urls, result_json, status_json
from .lora_checks import lora_errors
from .outcome import error_answer, failure, prompt_used, saved_video
from .schema import (ENDPOINTS, TEXT_TO_VIDEO, GenerationInput, InputError, MediaLimits, data_uri_chars, error,
                     parse_input)
from .store import REQUEST_ID, JobStore

logger = logging.getLogger(__name__)

APP_ID = "fal-ai/ltx-video-lora"
QUEUE_PREFIX = "/queue"
FILES_PREFIX = "/ltxv097_api/files"
POLL_SECONDS = 0.2
TIMEOUT_HEADER = "X-Fal-Request-Timeout"
TIMEOUT_TYPE_HEADER = "x-fal-request-timeout-type"
PRIORITY_HEADER = "X-Fal-Queue-Priority"
PRIORITIES = ("normal", "low")
MAX_START_TIMEOUT = 7 * 24 * 3600


def json_response(body, status: int = 200, request_id: Optional[str] = None) -> web.Response:
    headers = {REQUEST_ID_HEADER: request_id} if request_id else None
    return web.json_response(body, status=status, headers=headers)


class QueueService:
    def __init__(self, host, config: ServiceConfig, store: JobStore):
        self.host, self.config, self.store = host, config, store
        self.book = JobBook(store.save)
        for job in store.load_all():
            self.book.add(job, persist=False)
        self.media = None
        """Optional `async (GenerationInput, request_id) -> {"image"|"video": input file name}` (URL inputs)."""
        self.notify = None
        """Optional `async (Job, output JSON or None) -> None`, called when a request with a webhook finishes."""
        self.uploads = None
        """Optional `service.uploads.UploadStore`: files uploaded here, read from disk when a request names them."""
        self.check_reachable, self.fetch_error = None, Exception
        """Optional `(url, what) -> None` raising `fetch_error` for a LoRA URL the download rules refuse."""
        self._monitor: Optional[asyncio.Task] = None

    # routes ---------------------------------------------------------------------------------------------------

    def register(self, routes) -> None:
        queue = f"{QUEUE_PREFIX}/{APP_ID}"
        for endpoint in ENDPOINTS:
            path = "" if endpoint == TEXT_TO_VIDEO else f"/{endpoint}"
            routes.post(queue + path)(self.submit)
            routes.post(f"/{APP_ID}{path}")(self.run)
        routes.get(queue + "/requests/{request_id}/status")(self.status)
        routes.get(queue + "/requests/{request_id}/status/stream")(self.status_stream)
        routes.get(queue + "/requests/{request_id}")(self.result)
        routes.get(queue + "/requests/{request_id}/response")(self.result)
        routes.put(queue + "/requests/{request_id}/cancel")(self.cancel)
        routes.get(FILES_PREFIX + "/{request_id}/{file_name}")(self.file)

    @staticmethod
    def endpoint_of(request: web.Request) -> str:
        last = request.path.rstrip("/").rsplit("/", 1)[-1]
        return last if last in ENDPOINTS else TEXT_TO_VIDEO

    # helpers --------------------------------------------------------------------------------------------------

    @staticmethod
    def base_url(request: web.Request) -> str:
        return f"{request.scheme}://{request.host}"

    def urls(self, request: web.Request) -> Urls:
        return Urls(f"{self.base_url(request)}{QUEUE_PREFIX}/{APP_ID}")

    def file_url(self, base_url: str, job: Job) -> str:
        return f"{base_url}{FILES_PREFIX}/{job.request_id}/{job.video['file_name']}"

    def refused(self, request: web.Request) -> Optional[web.Response]:
        if key_accepted(request.headers.get("Authorization"), self.config.api_keys):
            return None
        return json_response({"detail": "missing or wrong API key: send 'Authorization: Key <key>' with a key "
                                        "from api_keys in ltxv097_api.json"}, 401)

    def job_of(self, request: web.Request) -> Job:
        request_id = request.match_info["request_id"]
        job = self.book.get(request_id) if REQUEST_ID.match(request_id) else None
        if job is None:
            raise web.HTTPNotFound(text=json.dumps({"detail": f"request {request_id} not found"}),
                                   content_type="application/json")
        return job

    def queue_position(self, request_id: str) -> int:
        _running, pending = self.host.queue_order()
        return pending.index(request_id) if request_id in pending else 0

    # submit / run ---------------------------------------------------------------------------------------------

    def body_limit(self) -> int:
        return data_uri_chars(self.config.max_video_bytes) * 8 + BODY_MARGIN  # multiconditioning: several URIs

    @staticmethod
    def start_options(request: web.Request) -> tuple[bool, Optional[float]]:
        """(low priority, start deadline) from the queue headers; a 422 for values the service does not take."""
        priority = request.headers.get(PRIORITY_HEADER, "normal").strip().lower()
        if priority not in PRIORITIES:
            raise InputError([{"loc": ["header", PRIORITY_HEADER.lower()], "type": "literal_error",
                               "msg": f"{priority[:40]!r} is not a priority; one of {', '.join(PRIORITIES)}"}])
        timeout = request.headers.get(TIMEOUT_HEADER)
        if timeout is None:
            return priority == "low", None
        try:
            seconds = float(timeout)
        except ValueError:
            seconds = -1.0
        if not 1 < seconds <= MAX_START_TIMEOUT:
            raise InputError([{"loc": ["header", TIMEOUT_HEADER.lower()], "type": "value_error",
                               "msg": f"{timeout[:40]!r} is not a number of seconds above 1 and at most "
                                      f"{MAX_START_TIMEOUT}"}])
        return priority == "low", time.time() + seconds

    async def checked_input(self, request: web.Request) -> GenerationInput:
        """The validated request: fields, switched-on features' models and LoRAs, all before anything is queued."""
        body = await read_json(request, self.body_limit())
        limits = MediaLimits(self.config.max_image_bytes, self.config.max_video_bytes)
        generation = parse_input(body, endpoint=self.endpoint_of(request), limits=limits,
                                 defaults=self.config.request_defaults())
        missing = await asyncio.to_thread(
            lora_errors, generation, file_missing=self.host.lora_file_missing, fetch_error=self.fetch_error,
            check_reachable=self.check_reachable or (lambda url, what: None))
        if missing:
            raise InputError(missing)
        feature_inputs(generation, self.host.node_inputs("LTX097TextToVideo"), self.host.missing_feature_models())
        return generation

    async def enqueue(self, request: web.Request) -> Job:
        """Validate, build and queue one request (raises InputError for a 422)."""
        low_priority, start_deadline = self.start_options(request)
        generation = await self.checked_input(request)
        webhook_url = request.query.get("fal_webhook") or None
        if webhook_url is not None and not webhook_url.lower().startswith(("http://", "https://")):
            raise InputError([{"loc": ["query", "fal_webhook"], "msg": "the webhook must be an http(s) URL",
                               "type": "url_scheme"}])
        request_id = str(uuid.uuid4())
        node_inputs = self.host.node_inputs("LTX097TextToVideo")
        media_files = await self.media(generation, request_id, self.local_upload(request)) \
            if self.media and generation.conditions else []
        prompt = build_prompt(generation, self.config, request_id, media_files=media_files, node_inputs=node_inputs)
        job = Job(request_id, generation.seed, generation.prompt, webhook_url=webhook_url,
                  server_url=self.base_url(request), endpoint=self.endpoint_of(request),
                  start_deadline=start_deadline)
        self.book.add(job, persist=False)
        try:
            await self.host.queue(prompt, request_id, low_priority=low_priority)
        except Exception as refused:
            self.book.discard(request_id)
            self.remove_media(request_id)
            raise self.refusal(refused, generation) from refused
        self.store.save(job)
        self.ensure_monitor()
        logger.info("LTX-Video API: queued %s request %s (seed %d)", job.endpoint, request_id, generation.seed)
        return job

    def local_upload(self, request: web.Request):
        """`url -> (bytes, content type) | None` for files uploaded to this server."""
        base = self.base_url(request)
        return (lambda url: self.uploads.local(url, base)) if self.uploads is not None else (lambda url: None)

    @staticmethod
    def refusal(refused: Exception, generation: GenerationInput) -> Exception:
        """ComfyUI's validation errors: a LoRA's are the caller's (422), the rest the server's set-up (500)."""
        node_errors = getattr(refused, "node_errors", None) or {}
        messages = {node: "; ".join(f"{e.get('message', '')}: {e.get('details', '')}".strip(": ")
                                    for e in info.get("errors", [])) for node, info in node_errors.items()}
        if "loras" in messages and generation.loras:
            return InputError([error(("loras",), messages["loras"])])
        detail = "; ".join(f"{node}: {text}" for node, text in messages.items()) or str(refused)
        return web.HTTPInternalServerError(text=json.dumps({"detail": f"the server could not queue the request "
                                                                      f"(check ltxv097_api.json): {detail}"}),
                                           content_type="application/json")

    async def accept(self, request: web.Request) -> Job | web.Response:
        """The queued job of a submit or run, or the answer refusing it (401 / 422)."""
        if (denied := self.refused(request)) is not None:
            return denied
        try:
            return await self.enqueue(request)
        except InputError as bad:
            return json_response({"detail": bad.detail}, 422)
        except BodyRefused as refused:
            return json_response({"detail": refused.detail}, refused.status)

    async def submit(self, request: web.Request) -> web.Response:
        job = await self.accept(request)
        if isinstance(job, web.Response):
            return job
        body = {"status": "IN_QUEUE", "request_id": job.request_id, **self.urls(request).of(job.request_id),
                "queue_position": self.queue_position(job.request_id)}
        return json_response(body, request_id=job.request_id)

    async def run(self, request: web.Request) -> web.Response:
        job = await self.accept(request)
        if isinstance(job, web.Response):
            return job
        while not job.finished:
            await asyncio.sleep(POLL_SECONDS)
            job = self.book.get(job.request_id)
        return self.outcome(request, job)

    # status / result / cancel ---------------------------------------------------------------------------------

    async def status(self, request: web.Request) -> web.Response:
        if (denied := self.refused(request)) is not None:
            return denied
        job = self.job_of(request)
        with_logs = request.query.get("logs", "0").lower() in ("1", "true", "yes")
        return json_response(await self.current_status(request, job.request_id, with_logs=with_logs),
                             request_id=job.request_id)

    async def current_status(self, request: web.Request, request_id: str, *, with_logs: bool = True) -> dict:
        """fal's status of the request now. ComfyUI may have taken it from its queue since the follower last
        looked: then it is in progress, and the requests behind it are counted from 0 without it."""
        job = self.book.get(request_id)
        position = None
        if job.state == QUEUED:
            running, pending = self.host.queue_order()
            if job.request_id in running:
                self.book.start(job.request_id)
                job = self.book.get(job.request_id)
            else:
                position = pending.index(job.request_id) if job.request_id in pending else 0
        return status_json(job, self.urls(request), queue_position=position, with_logs=with_logs)

    async def status_stream(self, request: web.Request) -> web.StreamResponse:
        if (denied := self.refused(request)) is not None:
            return denied
        job = self.job_of(request)
        return await stream_status(request, lambda: self.current_status(request, job.request_id),
                                   poll_seconds=POLL_SECONDS, headers={REQUEST_ID_HEADER: job.request_id})

    async def result(self, request: web.Request) -> web.Response:
        if (denied := self.refused(request)) is not None:
            return denied
        job = self.job_of(request)
        if not job.finished:
            return json_response({"detail": "the request is still in progress"}, 400, job.request_id)
        return self.outcome(request, job)

    def outcome(self, request: web.Request, job: Job) -> web.Response:
        if job.state == COMPLETED:
            output = result_json(job, self.file_url(self.base_url(request), job))
            return json_response(output, request_id=job.request_id)
        status, body = error_answer(job.state, job.error, job.error_type)
        response = json_response(body, status, job.request_id)
        if job.error_type == "request_timeout":  # the service's answer to a request that did not start in time
            response.headers[TIMEOUT_TYPE_HEADER] = "user"
        return response

    async def cancel(self, request: web.Request) -> web.Response:
        if (denied := self.refused(request)) is not None:
            return denied
        job = self.job_of(request)
        if job.finished:
            return json_response({"status": "ALREADY_COMPLETED"}, 400, job.request_id)
        self.book.request_cancel(job.request_id)
        if job.state == QUEUED and self.host.remove_queued(job.request_id):
            self.book.fail(job.request_id, "the request was cancelled before it started", "request_cancelled",
                           cancelled=True)
            self.ended(job.request_id)
        else:
            self.host.interrupt(job.request_id)
        return json_response({"status": "CANCELLATION_REQUESTED"}, 202, job.request_id)

    async def file(self, request: web.Request) -> web.StreamResponse:
        job = self.job_of(request)
        if job.state != COMPLETED or request.match_info["file_name"] != job.video["file_name"]:
            raise web.HTTPNotFound(text=json.dumps({"detail": "no such file"}), content_type="application/json")
        path = self.host.output_dir() / job.video["path"]
        if not path.is_file():
            raise web.HTTPGone(text=json.dumps({"detail": "the video file was deleted from the output folder"}),
                               content_type="application/json")
        return web.FileResponse(path, headers={"Content-Type": "video/mp4"})

    # progress -------------------------------------------------------------------------------------------------

    def on_log(self, message: str) -> None:
        """run_log listener (ComfyUI's worker thread): the line belongs to the prompt running now."""
        prompt_id = self.host.current_prompt_id()
        if prompt_id:
            self.book.log(prompt_id, message)

    def ensure_monitor(self) -> None:
        if self._monitor is None or self._monitor.done():
            self._monitor = asyncio.get_running_loop().create_task(self.monitor())

    async def monitor(self) -> None:
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
        waited = round(job.start_deadline - job.created_at, 1)
        self.book.fail(job.request_id, f"the request did not start within {waited:g} s (X-Fal-Request-Timeout)",
                       "request_timeout")
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
            cancelled = interrupted and current is not None and current.cancel_requested
            self.book.fail(job.request_id, "the request was cancelled" if cancelled else message,
                           "request_cancelled" if cancelled else error_type, cancelled=cancelled)
        self.remove_media(job.request_id)
        self.ended(job.request_id)

    def ended(self, request_id: str) -> None:
        """Send the webhook of a request that has just ended (whatever the ending: each ending comes here once)."""
        finished = self.book.get(request_id)
        if finished is not None and finished.finished and finished.webhook_url and self.notify is not None:
            output = result_json(finished, self.file_url(finished.server_url, finished)) \
                if finished.state == COMPLETED else None
            asyncio.get_running_loop().create_task(self.notify(finished, output))

    def remove_media(self, request_id: str) -> None:
        """The condition files of a request leave the input folder once it is done."""
        for path in self.host.input_dir().glob(f"ltxv097_api_{request_id}_*"):
            path.unlink(missing_ok=True)
