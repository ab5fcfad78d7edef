"""Saving frames as an H.264 mp4 with PyAV, shown in the UI and returned as core `VIDEO`.

The file goes to ComfyUI's output folder (`folder_paths.get_save_image_path`, so `%date%`-style prefixes and
sub-folders work); the UI entry is core's `PreviewVideo`, which the stock frontend plays; the `VIDEO` output is
core's `VideoFromFile` of that file, so core `SaveVideo` (which copies its streams) and other video nodes work.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from fractions import Fraction
from typing import Optional

import av
import folder_paths
import torch
from comfy.cli_args import args
from comfy_api.latest import InputImpl, io, ui

from .common import CATEGORY, check_number
from .ranges import FRAME_RATE_STEP, MAX_FRAME_RATE, MIN_FRAME_RATE

logger = logging.getLogger(__name__)

DEFAULT_PREFIX = "LTX-Video/ltxv097"
DEFAULT_CRF = 19
X264_OPTIONS = {"mbtree": "0"}
"""libx264 settings besides the CRF. The macroblock-tree rate control is off because its AVX-512 code in the x264
that PyAV bundles (core 165) does not always give the same bitstream for the same frames: on CPUs with AVX-512,
about 1 encode in 20 to 100 came out different (up to 28/255 in 22% of the pixels) depending on what the process
had run before. Without it, the same frames always give the same file (at a few percent more bytes)."""


def frame_rate_fraction(frame_rate: float) -> Fraction:
    if isinstance(frame_rate, bool) or not isinstance(frame_rate, (int, float)) or not math.isfinite(frame_rate) \
            or frame_rate <= 0:
        raise ValueError(f"frame_rate={frame_rate!r} is not allowed (allowed: a finite number of frames per "
                         f"second above 0)")
    return Fraction(round(frame_rate * 1000), 1000)


def metadata_of(cls) -> dict[str, str]:
    """The prompt / workflow as mp4 tags (like core SaveVideo), unless ComfyUI runs with --disable-metadata."""
    hidden = getattr(cls, "hidden", None)
    if args.disable_metadata or hidden is None:
        return {}
    tags = {}
    if hidden.prompt is not None:
        tags["prompt"] = json.dumps(hidden.prompt)
    for key, value in (hidden.extra_pnginfo or {}).items():
        tags[key] = json.dumps(value)
    return tags


def write_mp4(path: str, frames: torch.Tensor, frame_rate: float, crf: int = DEFAULT_CRF,
              metadata: Optional[dict[str, str]] = None) -> None:
    """Frames `[F, H, W, 3]` in [0, 1] → H.264 (libx264, yuv420p) mp4 at `frame_rate`; odd sizes lose a pixel."""
    if frames.ndim != 4 or frames.shape[0] == 0 or frames.shape[-1] < 3:
        raise ValueError(f"expected IMAGE frames [frames, height, width, 3], got {tuple(frames.shape)}")
    height, width = frames.shape[1] // 2 * 2, frames.shape[2] // 2 * 2
    if height < 2 or width < 2:
        raise ValueError(f"frames of {frames.shape[2]}×{frames.shape[1]} are too small to save as H.264")
    if (height, width) != tuple(frames.shape[1:3]):
        logger.info("H.264 (yuv420p) needs an even size; saving %d×%d of %d×%d", width, height, frames.shape[2],
                    frames.shape[1])
    rate = frame_rate_fraction(frame_rate)
    folder, name = os.path.split(path)
    handle, partial = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder or ".")
    os.close(handle)
    try:
        with av.open(partial, mode="w", format="mp4",
                     options={"movflags": "use_metadata_tags+faststart"}) as container:
            for key, value in (metadata or {}).items():
                container.metadata[key] = value
            stream = container.add_stream("libx264", rate=rate)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.options = {"crf": str(int(crf)), **X264_OPTIONS}
            for frame in frames:
                pixels = (frame[:height, :width, :3] * 255).round().clamp(0, 255).to(device="cpu",
                                                                                   dtype=torch.uint8)
                for packet in stream.encode(av.VideoFrame.from_ndarray(pixels.numpy(), format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


def save_video(frames: torch.Tensor, frame_rate: float, *, filename_prefix: str = DEFAULT_PREFIX,
               crf: int = DEFAULT_CRF, reverse: bool = False, metadata: Optional[dict[str, str]] = None):
    """Save to the output folder; returns (path, `ui.SavedResult`, core VIDEO)."""
    if reverse:
        frames = frames.flip(0)
    folder, filename, counter, subfolder, _ = folder_paths.get_save_image_path(
        filename_prefix, folder_paths.get_output_directory(), frames.shape[2], frames.shape[1])
    file = f"{filename}_{counter:05}_.mp4"
    path = os.path.join(folder, file)
    write_mp4(path, frames, frame_rate, crf, metadata)
    return path, ui.SavedResult(file, subfolder, io.FolderType.output), InputImpl.VideoFromFile(path)


def save_inputs(prefix: str = DEFAULT_PREFIX) -> list:
    return [
        io.String.Input("filename_prefix", default=prefix,
                        tooltip="File name (and sub-folders) in ComfyUI's output folder; %date:yyyy-MM-dd% and "
                                "other ComfyUI placeholders work. A counter and .mp4 are added."),
        io.Int.Input("crf", default=DEFAULT_CRF, min=0, max=51, step=1,
                     tooltip="H.264 quality: lower is better and bigger (0 = lossless, 19 ≈ visually lossless, "
                             "23 = x264's default)."),
        io.Boolean.Input("reverse_video", default=False, tooltip="Play the video backwards."),
    ]


class LTX097SaveVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LTX097SaveVideo",
            display_name="LTX-Video 0.9.7 Save Video (mp4)",
            category=f"{CATEGORY}/video",
            description=(
                "Saves frames as an H.264 mp4 (yuv420p, plays everywhere) in ComfyUI's output folder, shows it "
                "in the node, and outputs it as a core VIDEO for Save Video or other video nodes. The workflow is "
                "stored in the file's metadata."
            ),
            inputs=[
                io.Image.Input("images", tooltip="The frames [frames, height, width, 3] (LTX-Video 0.9.7 Decode)."),
                io.Float.Input("frame_rate", default=25.0, min=MIN_FRAME_RATE, max=MAX_FRAME_RATE,
                               step=FRAME_RATE_STEP,
                               tooltip="Frames per second; connect the decode node's frame_rate to match the "
                                       "sampler."),
                *save_inputs(),
            ],
            outputs=[io.Video.Output(display_name="video", tooltip="The saved mp4 as a core VIDEO.")],
            is_output_node=True,
        )

    @classmethod
    def validate_inputs(cls, frame_rate: float = 25.0) -> bool | str:
        return check_number("frame_rate", frame_rate, MIN_FRAME_RATE, MAX_FRAME_RATE)

    @classmethod
    def execute(cls, images: torch.Tensor, frame_rate: float = 25.0, filename_prefix: str = DEFAULT_PREFIX,
                crf: int = DEFAULT_CRF, reverse_video: bool = False) -> io.NodeOutput:
        _path, saved, video = save_video(images, frame_rate, filename_prefix=filename_prefix, crf=crf,
                                         reverse=reverse_video, metadata=metadata_of(cls))
        return io.NodeOutput(video, ui=ui.PreviewVideo([saved]))


NODES = [LTX097SaveVideo]
