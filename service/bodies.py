"""A submit's JSON body, read with the API's own size limit instead of aiohttp's (ComfyUI's upload limit, 100 MB
by default), so a data URI may carry a video as large as `max_video_bytes`; other content types are refused."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from .schema import InputError, field_error

JSON_TYPES = ("application/json",)
CHUNK_BYTES = 1024 * 1024
BODY_MARGIN = 1024 * 1024
"""Room for the other fields beside the largest data URI."""


class BodyRefused(Exception):
    """A body that is not read at all: `status` (413 / 415) and the JSON `detail`."""

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status, self.detail = status, detail


async def read_json(request: web.Request, limit: int) -> Any:
    """The parsed body; `BodyRefused` for a non-JSON content type or more than `limit` bytes, `InputError` (422)
    for a body that is not JSON."""
    if request.content_type not in JSON_TYPES:
        raise BodyRefused(415, f"the body must be JSON (Content-Type: application/json), not "
                               f"{request.content_type or 'none'}")
    if request.content_length is not None and request.content_length > limit:
        raise BodyRefused(413, f"the body is {request.content_length} bytes; at most {limit}")
    data = bytearray()
    async for chunk in request.content.iter_chunked(CHUNK_BYTES):
        data += chunk
        if len(data) > limit:
            raise BodyRefused(413, f"the body is over {limit} bytes, the most this server takes")
    try:
        return json.loads(bytes(data))
    except ValueError as bad:
        raise InputError([field_error((), f"the body is not valid JSON: {bad}", "json_invalid")]) from bad
