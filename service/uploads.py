"""The storage API the JavaScript client uploads files with, on this server, so `image_url` / `video_url` can be
files the caller has (a `Blob` in an input, `fal.storage.upload`) without any outside host.

The client calls (`rest.fal.ai` redirected to `<server>/rest` by its request middleware):
- `POST /rest/storage/upload/initiate?storage_type=fal-cdn-v3` `{content_type, file_name}` → `{upload_url, file_url}`,
  then `PUT <upload_url>` with the bytes (no key on that call: the URL carries a one-upload token);
- above 90 MB `POST …/initiate-multipart`, then `PUT <upload_url>/<n>` per 10 MB part (answering `{partNumber,
  etag}`) and `POST <upload_url>/complete` `{parts}`.
Files live in `<user dir>/ltxv097_api/uploads` (in the fleet mode with a `storage_dir`:
`<storage_dir>/ltxv097_api/uploads`, shared by every instance) until their lifetime ends (`upload_lifetime_seconds`,
or less when the client's `X-Fal-Object-Lifecycle` asks for less). A submit naming a `file_url` of this server (in
the fleet mode: of any instance, whose host this one cannot know) reads the file from disk. Size and type are
checked on upload (an image or video the API takes, at most `max_video_bytes`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import time
import urllib.parse
from dataclasses import asdict, dataclass
from pathlib import Path

from aiohttp import web

from ..ltx_core.arguments import is_number
from .access import key_accepted
from .config import ServiceConfig
from .media import sniff

logger = logging.getLogger(__name__)

REST_PREFIX = "/rest/storage/upload"
UPLOADS_PREFIX = "/ltxv097_api/uploads"
UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
TOKEN_PARAMETER = "upload_token"
LIFECYCLE_HEADER = "X-Fal-Object-Lifecycle"
CHUNK_BYTES = 1024 * 1024
MAX_PARTS = 100
ACCEPTED_TYPES = ("image/", "video/", "application/octet-stream")


class UploadError(Exception):
    """An upload refused: `status` and the JSON `detail` the client sees."""

    def __init__(self, status: int, detail):
        super().__init__(str(detail))
        self.status, self.detail = status, detail


class UploadMissing(LookupError):
    """A URL of this server's uploads whose file is gone (expired, never completed or unknown)."""


@dataclass
class Upload:
    upload_id: str
    file_name: str
    content_type: str
    token_hash: str
    expires_at: float
    multipart: bool = False
    size: int | None = None
    """Set once the bytes are complete."""


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def safe_name(name: object, content_type: str) -> str:
    """A file name for URLs and disk: the client's base name with odd characters replaced (default `upload.<ext>`)."""
    base = os.path.basename(str(name or "").replace("\\", "/"))
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._")[:100]
    return base or f"upload.{content_type.split('/')[-1].split(';')[0] or 'bin'}"


class UploadStore:
    """Uploads on disk: `<id>.json` (the record), `<id>.bin` (the bytes), `<id>.part<n>` (multipart pieces).
    `shared`: the folder is the fleet's, so an upload URL naming another host may be one of ours."""

    def __init__(self, root: Path, config: ServiceConfig, *, shared: bool = False):
        self.root, self.config, self.shared = Path(root), config, shared
        self.root.mkdir(parents=True, exist_ok=True)

    def _record(self, upload_id: str) -> Path:
        return self.root / f"{upload_id}.json"

    def data_path(self, upload: Upload) -> Path:
        return self.root / f"{upload.upload_id}.bin"

    def part_path(self, upload: Upload, number: int) -> Path:
        return self.root / f"{upload.upload_id}.part{number}"

    def create(self, content_type: str, file_name: str, lifetime: float | None, multipart: bool
               ) -> tuple[Upload, str]:
        self.remove_expired()
        token = secrets.token_urlsafe(24)
        seconds = self.config.upload_lifetime_seconds if lifetime is None else \
            max(60.0, min(float(lifetime), self.config.upload_lifetime_seconds))
        upload = Upload(secrets.token_hex(16), safe_name(file_name, content_type), content_type, _hash(token),
                        time.time() + seconds, multipart)
        self.save(upload)
        return upload, token

    def save(self, upload: Upload) -> None:
        path = self._record(upload.upload_id)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(upload)))
        os.replace(temporary, path)

    def get(self, upload_id: str) -> Upload | None:
        """The upload, or None when unknown or expired (an expired one is removed)."""
        if not UPLOAD_ID.match(upload_id):
            return None
        try:
            upload = Upload(**json.loads(self._record(upload_id).read_text()))
        except (OSError, ValueError, TypeError):
            return None
        if upload.expires_at < time.time():
            self.remove(upload)
            return None
        return upload

    def remove(self, upload: Upload) -> None:
        for path in self.root.glob(f"{upload.upload_id}.*"):
            path.unlink(missing_ok=True)

    def remove_expired(self) -> None:
        for record in self.root.glob("*.json"):
            self.get(record.stem)

    def authorized(self, upload_id: str, token: str) -> Upload:
        upload = self.get(upload_id)
        if upload is None or not hmac.compare_digest(upload.token_hash, _hash(token or "")):
            raise UploadError(404, "no such upload (unknown, expired, or a wrong upload_token)")
        return upload

    def finish(self, upload: Upload, written: Path) -> Upload:
        """Check the complete bytes (an image or a video the API takes) and keep them."""
        with open(written, "rb") as handle:
            head = handle.read(64)
        if sniff("image", head) is None and sniff("video", head) is None:
            written.unlink(missing_ok=True)
            raise UploadError(415, "the upload is not an image (PNG, JPEG, WebP, GIF) or a video (MP4, MOV, WebM, "
                                   "MKV)")
        os.replace(written, self.data_path(upload))
        upload.size = self.data_path(upload).stat().st_size
        self.save(upload)
        return upload

    def local(self, url: str, base_url: str) -> tuple[bytes, str] | None:
        """(bytes, content type) when `url` is a file uploaded to this server (`base_url`), or in a shared store to
        any instance of the fleet; None for other URLs; `UploadMissing` when it names this server and is gone."""
        parts = urllib.parse.urlsplit(url)
        here = parts.netloc.lower() == urllib.parse.urlsplit(base_url).netloc.lower()
        if not (here or self.shared) or not parts.path.startswith(UPLOADS_PREFIX + "/"):
            return None
        upload_id = parts.path[len(UPLOADS_PREFIX) + 1:].split("/", 1)[0]
        upload = self.get(upload_id)
        if upload is None or upload.size is None:
            if not here:  # another host's URL that is not (or no longer) in the fleet's folder: fetched as any URL
                return None
            raise UploadMissing("the uploaded file is gone (its lifetime ended, or its upload never completed); "
                                "upload it again")
        return self.data_path(upload).read_bytes(), upload.content_type


def requested_lifetime(header: str | None) -> float | None:
    """`expiration_duration_seconds` of the client's `X-Fal-Object-Lifecycle` JSON header, if any."""
    try:
        value = json.loads(header).get("expiration_duration_seconds") if header else None
    except (ValueError, AttributeError):
        return None
    return float(value) if is_number(value, finite=False) else None


class UploadRoutes:
    """The storage API's handlers; `register(routes)` adds them to ComfyUI's route table."""

    def __init__(self, store: UploadStore, config: ServiceConfig):
        self.store, self.config = store, config

    def register(self, routes) -> None:
        routes.post(REST_PREFIX + "/initiate")(self.initiate)
        routes.post(REST_PREFIX + "/initiate-multipart")(self.initiate_multipart)
        file_route = UPLOADS_PREFIX + "/{upload_id}/{file_name}"
        routes.put(file_route)(self.put)
        routes.get(file_route)(self.get)
        routes.put(file_route + "/{part:[0-9]+}")(self.put_part)
        routes.post(file_route + "/complete")(self.complete)

    @staticmethod
    def answer(body, status: int = 200) -> web.Response:
        return web.json_response(body, status=status)

    async def initiate(self, request: web.Request) -> web.Response:
        return await self.start(request, multipart=False)

    async def initiate_multipart(self, request: web.Request) -> web.Response:
        return await self.start(request, multipart=True)

    async def start(self, request: web.Request, *, multipart: bool) -> web.Response:
        if not key_accepted(request.headers.get("Authorization"), self.config.api_keys):
            return self.answer({"detail": "missing or wrong API key: send 'Authorization: Key <key>'"}, 401)
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return self.answer({"detail": [{"loc": ["body"], "msg": "send a JSON object {content_type, file_name}",
                                            "type": "dict_type"}]}, 422)
        content_type = body.get("content_type") or "application/octet-stream"
        if not isinstance(content_type, str) or not content_type.lower().startswith(ACCEPTED_TYPES):
            return self.answer({"detail": [{"loc": ["body", "content_type"], "type": "file_type",
                                            "msg": f"{str(content_type)[:80]!r} is not accepted; upload an image/* "
                                                   "or video/* file"}]}, 422)
        upload, token = self.store.create(content_type.lower(), body.get("file_name"),
                                          requested_lifetime(request.headers.get(LIFECYCLE_HEADER)), multipart)
        base = f"{request.scheme}://{request.host}{UPLOADS_PREFIX}/{upload.upload_id}/{upload.file_name}"
        return self.answer({"upload_url": f"{base}?{TOKEN_PARAMETER}={token}", "file_url": base})

    async def receive(self, request: web.Request, target: Path, limit: int) -> int:
        """Stream the body into `target`; 413 past `limit` bytes (nothing is left behind)."""
        if request.content_length is not None and request.content_length > limit:
            raise UploadError(413, f"the upload is {request.content_length} bytes; at most {limit} bytes")
        size = 0
        try:
            with open(target, "wb") as out:
                async for chunk in request.content.iter_chunked(CHUNK_BYTES):
                    size += len(chunk)
                    if size > limit:
                        raise UploadError(413, f"the upload is over {limit} bytes, the most this server takes")
                    out.write(chunk)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        if size == 0:
            target.unlink(missing_ok=True)
            raise UploadError(422, "the upload is empty")
        return size

    def authorized(self, request: web.Request) -> Upload:
        upload = self.store.authorized(request.match_info["upload_id"], request.query.get(TOKEN_PARAMETER, ""))
        if upload.file_name != request.match_info["file_name"]:
            raise UploadError(404, "no such upload")
        return upload

    async def put(self, request: web.Request) -> web.Response:
        try:
            upload = self.authorized(request)
            if upload.multipart or upload.size is not None:
                raise UploadError(409, "this upload takes parts, or is already complete")
            temporary = self.store.root / f"{upload.upload_id}.incoming"
            await self.receive(request, temporary, self.config.max_video_bytes)
            upload = self.store.finish(upload, temporary)
        except UploadError as refused:
            return self.answer({"detail": refused.detail}, refused.status)
        logger.info("LTX-Video API: upload %s complete (%d bytes)", upload.upload_id, upload.size)
        return self.answer({"file_url": str(request.url.with_query(None))})

    async def put_part(self, request: web.Request) -> web.Response:
        try:
            upload = self.authorized(request)
            number = int(request.match_info["part"])
            if not upload.multipart or upload.size is not None or not 1 <= number <= MAX_PARTS:
                raise UploadError(409, f"part {number} does not fit this upload (parts are 1 to {MAX_PARTS})")
            size = await self.receive(request, self.store.part_path(upload, number), self.config.max_video_bytes)
        except UploadError as refused:
            return self.answer({"detail": refused.detail}, refused.status)
        return self.answer({"partNumber": number, "etag": f"{number}-{size}"})

    async def complete(self, request: web.Request) -> web.Response:
        try:
            upload = self.authorized(request)
            try:
                parts = [int(part["partNumber"]) for part in (await request.json())["parts"]]
            except (ValueError, KeyError, TypeError):
                raise UploadError(422, "send {\"parts\": [{\"partNumber\": n, \"etag\": ...}, ...]}") from None
            self.join(upload, parts)
        except UploadError as refused:
            return self.answer({"detail": refused.detail}, refused.status)
        return self.answer({"file_url": str(request.url.with_query(None)).rsplit("/complete", 1)[0]})

    def join(self, upload: Upload, parts: list[int]) -> None:
        paths = [self.store.part_path(upload, number) for number in parts]
        if not upload.multipart or not paths or any(not path.is_file() for path in paths):
            raise UploadError(409, "a part named in the list was not uploaded")
        if sum(path.stat().st_size for path in paths) > self.config.max_video_bytes:
            self.store.remove(upload)
            raise UploadError(413, f"the upload is over {self.config.max_video_bytes} bytes")
        temporary = self.store.root / f"{upload.upload_id}.incoming"
        with open(temporary, "wb") as out:
            for path in paths:
                with open(path, "rb") as part:
                    while chunk := part.read(CHUNK_BYTES):
                        out.write(chunk)
        for path in self.store.root.glob(f"{upload.upload_id}.part*"):
            path.unlink(missing_ok=True)
        self.store.finish(upload, temporary)

    async def get(self, request: web.Request) -> web.StreamResponse:
        if not key_accepted(request.headers.get("Authorization"), self.config.api_keys):
            return self.answer({"detail": "missing or wrong API key: send 'Authorization: Key <key>'"}, 401)
        upload = self.store.get(request.match_info["upload_id"])
        if upload is None or upload.size is None or upload.file_name != request.match_info["file_name"]:
            return self.answer({"detail": "no such uploaded file (unknown, incomplete or expired)"}, 404)
        return web.FileResponse(self.store.data_path(upload), headers={"Content-Type": upload.content_type})
