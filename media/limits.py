"""How much work one condition image or video may cause, decided from the file's header before any pixel is
decoded, and how much memory a whole request needs. Shared by the API (`service/media.py`) and the nodes that load
condition media, so both refuse the same files. Plain Python (Pillow and PyAV, no ComfyUI).

A 12000×12000 PNG is 420 KB (under every byte cap) and about 20 GB once decoded and prepared; only pixel counts
bound that.
"""

from __future__ import annotations

import io
import logging
import warnings
from dataclasses import dataclass

logger = logging.getLogger(__name__)

MAX_IMAGE_PIXELS = 8192 * 8192
"""An image condition's width × height × frames (a GIF's frames count): the largest frame the nodes make."""
MAX_VIDEO_PIXELS = 1920 * 1080 * 257
"""A video condition's width × height × frames: a 1080p clip as long as the longest video the API makes."""
IMAGE_BYTES_PER_PIXEL = 150
"""Memory one condition image pixel costs from decoding to the model's input (measured: ~146 MB per megapixel)."""
VIDEO_BYTES_PER_PIXEL = 40
"""Memory one pixel of one condition video frame costs (decoded as float RGB, then cropped and re-encoded)."""
OUTPUT_BYTES_PER_PIXEL = 24
"""Memory one pixel of one generated frame costs (decoded float RGB frames, and their uint8 copy for the mp4)."""


class MediaTooLarge(ValueError):
    """A condition whose pixels exceed a limit (the message names the sizes and the limit)."""


class UnreadableMedia(ValueError):
    """A file whose header cannot be read as the kind of media it claims to be."""


@dataclass(frozen=True)
class MediaSize:
    width: int
    height: int
    frames: int = 1

    @property
    def pixels(self) -> int:
        return self.width * self.height * self.frames

    def __str__(self) -> str:
        frames = f" × {self.frames} frames" if self.frames != 1 else ""
        return f"{self.width}×{self.height} px{frames}"


def image_size(data: bytes) -> MediaSize:
    """Width, height and frame count of an image file from its header (Pillow opens lazily: nothing is decoded)."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the pixel limit below decides
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                frames = int(getattr(image, "n_frames", 1) or 1)
    except Image.DecompressionBombError as bomb:
        raise MediaTooLarge(f"the image is too large to open: {bomb}") from None
    except (OSError, ValueError, SyntaxError) as error:
        raise UnreadableMedia(f"the image's header cannot be read ({error})") from None
    return MediaSize(width, height, frames)


def video_size(data: bytes) -> MediaSize:
    """Width, height and frame count of a video's first video stream from its container (PyAV): the stream's frame
    count, else its packets counted without decoding them."""
    import av

    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.video:
                raise UnreadableMedia("the file has no video stream")
            stream = container.streams.video[0]
            width, height = stream.codec_context.width, stream.codec_context.height
            frames = int(stream.frames or 0) or sum(1 for packet in container.demux(stream) if packet.size)
    except av.FFmpegError as error:
        raise UnreadableMedia(f"the video's container cannot be read ({error})") from None
    return MediaSize(width, height, frames)


def check_pixels(size: MediaSize, limit: int, what: str) -> None:
    """Refuse `size` when its pixels exceed `limit`."""
    if size.pixels > limit:
        raise MediaTooLarge(f"{what} is {size} = {size.pixels:,} pixels; at most {limit:,} are allowed")


def condition_memory(kind: str, size: MediaSize) -> int:
    """Bytes a condition ("image" or "video") of this size needs while it is prepared."""
    return size.pixels * (IMAGE_BYTES_PER_PIXEL if kind == "image" else VIDEO_BYTES_PER_PIXEL)


def output_memory(width: int, height: int, frames: int) -> int:
    return width * height * frames * OUTPUT_BYTES_PER_PIXEL


def available_memory() -> int | None:
    """Bytes of memory the machine has free now (None when unknown)."""
    try:
        import psutil
    except ImportError:
        return None
    return int(psutil.virtual_memory().available)


def gigabytes(size: int) -> str:
    return f"{size / 2**30:.2f} GB"
