"""The hosted LTX-Video 0.9.7 LoRA service's HTTP API (`fal-ai/ltx-video-lora`) on ComfyUI's own server.

`start(add_log_listener, fetch)` runs inside ComfyUI at pack import: it reads `ltxv097_api.json`, registers the
routes on `PromptServer.instance.routes` (before ComfyUI adds its route table to the app), puts every route of the
server behind the keys when `api_keys` is set (`gate.py`) and reports the set-up in the log.
The HTTP handlers (`routes.py`) hand each request to a `queue.JobQueue`; `local_queue.py` is the one of a single
server (its requests in this process and on disk, run on its own ComfyUI queue).
Everything except `host.py` and `start` is plain Python, unit-tested without ComfyUI.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import ModuleType

logger = logging.getLogger(__name__)

STORE_FOLDER = "ltxv097_api"


def start(add_log_listener: Callable[[Callable[[str], None]], None], fetch: ModuleType, media: ModuleType):
    """Create the API service in the running ComfyUI; returns its routes (their `queue` holds the requests).
    `fetch` is the pack's URL-fetching package (image / video URLs, webhooks), `media` its strict decoding of
    images and videos."""
    from .access import public_without_key
    from .config import FILE_NAME, load_config
    from .errors import json_errors
    from .gate import Gate, load_secret
    from .host import ComfyHost
    from .jobs import FILES_PREFIX
    from .local_queue import LocalQueue
    from .media import ConditionMedia, remove_leftover_inputs
    from .pgqueue.settings import database_url
    from .pgqueue.storage import storage_root, uploads_folder
    from .retention import retention_seconds
    from .routes import APP_ID, QUEUE_PREFIX, ApiRoutes
    from .store import JobStore
    from .uploads import REST_PREFIX, TOKEN_PARAMETER, UPLOADS_PREFIX, UploadRoutes, UploadStore
    from .webhook import Webhook

    host = ComfyHost()
    config = load_config(host.user_dir())
    gate = Gate(config.api_keys, load_secret(host.user_dir() / STORE_FOLDER), FILES_PREFIX,
                {UPLOADS_PREFIX: TOKEN_PARAMETER})
    if gate.active:
        host.add_middleware(gate.middleware)
        gate.register(host.routes)
    condition_media = ConditionMedia(fetch.fetch_bytes, fetch.FetchError, host.input_dir(), config,
                                     check_media=media.check)

    def request_ended(request_id: str) -> None:
        condition_media.remove(request_id)
        fetch.release(request_id)  # the secret parts of its LoRA URLs

    notify = Webhook(fetch.post_json, fetch.redact_url)
    url = database_url(config.database_url)
    uploads_dir = host.user_dir() / STORE_FOLDER / "uploads"  # instances of one ComfyUI folder share it
    if url and config.storage_dir:  # a fleet of machines: in the folder they all mount (not output/, which /view shows)
        uploads_dir = uploads_folder(storage_root(config.storage_dir, host.output_dir()))
    uploads = UploadStore(uploads_dir, config, shared=url is not None)
    options = {"uploads": uploads, "check_reachable": fetch.check_reachable, "fetch_error": fetch.FetchError,
               "sign": gate.signed}
    if url:
        from .pgqueue import fleet_routes

        queue, api = fleet_routes(host, config, url, condition_media, notify, request_ended, gate.use_secret,
                                  **options)
    else:  # one server: the requests it had queued or running were lost with its old process, and their files
        remove_leftover_inputs(host.input_dir())
        queue = LocalQueue(host, JobStore(host.user_dir() / STORE_FOLDER / "requests"), notify, request_ended,
                           sign=gate.signed, retention_seconds=retention_seconds(config.result_retention_hours))
        api = ApiRoutes(queue, host, config, condition_media, **options)
    api.register(host.routes)
    UploadRoutes(uploads, config).register(host.routes)
    host.app().middlewares.append(json_errors((f"{QUEUE_PREFIX}/{APP_ID}", f"/{APP_ID}", REST_PREFIX,
                                               f"/{STORE_FOLDER}")))
    add_log_listener(queue.on_log)
    logger.info("LTX-Video API: %s at <server>/%s (queue at <server>%s/%s), settings from %s: %s", APP_ID, APP_ID,
                QUEUE_PREFIX, APP_ID, host.user_dir() / FILE_NAME, config.public())
    warning = public_without_key(host.listen_addresses(), config.api_keys)
    if warning:
        logger.warning("LTX-Video API: %s", warning)
    return api
