"""Image and video conditions given as URLs or base64 data URIs: fetched, checked and put in ComfyUI's input folder.

Fetching goes through the pack's `fetch` package (injected as `fetch_bytes`, so this module stays importable on
its own): http(s) or `data:` only, public addresses only, size caps from the config. The file's first bytes decide
what it is (PNG, JPEG, WebP or GIF for images; MP4/MOV, WebM/MKV for videos), never the name or declared type; then
the pack's `media` package (injected as `check_media`) decodes it whole, so a cut-short or corrupt file is a 422
naming the field before the request is queued.
"""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path
from typing import Callable, Optional

from .config import ServiceConfig
from .schema import GenerationInput, InputError, field_error
from .store import REQUEST_ID

logger = logging.getLogger(__name__)

IMAGE_TYPES = {"png": b"\x89PNG\r\n\x1a\n", "jpg": b"\xff\xd8\xff", "gif": b"GIF8"}
VIDEO_TYPES = {"webm": b"\x1a\x45\xdf\xa3"}


def sniff(kind: str, data: bytes) -> Optional[str]:
    """The file extension for `data` when it is the `kind` ("image" / "video") of file we take; None otherwise."""
    if kind == "image":
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return "webp"
        return next((ext for ext, magic in IMAGE_TYPES.items() if data.startswith(magic)), None)
    if data[4:8] == b"ftyp":
        return "mov" if data[8:10] == b"qt" else "mp4"
    return next((ext for ext, magic in VIDEO_TYPES.items() if data.startswith(magic)), None)


INPUT_PREFIX = "ltxv097_api_"
_INPUT_NAME = re.compile(rf"^{INPUT_PREFIX}{REQUEST_ID.pattern[1:-1]}_\d+_(image|video)\."
                         rf"({'|'.join([*IMAGE_TYPES, 'webp', 'mp4', 'mov', *VIDEO_TYPES])})$")
"""The name `ConditionMedia` gives a request's condition file in the input folder; nothing else matches."""


def input_name(request_id: str, number: int, kind: str, extension: str) -> str:
    """A request's condition file in the input folder (`ConditionMedia.prefix`, its number, kind and extension)."""
    return f"{ConditionMedia.prefix(request_id)}{number}_{kind}.{extension}"


def remove_leftover_inputs(input_dir: Path) -> list[str]:
    """Remove the condition files of requests that can no longer run (at start-up every request still queued or
    running was lost with the old process); only files named by `input_name`, never a user's. Returns the names."""
    removed = []
    if Path(input_dir).is_dir():
        for path in Path(input_dir).iterdir():
            if _INPUT_NAME.match(path.name) and path.is_file():
                path.unlink(missing_ok=True)
                removed.append(path.name)
    if removed:
        logger.info("removed %d condition file(s) left in the input folder by requests that did not finish",
                    len(removed))
    return sorted(removed)


ARTICLE = {"image": "an image", "video": "a video"}
ALLOWED = {"image": "PNG, JPEG, WebP or GIF", "video": "MP4, MOV, WebM or MKV"}


class ConditionMedia:
    """`await media(generation, request_id, local)` → each condition's file name in the input folder, in order; a
    422 naming the field on bad media. `local(url)` returns the bytes of a file uploaded to this server (or None
    when the URL is not one), so uploads need no network round trip."""

    def __init__(self, fetch_bytes: Callable[..., tuple[bytes, str]], fetch_error: type, input_dir: Path,
                 config: ServiceConfig, check_media: Callable[[str, bytes, str], None]):
        """`check_media(kind, data, what)` decodes a file whole, raising ValueError (naming `what`) when it cannot."""
        self.fetch_bytes, self.fetch_error = fetch_bytes, fetch_error
        self.input_dir, self.config, self.check_media = Path(input_dir), config, check_media

    async def __call__(self, generation: GenerationInput, request_id: str,
                       local: Callable[[str], Optional[tuple[bytes, str]]] = lambda url: None) -> list[str]:
        files: list[str] = []
        try:
            for number, condition in enumerate(generation.conditions):
                loc = condition.loc
                data = await self.read(condition, loc, local)
                extension = sniff(condition.kind, data[0])
                if extension is None:
                    declared = f" (sent as {data[1]})" if data[1] else ""
                    raise InputError([field_error(loc, f"is not {ARTICLE[condition.kind]} file{declared}; "
                                                       f"allowed: {ALLOWED[condition.kind]}", "file_type")])
                try:
                    await asyncio.to_thread(self.check_media, condition.kind, data[0],
                                            f"the {'.'.join(map(str, loc))}")
                except ValueError as damaged:
                    raise InputError([field_error(loc, str(damaged), "file_damaged")]) from None
                name = input_name(request_id, number, condition.kind, extension)
                self.input_dir.mkdir(parents=True, exist_ok=True)
                (self.input_dir / name).write_bytes(data[0])
                files.append(name)
        except InputError:
            for name in files:
                (self.input_dir / name).unlink(missing_ok=True)
            raise
        return files

    async def read(self, condition, loc: tuple, local) -> tuple[bytes, str]:
        limit = self.config.max_image_bytes if condition.kind == "image" else self.config.max_video_bytes
        try:
            uploaded = local(condition.url)
        except LookupError as gone:
            raise InputError([field_error(loc, str(gone), "file_download_error")]) from gone
        if uploaded is not None:
            if len(uploaded[0]) > limit:
                raise InputError([field_error(loc, f"the uploaded file is {len(uploaded[0])} bytes; at most "
                                                   f"{limit} bytes are allowed", "file_download_error")])
            return uploaded
        try:
            return await asyncio.to_thread(self.fetch_bytes, condition.url, max_bytes=limit,
                                           what=f"the {'.'.join(map(str, loc))}")
        except self.fetch_error as failed:
            raise InputError([field_error(loc, str(failed), "file_download_error")]) from failed

    def remove(self, request_id: str) -> None:
        """The condition files of a request leave the input folder once it is done (or refused)."""
        for path in self.input_dir.glob(f"{self.prefix(request_id)}*"):
            path.unlink(missing_ok=True)

    @staticmethod
    def prefix(request_id: str) -> str:
        return f"{INPUT_PREFIX}{request_id}_"
