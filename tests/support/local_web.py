"""A throw-away HTTP server on 127.0.0.1 for fetch tests, with hostile routes: trickles, junk floods, redirects.

    web = LocalWeb()                                   # serves until web.close()
    web.routes["/a"] = LocalWeb.static(200, b"data")   # or any handler(request) -> None
    web.url + "/a"; web.hits["/a"]; web.sent["/a"]     # requests seen, body bytes written (until the client left)
    web.authorizations["/a"]                           # the Authorization header of the last request ("" if none)
    web.finish("/a")                                   # waits until the route's handler has ended

Every route is bounded: it ends by itself within seconds even if the client never hangs up.
"""

from __future__ import annotations

import http.server
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path

Handler = Callable[[http.server.BaseHTTPRequestHandler], None]


class LocalWeb:
    def __init__(self, tls_pem: Path | None = None):
        """`tls_pem` (key + certificate in one file) serves https instead of http."""
        self.routes: dict[str, Handler] = {}
        self.hits: dict[str, int] = {}
        self.sent: dict[str, int] = {}
        self.bodies: dict[str, bytes] = {}
        self.host_headers: dict[str, str] = {}
        self.authorizations: dict[str, str] = {}
        self.done: dict[str, threading.Event] = {}
        web = self

        class Request(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self):
                web.hits[self.path] = web.hits.get(self.path, 0) + 1
                web.host_headers[self.path] = self.headers.get("Host", "")
                web.authorizations[self.path] = self.headers.get("Authorization", "")
                length = int(self.headers.get("Content-Length") or 0)
                web.bodies[self.path] = self.rfile.read(length) if length else b""
                try:
                    web.routes.get(self.path, LocalWeb.static(404, b"not found"))(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    self.close_connection = True
                    web.done.setdefault(self.path, threading.Event()).set()

            do_GET = do_POST = _serve  # noqa: N815 (http.server's naming)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Request)
        self.httpd.daemon_threads = True
        if tls_pem is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls_pem)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.url = f"{'https' if tls_pem else 'http'}://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def finish(self, route: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while route not in self.done and time.monotonic() < deadline:
            time.sleep(0.05)
        if not self.done.get(route, threading.Event()).wait(max(0.0, deadline - time.monotonic())):
            raise TimeoutError(f"route {route} did not finish in {timeout} s")

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # route makers ------------------------------------------------------------------------------------------------

    @staticmethod
    def _head(request, status: int, headers: dict[str, str], length: int | None) -> None:
        request.send_response(status)
        for name, value in headers.items():
            request.send_header(name, value)
        if length is not None:
            request.send_header("Content-Length", str(length))
        request.send_header("Connection", "close")
        request.end_headers()

    @staticmethod
    def static(status: int, body: bytes, headers: dict[str, str] | None = None, *, length: bool = True,
               cut_at: int | None = None) -> Handler:
        """A fixed answer; `cut_at` closes the connection after that many body bytes."""
        def handle(request):
            LocalWeb._head(request, status, headers or {}, len(body) if length else None)
            request.wfile.write(body[:cut_at])
        return handle

    @staticmethod
    def redirect(location: str, status: int = 302) -> Handler:
        return LocalWeb.static(status, b"", {"Location": location})

    def trickle(self, route: str, head: bytes, *, every: float = 0.5, count: int = 20, length: int = 10_000) -> None:
        """`head` at once, then one byte every `every` seconds, `count` times at most (then it hangs up)."""
        def handle(request):
            LocalWeb._head(request, 200, {"Content-Type": "application/octet-stream"}, length)
            request.wfile.write(head)
            request.wfile.flush()
            self.sent[route] = len(head)
            for _ in range(count):
                time.sleep(every)
                request.wfile.write(b"\0")
                request.wfile.flush()
                self.sent[route] += 1
        self.routes[route] = handle

    def steady(self, route: str, head: bytes, until: threading.Event, *, bytes_per_s: int = 12 * 1024,
               length: int = 100 << 20, limit_s: float = 120.0) -> None:
        """`head`, then `bytes_per_s` zeros every second (above the fetchers' minimum rate, far below any useful
        speed) until `until` is set or `limit_s` passed, then it hangs up before `length` bytes."""
        def handle(request):
            LocalWeb._head(request, 200, {"Content-Type": "application/octet-stream"}, length)
            request.wfile.write(head)
            request.wfile.flush()
            self.sent[route] = len(head)
            ends = time.monotonic() + limit_s
            while not until.wait(1.0) and time.monotonic() < ends:
                request.wfile.write(bytes(bytes_per_s))
                request.wfile.flush()
                self.sent[route] += bytes_per_s
        self.routes[route] = handle

    def flood(self, route: str, head: bytes, *, total: int = 32 << 20, piece: int = 64 << 10) -> None:
        """`head` then zeros up to `total` bytes, counting what was written before the client hung up."""
        def handle(request):
            LocalWeb._head(request, 200, {"Content-Type": "application/octet-stream"}, total)
            self.sent[route] = 0
            data = head + bytes(total - len(head))
            for start in range(0, total, piece):
                request.wfile.write(data[start:start + piece])
                self.sent[route] += len(data[start:start + piece])
        self.routes[route] = handle

    def silent(self, route: str, seconds: float = 5.0) -> None:
        """Accepts the request and answers nothing for `seconds`, then hangs up."""
        self.routes[route] = lambda request: time.sleep(seconds)
