"""Image and video conditions given as URLs or base64 data URIs: fetched, checked and put in ComfyUI's input folder.

Fetching goes through the pack's `fetch` package (injected as `fetch_bytes`, so this module stays importable on
its own) on the API's own download pool: http(s) or `data:` only, public addresses only, size caps from the
config. The file's first bytes decide what it is (PNG, JPEG, WebP or GIF for images; MP4/MOV, WebM/MKV for
videos), never the name or declared type; its header gives its pixels, checked against the config's limits, and the
whole request's memory estimate is checked against what the machine has free, before anything is decoded or queued.
Then the pack's `media` package (injected as `check_media`) decodes each file whole: a cut-short or corrupt
file is a 422 naming the field before the request is queued.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..hosted import VIDEO_SIZES
from ..media import limits
from .config import ServiceConfig
from .downloads import DownloadPool
from .schema import GenerationInput, InputError, MediaCondition, field_error
from .store import REQUEST_ID

logger = logging.getLogger(__name__)

IMAGE_TYPES = {"png": b"\x89PNG\r\n\x1a\n", "jpg": b"\xff\xd8\xff", "gif": b"GIF8"}
VIDEO_TYPES = {"webm": b"\x1a\x45\xdf\xa3"}


def sniff(kind: str, data: bytes) -> str | None:
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


@dataclass(frozen=True)
class CheckedMedia:
    condition: MediaCondition
    data: bytes
    extension: str
    size: limits.MediaSize


def request_memory(generation: GenerationInput, media: list[CheckedMedia]) -> int:
    """Bytes the request needs at its peak, roughly: its condition media being prepared and its output frames."""
    width, height = VIDEO_SIZES[generation.resolution][generation.aspect_ratio]
    output = limits.output_memory(width * height, 1, generation.number_of_frames)
    return output + sum(limits.condition_memory(item.condition.kind, item.size) for item in media)


class ConditionMedia:
    """`await media(generation, request_id, local)` → each condition's file name in the input folder, in order; a
    422 naming the field on bad media or a request larger than the machine's free memory, `downloads.ServerBusy`
    when every download slot is taken. `local(url)` returns the bytes of a file uploaded to this server (or None
    when the URL is not one), so uploads need no network round trip."""

    def __init__(self, fetch_bytes: Callable[..., tuple[bytes, str]], fetch_error: type, input_dir: Path,
                 config: ServiceConfig, pool: DownloadPool | None = None,
                 free_memory: Callable[[], int | None] = limits.available_memory,
                 check_media: Callable[[str, bytes, str], None] | None = None):
        self.fetch_bytes, self.fetch_error = fetch_bytes, fetch_error
        self.input_dir, self.config, self.check_media = Path(input_dir), config, check_media
        self.pool = pool or DownloadPool(config.max_downloads, config.max_request_downloads)
        self.free_memory = free_memory

    async def __call__(self, generation: GenerationInput, request_id: str,
                       local: Callable[[str], tuple[bytes, str] | None] = lambda url: None) -> list[str]:
        fetched = await self.pool.run([lambda c=condition: self.read(c, local) for condition in generation.conditions])
        media = [self.check(condition, answer) for condition, answer in zip(generation.conditions, fetched)]
        self.check_memory(generation, media)
        files: list[str] = []
        for item in media if self.check_media is not None else ():  # decoded whole within the limits only
            what = f"the {'.'.join(map(str, item.condition.loc))}"
            try:
                await asyncio.to_thread(self.check_media, item.condition.kind, item.data, what)
            except ValueError as damaged:
                raise InputError([field_error(item.condition.loc, str(damaged), "file_damaged")]) from None
        for number, item in enumerate(media):
            name = input_name(request_id, number, item.condition.kind, item.extension)
            self.input_dir.mkdir(parents=True, exist_ok=True)
            (self.input_dir / name).write_bytes(item.data)
            files.append(name)
        return files

    def read(self, condition: MediaCondition, local) -> tuple[bytes, str] | InputError:
        """(content, media type), or the 422 for a failed download (returned: it runs on a pool thread)."""
        loc = condition.loc
        limit = self.config.max_image_bytes if condition.kind == "image" else self.config.max_video_bytes
        try:
            uploaded = local(condition.url)
        except LookupError as gone:
            return InputError([field_error(loc, str(gone), "file_download_error")])
        if uploaded is not None:
            if len(uploaded[0]) > limit:
                return InputError([field_error(loc, f"the uploaded file is {len(uploaded[0])} bytes; at most "
                                                    f"{limit} bytes are allowed", "file_download_error")])
            return uploaded
        try:
            return self.fetch_bytes(condition.url, max_bytes=limit, what=f"the {'.'.join(map(str, loc))}")
        except self.fetch_error as failed:
            return InputError([field_error(loc, str(failed), "file_download_error")])

    def check(self, condition: MediaCondition, fetched: tuple[bytes, str] | InputError) -> CheckedMedia:
        """The file's type from its first bytes and its pixels from its header, within the config's limits."""
        if isinstance(fetched, InputError):
            raise fetched
        data, media_type = fetched
        loc, kind = condition.loc, condition.kind
        extension = sniff(kind, data)
        if extension is None:
            declared = f" (sent as {media_type})" if media_type else ""
            raise InputError([field_error(loc, f"is not {ARTICLE[kind]} file{declared}; allowed: {ALLOWED[kind]}",
                                          "file_type")])
        try:
            size = limits.image_size(data) if kind == "image" else limits.video_size(data)
            limit = self.config.max_image_pixels if kind == "image" else self.config.max_video_pixels
            limits.check_pixels(size, limit, f"the {kind}")
        except limits.MediaTooLarge as large:
            raise InputError([field_error(loc, f"{large} (max_{kind}_pixels in ltxv097_api.json)",
                                          "file_too_large")]) from None
        except limits.UnreadableMedia as unreadable:
            raise InputError([field_error(loc, f"is not a readable {extension} file: {unreadable}",
                                          "file_type")]) from None
        return CheckedMedia(condition, data, extension, size)

    def check_memory(self, generation: GenerationInput, media: list[CheckedMedia]) -> None:
        """Refuse a request the machine cannot hold now; the field named is its largest condition (or its frames)."""
        needed, free = request_memory(generation, media), self.free_memory()
        if free is None or needed <= free:
            return
        largest = max(media, key=lambda item: limits.condition_memory(item.condition.kind, item.size), default=None)
        loc = largest.condition.loc if largest is not None else ("number_of_frames",)
        raise InputError([field_error(loc, f"the request needs about {limits.gigabytes(needed)} of memory and the "
                                           f"server has {limits.gigabytes(free)} free; send smaller media or fewer "
                                           f"frames", "insufficient_memory")])

    def remove(self, request_id: str) -> None:
        """The condition files of a request leave the input folder once it is done (or refused)."""
        for path in self.input_dir.glob(f"{self.prefix(request_id)}*"):
            path.unlink(missing_ok=True)

    @staticmethod
    def prefix(request_id: str) -> str:
        return f"{INPUT_PREFIX}{request_id}_"
