"""Saving frames as an H.264 mp4 with PyAV, shown in the UI and returned as core `VIDEO`.

The file goes to ComfyUI's output folder (`folder_paths.get_save_image_path`, so `%date%`-style prefixes and
sub-folders work); the UI entry is core's `PreviewVideo`, which the stock frontend plays; the `VIDEO` output is
core's `VideoFromFile` of that file, so core `SaveVideo` (which copies its streams) and other video nodes work.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable

import folder_paths
import torch
from comfy.cli_args import args
from comfy_api.latest import InputImpl, io, ui

from ..fetch import redact_text
from ..mp4 import DEFAULT_CRF, leftover_parts, write_mp4
from .inputs import CATEGORY, DEFAULT_PREFIX, check_number, frame_rate_input, save_inputs
from .ranges import MAX_FRAME_RATE, MIN_FRAME_RATE

logger = logging.getLogger(__name__)

WITHOUT_METADATA = "ltxv097_without_metadata"
"""An `extra_pnginfo` entry with which a queued prompt asks for mp4 files without the prompt in their metadata.
The HTTP API sets it: its prompts carry the request id (and URLs), so identical requests would otherwise give
different files, and each file would keep its request's details."""


def metadata_of(cls) -> dict[str, str]:
    """The prompt / workflow as mp4 tags (like core SaveVideo), unless ComfyUI runs with --disable-metadata or the
    prompt asks for none (`WITHOUT_METADATA`). URLs in them are redacted: the file is served to whoever has its
    link, a URL's query string or credentials are not."""
    hidden = getattr(cls, "hidden", None)
    if args.disable_metadata or hidden is None or (hidden.extra_pnginfo or {}).get(WITHOUT_METADATA):
        return {}
    tags = {}
    if hidden.prompt is not None:
        tags["prompt"] = redact_text(json.dumps(hidden.prompt))
    for key, value in (hidden.extra_pnginfo or {}).items():
        tags[key] = redact_text(json.dumps(value))
    return tags


def save_video(frames: torch.Tensor | Iterable[torch.Tensor], frame_rate: float, *,
               filename_prefix: str = DEFAULT_PREFIX, crf: int = DEFAULT_CRF, reverse: bool = False,
               metadata: dict[str, str] | None = None, size: tuple[int, int] | None = None):
    """Save to the output folder; returns (path, `ui.SavedResult`, core VIDEO).

    `frames` is one tensor `[F, H, W, 3]` or chunks of frames as they come (then give `size` = (width, height)
    for the file name's placeholders); chunks are written as they arrive, never gathered.
    """
    if torch.is_tensor(frames):
        if reverse:
            frames = frames.flip(0)
        size = (frames.shape[2], frames.shape[1]) if frames.ndim >= 3 else (0, 0)
    elif reverse:
        raise ValueError("reverse needs every frame at once; pass the frames as one tensor")
    width, height = size or (0, 0)
    folder, filename, counter, subfolder, _ = folder_paths.get_save_image_path(
        filename_prefix, folder_paths.get_output_directory(), width, height)
    file = f"{filename}_{counter:05}_.mp4"
    path = os.path.join(folder, file)
    write_mp4(path, frames, frame_rate, crf, metadata)
    return path, ui.SavedResult(file, subfolder, io.FolderType.output), InputImpl.VideoFromFile(path)


def remove_unfinished_videos() -> None:
    """Remove the hidden partial mp4 files that writes cut off by a crash or a kill left in the output folder (at
    start-up, when this process writes none)."""
    removed = [path for path in leftover_parts(folder_paths.get_output_directory())]
    for path in removed:
        path.unlink(missing_ok=True)
    if removed:
        logger.info("removed %d unfinished mp4 file(s) left in the output folder: %s", len(removed),
                    ", ".join(path.name for path in removed[:5]) + (", ..." if len(removed) > 5 else ""))


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
                frame_rate_input("Frames per second; connect the decode node's frame_rate to match the sampler."),
                *save_inputs(),
            ],
            outputs=[io.Video.Output(display_name="video", tooltip="The saved mp4 as a core VIDEO.")],
            is_output_node=True,
        )

    @classmethod
    def validate_inputs(cls, frame_rate: float | None = 25.0) -> bool | str:
        return check_number("frame_rate", frame_rate, MIN_FRAME_RATE, MAX_FRAME_RATE)

    @classmethod
    def execute(cls, images: torch.Tensor, frame_rate: float = 25.0, filename_prefix: str = DEFAULT_PREFIX,
                crf: int = DEFAULT_CRF, reverse_video: bool = False) -> io.NodeOutput:
        _path, saved, video = save_video(images, frame_rate, filename_prefix=filename_prefix, crf=crf,
                                         reverse=reverse_video, metadata=metadata_of(cls))
        return io.NodeOutput(video, ui=ui.PreviewVideo([saved]))


NODES = [LTX097SaveVideo]
