"""Extend Video: more frames after a clip (or before it), continuing its look and motion.

The clip's last (or first) `context_frames` are a video condition of a long generation (`ltx_core.windows`
`plan_extension`); the clip's own frames are kept exactly and only the new frames are decoded and joined to them,
straight into the mp4.
"""

from __future__ import annotations

import torch
from comfy_api.latest import io, ui

from .. import ltx_core
from ..hosted import DEFAULT_RECIPE
from ..ltx_core.windows import DEFAULT_CONTEXT_FRAMES, DIRECTIONS, extended_frames
from ..mp4 import DEFAULT_CRF
from .conditioning import as_frames, check_media_size, video_frames
from .decode import iter_frames
from .inputs import (
    CATEGORY,
    encoded_prompt_inputs,
    frame_rate_input,
    frames_input,
    guidance_input,
    hidden_unique_id,
    model_input,
    recipe_input,
    save_inputs,
    seed_input,
    upsampler_input,
    vae_input,
    windows_input,
)
from .long_video import output_connected
from .ranges import MAX_STEPS, MAX_WINDOW_FRAMES
from .sampler import as_latent, sample
from .sockets import LTXModel, LTXUpsampler, LTXVae
from .video import metadata_of, save_video

IMAGES_OUTPUT = 1


def clip_frames(video, images: torch.Tensor | None, frame_rate: float) -> tuple[torch.Tensor, float]:
    """The clip to extend as frames `[F, H, W, 3]` and its frame rate (a VIDEO's own, else `frame_rate`)."""
    if video is not None:
        check_media_size(video, "clip to extend")
        frames, rate = video_frames(video, "the clip to extend")
        rate = float(rate)
    elif images is not None:
        check_media_size(images, "clip to extend")
        frames, rate = images, frame_rate
    else:
        raise ValueError("no clip to extend: connect a VIDEO (Load Video) to video or an IMAGE batch to images")
    if torch.is_tensor(frames) and frames.ndim == 4 and frames.shape[0] == 0:
        raise ValueError("the clip to extend has 0 frames: give a clip of at least 1 frame")
    return as_frames(frames, "clip to extend"), rate


class LTX097ExtendVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LTX097ExtendVideo",
            display_name="LTX-Video 0.9.7 Extend Video",
            category=f"{CATEGORY}/sampling",
            description=(
                "Generates new_frames more frames that continue a clip (append) or lead into it (prepend), "
                "conditioned on the clip's last (first) context_frames, window by window when long. The clip's "
                "frames are kept exactly; saves the whole video as an mp4 and outputs it."
            ),
            inputs=[
                model_input(),
                vae_input(),
                *encoded_prompt_inputs("The encoded prompt for the new frames (one entry per window for a long "
                                       "extension)."),
                frames_input("new_frames", 96, "How many frames to add (exactly this many)."),
                io.Combo.Input("direction", options=list(DIRECTIONS), default="append",
                               tooltip="append: new frames after the clip; prepend: new frames before it, ending "
                                       "in the clip's first frames."),
                io.Int.Input("context_frames", default=DEFAULT_CONTEXT_FRAMES, min=1, max=MAX_WINDOW_FRAMES, step=8,
                             tooltip="Frames of the clip the new ones continue, 8k+1 (1 = only the last frame, as "
                                     "an image). Fewer when the clip is shorter."),
                recipe_input(),
                io.Int.Input("steps", default=0, min=0, max=MAX_STEPS, step=1,
                             tooltip="Steps per pass; 0 = the recipe's. Distilled 0.9.7 runs fixed timesteps: "
                                     "leave 0."),
                seed_input(),
                frame_rate_input("Frames per second when the clip comes as images (a VIDEO brings its own)."),
                *save_inputs("LTX-Video/ltxv097_extended"),
                io.Video.Input("video", optional=True, tooltip="The clip to extend (core VIDEO, e.g. Load "
                                                               "Video). Give this or images."),
                io.Image.Input("images", optional=True, tooltip="The clip to extend as an IMAGE batch."),
                upsampler_input(),
                guidance_input(),
                windows_input(),
            ],
            outputs=[
                io.Video.Output(display_name="video", tooltip="The saved mp4 (clip and new frames) as a core "
                                                              "VIDEO."),
                io.Image.Output(display_name="images",
                                tooltip="All frames [frames, height, width, 3] (gathered only when connected)."),
                io.Float.Output(display_name="frame_rate", tooltip="The video's frame rate."),
            ],
            hidden=[io.Hidden.unique_id, io.Hidden.prompt],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, model: LTXModel, vae: LTXVae, positive, negative, new_frames: int = 96,
                direction: str = "append", context_frames: int = DEFAULT_CONTEXT_FRAMES,
                recipe: str = DEFAULT_RECIPE, steps: int = 0, seed: int = 0, frame_rate: float = 25.0,
                filename_prefix: str = "LTX-Video/ltxv097_extended", crf: int = DEFAULT_CRF,
                reverse_video: bool = False, video=None, images: torch.Tensor | None = None,
                upsampler: LTXUpsampler | None = None, guidance: dict | None = None,
                windows: dict | None = None) -> io.NodeOutput:
        clip, rate = clip_frames(video, images, frame_rate)
        extension = ltx_core.plan_extension(clip, new_frames, direction=direction, context_frames=context_frames)
        height, width = clip.shape[1:3]
        latents = sample(model, vae, positive, negative, recipe=recipe, width=width, height=height,
                         num_frames=extension.num_frames, frame_rate=rate, seed=seed, steps=steps or None,
                         conditions=list(extension.conditions), upsampler=upsampler, guidance=guidance,
                         windows=windows, node_id=hidden_unique_id(cls))
        chunks = extended_frames(clip, iter_frames(vae, as_latent(latents)), extension)
        frames = None
        if reverse_video or output_connected(cls, IMAGES_OUTPUT):
            frames = torch.cat(list(chunks))
            if reverse_video:
                frames = frames.flip(0)
        _path, saved, output = save_video(chunks if frames is None else frames, rate, filename_prefix=filename_prefix,
                                          crf=crf, metadata=metadata_of(cls), size=(width, height))
        return io.NodeOutput(output, frames, rate, ui=ui.PreviewVideo([saved]))


NODES = [LTX097ExtendVideo]
