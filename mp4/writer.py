"""An mp4 writer that takes frames as they come, so a long video is never held whole in memory.

The file is written under a hidden temporary name next to the target (`.<name>.<random>.part`) and renamed only
when complete: a failed or interrupted write leaves nothing half-written behind, and what a crash left is found by
`leftover_parts` (the pack removes it at start-up).
"""

from __future__ import annotations

import logging
import math
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import torch

logger = logging.getLogger(__name__)

DEFAULT_CRF = 19
"""H.264 quality of the videos the pack writes unless told otherwise: the save nodes' and the API's default."""
X264_OPTIONS = {"mbtree": "0"}
"""libx264 settings besides the CRF. The macroblock-tree rate control is off because its AVX-512 code in the x264
that PyAV bundles (core 165) does not always give the same bitstream for the same frames: on CPUs with AVX-512,
about 1 encode in 20 to 100 came out different (up to 28/255 in 22% of the pixels) depending on what the process
had run before. Without it, the same frames always give the same file (at a few percent more bytes)."""


PART_SUFFIX = ".part"
_PART_NAME = re.compile(r"^\..+\.mp4\.[a-z0-9_]{8}" + re.escape(PART_SUFFIX) + "$")
"""What `tempfile.mkstemp(prefix=".<name>.mp4.", suffix=".part")` names: nothing else matches."""


def leftover_parts(folder: str | Path) -> Iterator[Path]:
    """The hidden partial files of writes that never finished, anywhere under `folder` (symlinks not followed)."""
    for root, _, files in os.walk(folder):
        for name in files:
            if _PART_NAME.match(name):
                yield Path(root) / name


def frame_rate_fraction(frame_rate: float) -> Fraction:
    if isinstance(frame_rate, bool) or not isinstance(frame_rate, (int, float)) or not math.isfinite(frame_rate) \
            or frame_rate <= 0:
        raise ValueError(f"frame_rate={frame_rate!r} is not allowed (allowed: a finite number of frames per "
                         f"second above 0)")
    return Fraction(round(frame_rate * 1000), 1000)


class Mp4Writer:
    """`with Mp4Writer(path, rate) as w: w.write(frames)`: frames `[f, H, W, 3]` in [0, 1], any number of calls.

    H.264 (libx264, yuv420p) needs an even size: odd sizes lose their last row / column.
    """

    def __init__(self, path: str, frame_rate: float, crf: int = DEFAULT_CRF,
                 metadata: dict[str, str] | None = None):
        self.path, self.rate, self.crf, self.metadata = path, frame_rate_fraction(frame_rate), int(crf), metadata
        self.frames = 0
        self._container = self._stream = None
        self._size: tuple[int, int] | None = None
        folder, name = os.path.split(path)
        handle, self._partial = tempfile.mkstemp(prefix=f".{name}.", suffix=PART_SUFFIX, dir=folder or ".")
        os.close(handle)

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(self, kind, error, trace) -> None:
        try:
            if kind is None:
                self._finish()
        finally:
            if self._container is not None and kind is not None:
                self._container.close()
            if os.path.exists(self._partial):
                os.unlink(self._partial)

    def _open(self, height: int, width: int) -> None:
        size = (height // 2 * 2, width // 2 * 2)
        if min(size) < 2:
            raise ValueError(f"frames of {width}×{height} are too small to save as H.264")
        if size != (height, width):
            logger.info("H.264 (yuv420p) needs an even size; saving %d×%d of %d×%d", size[1], size[0], width, height)
        self._size = size
        self._container = av.open(self._partial, mode="w", format="mp4",
                                  options={"movflags": "use_metadata_tags+faststart"})
        for key, value in (self.metadata or {}).items():
            self._container.metadata[key] = value
        self._stream = self._container.add_stream("libx264", rate=self.rate)
        self._stream.height, self._stream.width = size
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"crf": str(self.crf), **X264_OPTIONS}

    def write(self, frames: torch.Tensor) -> None:
        if frames.ndim != 4 or frames.shape[-1] < 3:
            raise ValueError(f"expected IMAGE frames [frames, height, width, 3], got {tuple(frames.shape)}")
        if self._container is None:
            self._open(frames.shape[1], frames.shape[2])
        height, width = self._size
        for frame in frames:
            pixels = (frame[:height, :width, :3] * 255).round().clamp(0, 255).to(device="cpu", dtype=torch.uint8)
            for packet in self._stream.encode(av.VideoFrame.from_ndarray(pixels.numpy(), format="rgb24")):
                self._container.mux(packet)
        self.frames += frames.shape[0]

    def _finish(self) -> None:
        if self._container is None:
            raise ValueError("no frames to save: the video has 0 frames")
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        os.replace(self._partial, self.path)


def write_mp4(path: str, frames: torch.Tensor | Iterable[torch.Tensor], frame_rate: float,
              crf: int = DEFAULT_CRF, metadata: dict[str, str] | None = None) -> int:
    """Frames `[F, H, W, 3]` in [0, 1] (or chunks of them, as they come) → an mp4; returns the frame count."""
    chunks = [frames] if torch.is_tensor(frames) else frames
    with Mp4Writer(path, frame_rate, crf, metadata) as writer:
        for chunk in chunks:
            writer.write(chunk)
    return writer.frames
