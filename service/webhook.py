"""The optional webhook (`?fal_webhook=<url>` on submit): POST the outcome there when the request finishes.

The body is the platform's webhook shape: `{request_id, gateway_request_id, status: "OK" | "ERROR", payload,
error}`. It goes through the pack's `fetch.post_json` (injected), so the URL rules of every other download apply,
on the webhooks' own few threads: a slow receiver delays other webhooks at most, never a submit or a download.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from .jobs import COMPLETED, Job
from .outcome import error_answer

logger = logging.getLogger(__name__)

WEBHOOK_THREADS = 4


def webhook_body(job: Job, result: dict | None) -> dict:
    """The platform's shape; a request that ended without a video carries its result's error body as payload."""
    body = {"request_id": job.request_id, "gateway_request_id": job.request_id,
            "status": "OK" if job.state == COMPLETED else "ERROR", "payload": result}
    if job.state != COMPLETED:
        body["error"] = job.error
        body["payload"] = error_answer(job.state, job.error, job.error_type)[1]
    return body


class Webhook:
    def __init__(self, post_json: Callable[..., int], redact: Callable[[str], str]):
        self.post_json, self.redact = post_json, redact
        self.executor = ThreadPoolExecutor(max_workers=WEBHOOK_THREADS, thread_name_prefix="ltxv097-webhook")

    async def __call__(self, job: Job, result: dict | None) -> None:
        shown = self.redact(job.webhook_url)
        try:
            status = await asyncio.get_running_loop().run_in_executor(
                self.executor, self.post_json, job.webhook_url, webhook_body(job, result))
        except Exception as failed:  # a webhook failure never changes the request's own outcome
            logger.warning("LTX-Video API: webhook %s for request %s failed: %s", shown, job.request_id, failed)
            return
        if not 200 <= status < 300:
            logger.warning("LTX-Video API: webhook %s for request %s answered HTTP %d", shown, job.request_id, status)
