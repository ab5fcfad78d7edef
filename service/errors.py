"""Every answer of the API's paths is JSON with `detail`, and names its request: an aiohttp middleware.

aiohttp's own answers (404 for an unknown path, 405 for a wrong method, 413 for a body over the server's limit) are
plain text, and an unexpected exception would be a plain 500; the clients can then only say "HTTP nnn". For the
API's paths this turns them into `{"detail": ...}` (a crash's detail says to look in the server log, never what
crashed where) and adds `x-fal-request-id` to every answer about one request.
"""

from __future__ import annotations

import logging
import re

from aiohttp import web

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = "x-fal-request-id"
REQUEST_IN_PATH = re.compile(r"/requests/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(?:/|$)")
CRASH_DETAIL = "the server failed while answering; its log has the details"


def api_path(path: str, prefixes: tuple[str, ...]) -> bool:
    return any(path == prefix or path.startswith(prefix + "/") for prefix in prefixes)


def json_error(error: web.HTTPException) -> web.Response:
    """The same status (and Allow header) with a JSON body; a handler's JSON body is kept as it is."""
    headers = {name: value for name, value in error.headers.items() if name.lower() in ("allow",)}
    if error.content_type == "application/json" and error.text:
        return web.Response(text=error.text, status=error.status, content_type="application/json", headers=headers)
    detail = {405: f"method {error.reason.lower()}: this path does not take that method",
              413: "the request body is larger than this server accepts"}.get(error.status)
    if detail is None:
        text = (error.text or "").strip()
        detail = text if text and not text.startswith(str(error.status)) else error.reason
    return web.json_response({"detail": detail}, status=error.status, headers=headers)


def json_errors(prefixes: tuple[str, ...]):
    """The middleware for the paths under `prefixes`."""

    @web.middleware
    async def middleware(request: web.Request, handler):
        if not api_path(request.path, prefixes):
            return await handler(request)
        if isinstance(getattr(request.match_info.route, "resource", None), web.StaticResource):
            # ComfyUI serves its web folder at `/`: an unknown API path would be a (plain) missing file
            return web.json_response({"detail": f"no such API path: {request.method} {request.path}"}, status=404)
        try:
            response = await handler(request)
        except web.HTTPException as error:
            if error.status < 400:
                raise
            response = json_error(error)
        except Exception:
            logger.exception("LTX-Video API: %s %s failed", request.method, request.path)
            response = web.json_response({"detail": CRASH_DETAIL}, status=500)
        if response.status >= 400 and isinstance(response, web.Response) and not response.prepared \
                and response.content_type != "application/json":  # an error answered, not raised (static files)
            response = web.json_response({"detail": response.reason}, status=response.status)
        found = REQUEST_IN_PATH.search(request.path)
        if found and REQUEST_ID_HEADER not in response.headers and not response.prepared:
            response.headers[REQUEST_ID_HEADER] = found.group(1)
        return response

    return middleware
