"""HTTP/1.1 over a socket connected to an address that `policy` checked, in small reads with short waits.

The standard library's clients resolve the host name themselves (a second resolution could return another
address than the one checked) and cannot resume a read after a short timeout, so a slow sender could only be cut
by a long per-read timeout. Here every wait is at most `pace.POLL_S`, after which `Pace.check` runs.
Only what the fetchers need: one request per connection (`Connection: close`), Content-Length, chunked or
close-delimited bodies, no compression.
"""

from __future__ import annotations

import errno
import select
import socket
import ssl
import time

from .pace import POLL_S, Pace
from .policy import FetchError, IPAddress, Target, ascii_host, unreachable

READ_BYTES = 64 * 1024
MAX_HEADER_BYTES = 64 * 1024
CONNECT_TIMEOUT_S = 15.0
"""Per address; a silent address is 'unreachable', like a closed port."""
USER_AGENT = "ComfyUI-LTX-Video-0.9.7"


def connect(target: Target, addresses: list[IPAddress], pace: Pace) -> socket.socket:
    """A socket connected to the first of `addresses` that answers (TLS with the host's name for https)."""
    for address in addresses:
        sock = _connect_one(address, target.port, pace)
        if sock is not None:
            return _start_tls(sock, target, pace) if target.scheme == "https" else _ready(sock)
    raise unreachable(pace.what, pace.shown_url)


def _connect_one(address: IPAddress, port: int, pace: Pace) -> socket.socket | None:
    """A connected socket, or None when the address refuses, fails or stays silent for CONNECT_TIMEOUT_S; waits in
    POLL_S steps with `cancel()` between them (its exception passes through)."""
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    try:
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError:  # e.g. no IPv6 on this machine
        return None
    started = time.monotonic()
    try:
        sock.setblocking(False)
        code = sock.connect_ex((str(address), port))
    except OSError:
        code = -1
    try:
        while code in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY):
            if pace.cancel is not None:
                pace.cancel()
            code = _connect_result(sock, started, min(CONNECT_TIMEOUT_S, pace.deadline_s))
    except BaseException:
        sock.close()
        raise
    if code != 0:
        sock.close()
        return None
    return sock


def _connect_result(sock: socket.socket, started: float, timeout: float) -> int:
    """The connection's error code after one wait of at most POLL_S (EINPROGRESS while it is still pending)."""
    try:
        if select.select([], [sock], [], POLL_S)[1]:
            return sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    except OSError:
        return -1
    return errno.ETIMEDOUT if time.monotonic() - started > timeout else errno.EINPROGRESS


def _ready(sock: socket.socket) -> socket.socket:
    sock.settimeout(POLL_S)
    return sock


def _start_tls(sock: socket.socket, target: Target, pace: Pace) -> socket.socket:
    try:
        tls = ssl.create_default_context().wrap_socket(sock, server_hostname=ascii_host(target.host),
                                                       do_handshake_on_connect=False)
    except BaseException:
        sock.close()
        raise
    try:
        while True:
            try:
                tls.do_handshake()
                return _ready(tls)
            except ssl.SSLWantReadError:
                select.select([tls], [], [], POLL_S)
            except ssl.SSLWantWriteError:
                select.select([], [tls], [], POLL_S)
            pace.check(0)
    except (ssl.SSLError, ssl.CertificateError, OSError) as error:
        tls.close()
        reason = getattr(error, "verify_message", None) or getattr(error, "reason", None) or type(error).__name__
        raise FetchError(f"{pace.what} from {pace.shown_url} failed: the secure (TLS) connection could not be set "
                         f"up ({reason})") from None
    except BaseException:
        tls.close()
        raise


class Wire:
    """A connected socket, read through a buffer; every wait ends within POLL_S and runs `pace.check`."""

    def __init__(self, sock: socket.socket, pace: Pace):
        self.sock, self.pace = sock, pace
        self.buffer = bytearray()
        self.received = 0

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            self.pace.check(self.received)
            try:
                view = view[self.sock.send(view):]
            except TimeoutError:
                continue
            except OSError:
                raise FetchError(f"{self.pace.what} from {self.pace.shown_url} failed: the server closed the "
                                 f"connection while the request was sent") from None

    def _fill(self) -> bool:
        """One read into the buffer; False at the end of the stream (a reset counts as the end)."""
        while True:
            self.pace.check(self.received)
            try:
                data = self.sock.recv(READ_BYTES)
            except TimeoutError:
                continue
            except OSError:
                return False
            if not data:
                return False
            self.received += len(data)
            self.buffer += data
            return True

    def read_line(self, limit: int = MAX_HEADER_BYTES) -> bytes:
        """One line with its end of line; what is left (maybe b"") at the end of the stream."""
        while True:
            end = self.buffer.find(b"\n")
            if end >= 0:
                return self.take(end + 1)
            if len(self.buffer) > limit:
                raise FetchError(f"{self.pace.what} from {self.pace.shown_url} failed: the server's answer has a "
                                 f"header line longer than {limit} bytes")
            if not self._fill():
                return self.take(len(self.buffer))

    def read_some(self, size: int) -> bytes:
        """Up to `size` bytes (at least one unless the stream ended)."""
        if not self.buffer and not self._fill():
            return b""
        return self.take(min(size, len(self.buffer)))

    def take(self, size: int) -> bytes:
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data


class Response:
    """Status, headers (lower-case names) and the body, read with `read(size)`; b"" once the body is complete."""

    def __init__(self, wire: Wire, status: int, reason: str, headers: dict[str, str]):
        self.wire, self.status, self.reason, self.headers = wire, status, reason, headers
        self.chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length = headers.get("content-length", "")
        self.length = int(length) if length.isdigit() and not self.chunked else None
        self.done = 0
        self._chunk_left = 0
        self._ended = False

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc) -> None:
        self.wire.close()

    def _cut(self) -> FetchError:
        pace = self.pace
        if self.length is not None:
            return FetchError(f"{pace.what} from {pace.shown_url} was cut short: {self.done} of {self.length} bytes "
                              f"arrived")
        return FetchError(f"{pace.what} from {pace.shown_url} was cut short: the connection closed after "
                          f"{self.done} bytes")

    @property
    def pace(self) -> Pace:
        return self.wire.pace

    def read(self, size: int = READ_BYTES) -> bytes:
        if self._ended:
            return b""
        if self.chunked:
            data = self._read_chunked(size)
        elif self.length is not None:
            data = self.wire.read_some(min(size, self.length - self.done)) if self.done < self.length else b""
            if not data and self.done < self.length:
                raise self._cut()
        else:
            data = self.wire.read_some(size)
        self._ended = not data
        self.done += len(data)
        return data

    def _read_chunked(self, size: int) -> bytes:
        if self._chunk_left == 0:
            line = self.wire.read_line()
            if not line.endswith(b"\n"):
                raise self._cut()
            try:
                self._chunk_left = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise FetchError(f"{self.pace.what} from {self.pace.shown_url} failed: the server sent a malformed "
                                 f"chunked body") from None
            if self._chunk_left == 0:
                while self.wire.read_line().strip():  # trailers, up to the blank line
                    pass
                return b""
        data = self.wire.read_some(min(size, self._chunk_left))
        if not data:
            raise self._cut()
        self._chunk_left -= len(data)
        if self._chunk_left == 0 and not self.wire.read_line().endswith(b"\n"):
            raise self._cut()
        return data


def request(target: Target, addresses: list[IPAddress], pace: Pace, *, method: str = "GET", body: bytes = b"",
            content_type: str = "", headers: dict[str, str] | None = None) -> Response:
    """Send one request to the checked `addresses` and read the answer's status and headers (`headers`: extra
    request headers, e.g. a token's Authorization)."""
    wire = Wire(connect(target, addresses, pace), pace)
    try:
        lines = [f"{method} {target.path} HTTP/1.1", f"Host: {target.host_header}", f"User-Agent: {USER_AGENT}",
                 "Accept-Encoding: identity", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        if method != "GET":
            lines += [f"Content-Type: {content_type or 'application/octet-stream'}", f"Content-Length: {len(body)}"]
        wire.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        return _read_head(wire)
    except BaseException:
        wire.close()
        raise


def _read_head(wire: Wire) -> Response:
    pace = wire.pace
    while True:
        line = wire.read_line()
        parts = line.decode("latin-1").strip().split(" ", 2)
        if not line:
            raise FetchError(f"{pace.what} from {pace.shown_url} failed: the server closed the connection without "
                             f"answering")
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise FetchError(f"{pace.what} from {pace.shown_url} failed: the server's answer is not HTTP")
        headers: dict[str, str] = {}
        size = len(line)
        while True:
            line = wire.read_line()
            size += len(line)
            if size > MAX_HEADER_BYTES or not line.endswith(b"\n"):
                raise FetchError(f"{pace.what} from {pace.shown_url} failed: the server's answer has an incomplete "
                                 f"or oversized header")
            if not line.strip():
                break
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip()
            if name == "content-length" and headers.get(name, value) != value:
                raise FetchError(f"{pace.what} from {pace.shown_url} failed: the server sent two different "
                                 f"Content-Length headers")
            headers[name] = value
        status = int(parts[1])
        if not 100 <= status < 200:
            return Response(wire, status, parts[2] if len(parts) > 2 else "", headers)
