"""Fetching a URL the way every caller in the pack should: `download` (large files, to disk), `fetch_bytes`
(small inputs, in memory, `data:` URIs too) and `post_json` (webhooks).

Every hop of a redirect is checked like the first URL (`policy`); every wait is short and runs the caller's
`cancel()` and the deadline and minimum-rate rules (`pace`).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from .pace import DEADLINE_FLOOR_S, MIN_RATE_BYTES_S, RATE_WINDOW_S, Cancel, Pace, default_deadline
from .policy import FetchError, allowed_addresses, parse_url, redact_url
from .tokens import auth_headers
from .wire import READ_BYTES, Response, request

PART_SUFFIX = ".part"
_PART_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}" + re.escape(PART_SUFFIX) + "$")
"""What `tempfile.mkstemp(prefix=".<name>.", suffix=".part")` names."""

MAX_REDIRECTS = 5
REDIRECTS = (301, 302, 303, 307, 308)
PROGRESS_EVERY_S = 0.25

Progress = Callable[[int, int | None], None]
"""`progress(bytes_done, bytes_total_or_None)`."""


def megabytes(size: int) -> str:
    return f"{size / 2**20:.3g} MB"


def open_url(url: str, pace: Pace) -> Response:
    """GET `url`, following at most MAX_REDIRECTS redirects, each hop's scheme and addresses checked anew."""
    current = url
    for hop in range(MAX_REDIRECTS + 1):
        label = pace.what if hop == 0 else f"{pace.what} (redirected from {pace.shown_url})"
        target = parse_url(current, label)
        response = request(target, allowed_addresses(target, pace.what, url), pace, headers=auth_headers(target))
        location = response.headers.get("location")
        if response.status not in REDIRECTS or not location:
            return response
        response.wire.close()
        current = urllib.parse.urljoin(current, location)
    raise FetchError(f"{pace.what} from {pace.shown_url} failed: more than {MAX_REDIRECTS} redirects")


def _require_ok(response: Response) -> None:
    if response.status != 200:
        pace = response.pace
        raise FetchError(f"{pace.what} from {pace.shown_url} failed: the server answered HTTP {response.status} "
                         f"{response.reason}".rstrip())


def _read_head(response: Response, size: int) -> bytes:
    head = b""
    while len(head) < size:
        data = response.read(size - len(head))
        if not data:
            break
        head += data
    return head


def download(url: str, dest: Path, *, max_bytes: int, check_head: Callable[[bytes], None] | None = None,
             head_bytes: int = 16, cancel: Cancel | None = None, progress: Progress | None = None,
             what: str = "the download", check_file: Callable[[Path], None] | None = None, limit_hint: str = "",
             deadline_s: float | None = None, min_rate: float = MIN_RATE_BYTES_S,
             rate_window_s: float = RATE_WINDOW_S) -> Path:
    """Stream `url` to `dest` through a hidden temporary file beside it, renamed into place only when complete;
    nothing is left behind on any failure or cancel.

    `check_head(first head_bytes bytes)` runs before the rest is read and raises to refuse the file. `cancel()` runs
    at least once a second and raises to stop (its exception passes through unchanged). `check_file(temporary
    path)` runs on the complete file before the rename and raises to refuse it. The deadline defaults to
    DEADLINE_FLOOR_S plus the expected size at DEADLINE_BYTES_S; `limit_hint` is added to size-cap messages.
    """
    dest = Path(dest)
    shown = redact_url(url)
    pace = Pace(what, shown, deadline_s=deadline_s or DEADLINE_FLOOR_S, min_rate=min_rate, window_s=rate_window_s,
                cancel=cancel)
    with open_url(url, pace) as response:
        _require_ok(response)
        total = response.length
        if total is not None and total > max_bytes:
            raise FetchError(f"{shown} is {megabytes(total)}, more than the {megabytes(max_bytes)} allowed for "
                             f"{what}{limit_hint}")
        if deadline_s is None:
            pace.set_deadline(default_deadline(total if total is not None else max_bytes))
        head = _read_head(response, head_bytes)
        if check_head is not None:
            check_head(head)
        dest.parent.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=PART_SUFFIX, dir=dest.parent)
        temp = Path(temp_name)
        try:
            with os.fdopen(handle, "wb") as out:
                _stream(response, out, head, max_bytes, progress, f"{shown} is larger than the "
                        f"{megabytes(max_bytes)} allowed for {what}{limit_hint}; stopped")
            if check_file is not None:
                check_file(temp)
            os.replace(temp, dest)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
    return dest


def leftover_parts(folder: Path) -> list[Path]:
    """The hidden partial files (`.<name>.<random>.part`) of downloads into `folder` that never finished: a crash
    or a kill skips the clean-up a failed download gets. Only for a moment when no download into it runs."""
    folder = Path(folder)
    return sorted(path for path in folder.glob(f".*{PART_SUFFIX}") if _PART_NAME.match(path.name)) \
        if folder.is_dir() else []


def _stream(response: Response, out, head: bytes, max_bytes: int, progress: Progress | None,
            too_big: str) -> None:
    data, shown_at = head, 0.0
    while data:
        if response.done > max_bytes:
            raise FetchError(too_big)
        out.write(data)
        now = time.monotonic()
        if progress is not None and now - shown_at >= PROGRESS_EVERY_S:
            progress(response.done, response.length)
            shown_at = now
        data = response.read(READ_BYTES)
    if progress is not None:
        progress(response.done, response.length)


def fetch_bytes(url: str, *, max_bytes: int, cancel: Cancel | None = None, what: str = "the file",
                deadline_s: float | None = None, min_rate: float = MIN_RATE_BYTES_S,
                rate_window_s: float = RATE_WINDOW_S) -> tuple[bytes, str]:
    """(content, media type) of a small http(s) file or a `data:` URI, at most `max_bytes`. The media type is the
    Content-Type (or the URI's) without parameters, lower-case; "" when the server sends none."""
    if url[:5].lower() == "data:":
        return _data_uri(url, max_bytes, what)
    shown = redact_url(url)
    pace = Pace(what, shown, deadline_s=deadline_s or default_deadline(max_bytes), min_rate=min_rate,
                window_s=rate_window_s, cancel=cancel)
    with open_url(url, pace) as response:
        _require_ok(response)
        if response.length is not None and response.length > max_bytes:
            raise FetchError(f"{what} at {shown} is {megabytes(response.length)}, more than the "
                             f"{megabytes(max_bytes)} allowed")
        parts = []
        while data := response.read(READ_BYTES):
            if response.done > max_bytes:
                raise FetchError(f"{what} at {shown} is larger than the {megabytes(max_bytes)} allowed; stopped")
            parts.append(data)
        return b"".join(parts), _media_type(response.headers.get("content-type", ""))


def _media_type(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


def _data_uri(uri: str, max_bytes: int, what: str) -> tuple[bytes, str]:
    """`data:[<media type>][;base64],<data>` (RFC 2397); the size is checked before decoding."""
    header, comma, payload = uri[5:].partition(",")
    if not comma:
        raise FetchError(f"{what}: the data: URI has no ',' before its data (data:[<media type>][;base64],<data>)")
    params = [p.strip() for p in header.split(";")]
    is_base64 = params[-1].lower() == "base64"
    media_type = _media_type(params[0]) or "text/plain"
    if is_base64:
        payload = "".join(payload.split())
        size = len(payload) * 3 // 4 - payload[-2:].count("=")
    else:
        size = len(urllib.parse.unquote_to_bytes(payload))
    if size > max_bytes:
        raise FetchError(f"{what}: the data: URI holds {megabytes(size)}, more than the {megabytes(max_bytes)} "
                         f"allowed")
    if not is_base64:
        return urllib.parse.unquote_to_bytes(payload), media_type
    try:
        return base64.b64decode(payload, validate=True), media_type
    except (binascii.Error, ValueError):
        raise FetchError(f"{what}: the data: URI says base64 but its data is not valid base64") from None


def post_json(url: str, payload: dict, *, timeout: float = 30.0, cancel: Cancel | None = None) -> int:
    """POST `payload` as JSON (a webhook) under the same URL rules; returns the HTTP status. Redirects are not
    followed (the status is returned); the whole exchange has `timeout` seconds."""
    shown = redact_url(url)
    target = parse_url(url, "the webhook")
    pace = Pace("the webhook", shown, deadline_s=timeout, min_rate=0.0, cancel=cancel)
    body = json.dumps(payload).encode("utf-8")
    with request(target, allowed_addresses(target, "the webhook", url), pace, method="POST", body=body,
                 content_type="application/json") as response:
        return response.status
