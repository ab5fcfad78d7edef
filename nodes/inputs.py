"""What the nodes' schemas share: the menu category, one factory for each input several nodes take (so the same
input has the same name, range and defaults everywhere; a node may word its tooltip for what it does with it), and
the `validate_inputs` answer for number widgets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from comfy_api.latest import io

from ..hosted import DEFAULT_STEPS, MAX_SEED
from ..ltx_core.arguments import is_number
from ..ltx_core.windows import DEFAULT_OVERLAP_FRAMES, DEFAULT_TEMPORAL_ADAIN_FACTOR, DEFAULT_WINDOW_FRAMES
from ..mp4 import DEFAULT_CRF
from .ops import DTYPE_CHOICES
from .ranges import (
    FRAME_RATE_STEP,
    MAX_FRAME_RATE,
    MAX_FRAMES,
    MAX_SIZE,
    MAX_STEP_CACHE,
    MAX_STEPS,
    MAX_WINDOW_FRAMES,
    MIN_FRAME_RATE,
    MIN_FRAMES,
    MIN_SIZE,
    MIN_STEPS,
    SIZE_GRID,
)
from .recipe_choices import DEFAULT_RECIPE, RECIPE_OPTIONS, RECIPE_TOOLTIP, UPSAMPLER_FILE
from .sockets import LTXConditionsType, LTXGuidanceType, LTXModelType, LTXUpsamplerType, LTXVaeType, LTXWindowsType

CATEGORY = "LTX-Video 0.9.7"
DEFAULT_PREFIX = "LTX-Video/ltxv097"
"""Where the nodes that save an mp4 put it in ComfyUI's output folder by default."""
WINDOWS_TOOLTIP = (f"How videos longer than one window are made (LTX-Video 0.9.7 Long Video Settings). Without "
                   f"it: windows of {DEFAULT_WINDOW_FRAMES} frames overlapping by {DEFAULT_OVERLAP_FRAMES}, AdaIN "
                   f"{DEFAULT_TEMPORAL_ADAIN_FACTOR}, and up to {MAX_WINDOW_FRAMES} frames in one window. A video that "
                   f"fits one window is sampled exactly as before.")


def check_number(name: str, value: Any, low: float, high: float) -> bool | str:
    """`validate_inputs` answer for a number widget: True, or the sentence that refuses the prompt (HTTP 400).

    ComfyUI's own min/max check lets NaN through (every comparison with NaN is false) and is skipped for the
    inputs a node validates itself, so nodes that validate a number check its range here. `None` is what ComfyUI
    passes for a linked input: its value is not known yet and is checked when the node runs.
    """
    if value is None:
        return True
    if not is_number(value, low, high):
        return f"{name}={value!r} is not allowed (allowed: a number in {low:g}–{high:g})"
    return True


def answer(check: Callable[..., Any], *args: Any, **kwargs: Any) -> bool | str:
    """`validate_inputs` answer from a check that raises `ValueError` with a sentence: True, or that sentence."""
    try:
        check(*args, **kwargs)
    except ValueError as error:
        return str(error)
    return True


# ------------------------------------------------------------------------------------------------------------------
# Models


def model_input(tooltip: str = "The LTX-Video transformer (LTX-Video 0.9.7 Model Loader, optionally with LoRAs)."
                ) -> io.Input:
    return LTXModelType.Input("model", tooltip=tooltip)


def vae_input(tooltip: str = "The video VAE from the same checkpoint as the model.") -> io.Input:
    return LTXVaeType.Input("vae", tooltip=tooltip)


def upsampler_input() -> io.Input:
    return LTXUpsamplerType.Input("upsampler", optional=True,
                                  tooltip=f"The spatial latent upsampler ({UPSAMPLER_FILE}, LTX-Video 0.9.7 Latent "
                                          "Upsampler Loader); required by the multi-scale recipes.")


def dtype_input(default: str = "auto", tooltip: str = "Weight dtype.") -> io.Input:
    return io.Combo.Input("dtype", options=list(DTYPE_CHOICES), default=default, tooltip=tooltip)


def download_input(tooltip: str) -> io.Input:
    """A loader's switch to fetch the missing files of a model it knows the source of (off: nothing is fetched)."""
    return io.Boolean.Input("download", default=False, tooltip=tooltip)


# ------------------------------------------------------------------------------------------------------------------
# Prompts


def clip_input() -> io.Input:
    return io.Clip.Input("clip", tooltip="A T5-XXL text encoder: t5xxl_fp16.safetensors (or fp8) in "
                                         "models/text_encoders, loaded with the core Load CLIP node, type ltxv.")


def prompt_input(tooltip: str = "What the video shows. LTX-Video likes long, literal descriptions of the scene, the "
                                "motion and the camera. Read up to 255 tokens (about 190 words); the rest is cut "
                                "off. For a long video, one prompt per window: separate them with a line holding "
                                "only --- (the last one repeats).") -> io.Input:
    return io.String.Input("prompt", multiline=True, default="", tooltip=tooltip)


def negative_prompt_input(default: str) -> io.Input:
    return io.String.Input("negative_prompt", multiline=True, default=default,
                           tooltip="What to steer away from (used by the classifier-free guidance steps).")


def encoded_prompt_inputs(positive_tooltip: str = "The encoded prompt (LTX-Video 0.9.7 Text Encode, or CLIP Text "
                                                  "Encode with a T5-XXL).") -> list[io.Input]:
    return [io.Conditioning.Input("positive", tooltip=positive_tooltip),
            io.Conditioning.Input("negative", tooltip="The encoded negative prompt.")]


# ------------------------------------------------------------------------------------------------------------------
# Sampling


def recipe_input(default: str = DEFAULT_RECIPE) -> io.Input:
    return io.Combo.Input("recipe", options=RECIPE_OPTIONS, default=default, tooltip=RECIPE_TOOLTIP)


def seed_input(tooltip: str = "Seed of the noise; the same seed and inputs give the same video.", *,
               control_after_generate: bool = True) -> io.Input:
    """The noise seed; `control_after_generate` adds the frontend's randomize / increment control."""
    return io.Int.Input("seed", default=0, min=0, max=MAX_SEED, control_after_generate=control_after_generate or None,
                        tooltip=tooltip)


def steps_input(name: str = "steps",
                tooltip: str = "Steps per pass; each pass keeps its σ range. 30 is the 0.9.7 dev recipe's (its "
                               "second pass then runs the last 13), 40 the 0.9.6 2B dev recipe's. The distilled "
                               "recipes run the fixed timesteps they were trained for and do not use it.") -> io.Input:
    return io.Int.Input(name, default=DEFAULT_STEPS, min=MIN_STEPS, max=MAX_STEPS, step=1, tooltip=tooltip)


def frames_input(name: str, default: int, tooltip: str) -> io.Input:
    return io.Int.Input(name, default=default, min=MIN_FRAMES, max=MAX_FRAMES, step=1, tooltip=tooltip)


def frame_rate_input(tooltip: str, default: float = 25.0) -> io.Input:
    return io.Float.Input("frame_rate", default=default, min=MIN_FRAME_RATE, max=MAX_FRAME_RATE, step=FRAME_RATE_STEP,
                          tooltip=tooltip)


def size_inputs(width: int = 768, height: int = 512, num_frames: int = 97, frame_rate: float = 25.0) -> list[io.Input]:
    return [
        io.Int.Input("width", default=width, min=MIN_SIZE, max=MAX_SIZE, step=SIZE_GRID,
                     tooltip="Video width in pixels, in steps of 32 (the model's grid). Another width from a link "
                             "is generated on the next multiple of 32 (padded around the centre) and cropped back "
                             "to exactly that width."),
        io.Int.Input("height", default=height, min=MIN_SIZE, max=MAX_SIZE, step=SIZE_GRID,
                     tooltip="Video height in pixels, in steps of 32 (the model's grid). Another height from a "
                             "link is generated on the next multiple of 32 and cropped back to exactly that "
                             "height."),
        frames_input("num_frames", num_frames,
                     "Number of frames. The model works on 8k+1 frames (9, 17, ..., 97, 121): other counts are "
                     "generated as the next 8k+1 and cut back."),
        frame_rate_input("Frames per second. The model is told the frame rate (it times the motion with it); save "
                         "the video at the same rate.", frame_rate),
    ]


def conditions_input(tooltip: str = "Images / videos pinned to frames (Image Condition, Video Condition), for "
                                    "image-to-video or keyframes, and IC-LoRA guides (Guide).") -> io.Input:
    return LTXConditionsType.Input("conditions", optional=True, tooltip=tooltip)


def guidance_input(tooltip: str = "Changes to the recipe's guidance (Guidance Settings), e.g. its save_memory "
                                  "switch for GPUs with less memory.") -> io.Input:
    return LTXGuidanceType.Input("guidance", optional=True, tooltip=tooltip)


def windows_input() -> io.Input:
    return LTXWindowsType.Input("windows", optional=True, tooltip=WINDOWS_TOOLTIP)


def step_cache_input() -> io.Input:
    return io.Float.Input(
        "step_cache", default=0.0, min=0.0, max=MAX_STEP_CACHE, step=0.01, optional=True,
        tooltip="Step cache threshold (0 = off, the exact result). At each step the first transformer block runs; "
                "when its change since the last full step is below this fraction, the other blocks' last "
                "contribution is reused instead of running them. 0.05-0.15 skips many steps' deep blocks for a "
                "small loss of detail; higher values are faster and blurrier. Never on the first and last step "
                "of a pass, at most 3 reuses in a row.")


# ------------------------------------------------------------------------------------------------------------------
# Video files


def crf_input(default: int, tooltip: str) -> io.Input:
    return io.Int.Input("crf", default=default, min=0, max=51, step=1, tooltip=tooltip)


def save_inputs(prefix: str = DEFAULT_PREFIX) -> list[io.Input]:
    return [
        io.String.Input("filename_prefix", default=prefix,
                        tooltip="File name (and sub-folders) in ComfyUI's output folder; %date:yyyy-MM-dd% and "
                                "other ComfyUI placeholders work. A counter and .mp4 are added."),
        crf_input(DEFAULT_CRF, "H.264 quality: lower is better and bigger (0 = lossless, 19 ≈ visually lossless, "
                               "23 = x264's default)."),
        io.Boolean.Input("reverse_video", default=False, tooltip="Play the video backwards."),
    ]


def hidden_unique_id(cls) -> str | None:
    """The node's id in the running prompt (a hidden input), for progress text under the node."""
    hidden = getattr(cls, "hidden", None)
    return getattr(hidden, "unique_id", None) if hidden is not None else None
