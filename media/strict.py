"""Strict decoding of user media.

Decoders are lenient by default: Pillow fills the missing rows of a cut-short PNG or JPEG with black when
`ImageFile.LOAD_TRUNCATED_IMAGES` is on (ComfyUI's image loader turns it on to retry a failing file, and other
packs turn it on for good), and FFmpeg stops quietly at the end of a cut-short mp4, giving fewer frames than the
file lists. Here an image's structure is verified (PNG chunk checksums up to the end marker) and every frame
decoded with truncation refused, and a video must decode without error to as many frames as its container lists.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import BinaryIO

import av
import torch
from PIL import Image, ImageFile, ImageSequence, UnidentifiedImageError

_strict_lock = threading.Lock()

Source = str | BinaryIO | bytes


class MediaError(ValueError):
    """A media file that cannot be used; the message names it and says what is wrong."""


def check_image(data: bytes, what: str) -> tuple[int, int]:
    """Decode every frame of an image file (PNG, JPEG, WebP, GIF); returns (width, height). Raises `MediaError`
    for a file that is cut short, corrupt or not an image."""
    with _strict_lock:
        lenient, ImageFile.LOAD_TRUNCATED_IMAGES = ImageFile.LOAD_TRUNCATED_IMAGES, False
        try:
            with Image.open(io.BytesIO(data)) as image:
                image.verify()  # the file's structure: chunk checksums and the end marker (PNG)
            with Image.open(io.BytesIO(data)) as image:
                for frame in ImageSequence.Iterator(image):
                    frame.load()
                return image.size
        except UnidentifiedImageError:
            raise MediaError(f"{what} is not an image file that can be read") from None
        except (OSError, SyntaxError, ValueError, EOFError) as error:
            raise MediaError(f"{what} is a damaged or cut-short image: it cannot be decoded whole ({error})") from None
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = lenient


@dataclass(frozen=True)
class VideoFrames:
    frames: torch.Tensor
    """`[F, H, W, 3]` float in [0, 1]."""
    frame_rate: Fraction


def _decode(source: Source, what: str, keep: Callable[[av.VideoFrame], None] | None) -> tuple[int, Fraction]:
    """Decode every frame of the first video stream (each passed to `keep`); (frames, frame rate)."""
    if isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(source)
    elif hasattr(source, "seek"):
        source.seek(0)
    try:
        with av.open(source, mode="r") as container:
            if not container.streams.video:
                raise MediaError(f"{what} has no video stream")
            stream = container.streams.video[0]
            listed, count = stream.frames, 0
            for frame in container.decode(stream):
                if keep is not None:
                    keep(frame)
                count += 1
            rate = Fraction(stream.average_rate) if stream.average_rate else Fraction(1)  # as core reads it
    except MediaError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as error:
        raise MediaError(f"{what} is a damaged or cut-short video: it cannot be decoded whole "
                         f"({getattr(error, 'strerror', None) or error})") from None
    if count == 0:
        raise MediaError(f"{what} is a video with no frames that can be decoded")
    if listed and count < listed:
        raise MediaError(f"{what} is a damaged or cut-short video: its container lists {listed} frames but only "
                         f"{count} could be decoded")
    return count, rate


def check_video(source: Source, what: str) -> int:
    """Decode every frame of a video file (a path, a file object or bytes); returns the frame count. Raises
    `MediaError` for a file that is cut short, corrupt, or has no video."""
    return _decode(source, what, None)[0]


def read_video(source: Source, what: str) -> VideoFrames:
    """The frames of a video file, decoded strictly (see `check_video`)."""
    frames: list[torch.Tensor] = []
    _, rate = _decode(source, what, lambda frame: frames.append(
        torch.from_numpy(frame.to_ndarray(format="rgb24")).float() / 255.0))
    return VideoFrames(torch.stack(frames), rate)


def check(kind: str, data: bytes, what: str) -> None:
    """`check_image` for kind "image", `check_video` for "video"."""
    if kind == "image":
        check_image(data, what)
    else:
        check_video(data, what)
