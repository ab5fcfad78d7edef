"""When `api_keys` is set, every route of the server needs a key: ComfyUI's own (the UI, `/prompt`, `/queue`,
`/history`, `/view`, `/ws`, ...) as well as the API's.

An aiohttp middleware on ComfyUI's app lets a request through when it carries `Authorization: Key <key>`, or the
session cookie a browser gets by logging in with a key at `/ltxv097_login`, or (for the API's mp4 files only)
the signed token the API puts in the file URLs it hands out. Anything else is answered 401 (JSON), or sent to the
login page when a browser asks for a page. Uploads through the storage API carry their own one-upload token, which
their handlers check. Sessions and tokens are HMACs under a secret that combines a random
value kept in the user directory (in the fleet mode: in the job database, the same for every instance) with the keys,
so they survive a restart and die when the keys change.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import os
import secrets
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

from aiohttp import web

from .access import key_accepted

LOGIN_PATH = "/ltxv097_login"
"""Outside `/ltxv097_api/`, whose errors the API answers in JSON: the login page is HTML, its wrong-key answer too."""
COOKIE = "ltxv097_session"
SESSION_SECONDS = 7 * 24 * 3600
TOKEN_PARAM = "token"
SECRET_FILE = "gate_secret"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def new_secret() -> str:
    return secrets.token_hex(32)


def load_secret(folder: Path) -> bytes:
    """The random half of the secret, created (readable by the owner only) on first use."""
    path = Path(folder) / SECRET_FILE
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(new_secret())
    return bytes.fromhex(path.read_text().strip())


class Gate:
    def __init__(self, keys: Iterable[str], secret: bytes, signed_prefix: str,
                 handler_tokens: dict[str, str] | None = None):
        """`handler_tokens` maps a path prefix to the query parameter of a token its own handlers check (the storage
        API's one-upload tokens: the clients send no key with those uploads)."""
        self.keys = tuple(keys)
        self.signed_prefix = signed_prefix.rstrip("/") + "/"
        self.handler_tokens = dict(handler_tokens or {})
        self.use_secret(secret)

    def use_secret(self, secret: bytes) -> None:
        """Sign and check with `secret` from now on: the fleet mode's shared one once its database is reached, so a
        URL signed by one instance is served by every other."""
        self._key = hashlib.sha256(secret + b"\0" + "\0".join(sorted(self.keys)).encode()).digest()

    @property
    def active(self) -> bool:
        return bool(self.keys)

    def _mac(self, message: str) -> str:
        return hmac.new(self._key, message.encode(), hashlib.sha256).hexdigest()

    # signed file URLs ---------------------------------------------------------------------------------------------

    def signed(self, url: str) -> str:
        """`url` (under the signed prefix) with its token; unchanged when no keys are set."""
        if not self.active:
            return url
        path = urllib.parse.urlsplit(url).path
        return f"{url}?{TOKEN_PARAM}={self._mac('file ' + path)}"

    def _signed_ok(self, request: web.Request) -> bool:
        token = request.query.get(TOKEN_PARAM, "")
        return (request.method in ("GET", "HEAD") and request.path.startswith(self.signed_prefix) and bool(token)
                and hmac.compare_digest(token, self._mac("file " + request.path)))

    # sessions -----------------------------------------------------------------------------------------------------

    def session_cookie(self, now: float | None = None) -> str:
        expires = int((now or time.time()) + SESSION_SECONDS)
        return f"{expires}.{self._mac(f'session {expires}')}"

    def _session_ok(self, request: web.Request) -> bool:
        expires, _, mac = request.cookies.get(COOKIE, "").partition(".")
        return (expires.isdigit() and int(expires) > time.time()
                and hmac.compare_digest(mac, self._mac(f"session {expires}")))

    def allowed(self, request: web.Request) -> bool:
        return (not self.active or request.path == LOGIN_PATH
                or key_accepted(request.headers.get("Authorization"), self.keys)
                or self._session_ok(request) or self._signed_ok(request) or self._handler_token(request))

    def _handler_token(self, request: web.Request) -> bool:
        return any(request.path.startswith(prefix + "/") and request.query.get(parameter)
                   for prefix, parameter in self.handler_tokens.items())

    # the middleware and the login page ----------------------------------------------------------------------------

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.allowed(request):
            return await handler(request)
        if request.method == "GET" and "text/html" in request.headers.get("Accept", ""):
            raise web.HTTPFound(f"{LOGIN_PATH}?{urllib.parse.urlencode({'next': request.path_qs})}")
        return web.json_response({"detail": "this server needs a key: send 'Authorization: Key <key>' with a key "
                                            f"from api_keys in ltxv097_api.json, or log in at {LOGIN_PATH}"},
                                 status=401)

    def register(self, routes) -> None:
        routes.get(LOGIN_PATH)(self.login_page)
        routes.post(LOGIN_PATH)(self.login)

    async def login_page(self, request: web.Request, message: str = "", status: int = 200) -> web.Response:
        target = html.escape(self._next(request.query.get("next")))
        note = f"<p role='alert'>{html.escape(message)}</p>" if message else ""
        page = (f"<!doctype html><meta charset='utf-8'><title>ComfyUI: log in</title>"
                f"<form method='post' action='{LOGIN_PATH}'><h1>This ComfyUI needs a key</h1>{note}"
                f"<input type='hidden' name='next' value='{target}'>"
                f"<label>Key <input type='password' name='key' autofocus autocomplete='current-password'></label> "
                f"<button>Log in</button></form>")
        return web.Response(text=page, content_type="text/html", status=status)

    async def login(self, request: web.Request) -> web.Response:
        form = await request.post()
        key, target = str(form.get("key", "")), self._next(str(form.get("next", "")))
        if not self.active or not key_accepted(f"Key {key}", self.keys):
            return await self.login_page(request, "That key is not one of the keys of this server.", 401)
        response = web.HTTPFound(target)
        response.set_cookie(COOKIE, self.session_cookie(), max_age=SESSION_SECONDS, httponly=True,
                            samesite="Strict", secure=request.secure, path="/")
        raise response

    @staticmethod
    def _next(target: str | None) -> str:
        """A path on this server to go back to after logging in (never another site)."""
        if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
            return "/"
        return target
