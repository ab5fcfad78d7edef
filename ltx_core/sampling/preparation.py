"""The one preparation step every generation shares (`sample_video`, and `sample_long_video` per window).

Before the first step: the request is validated, the recipe resolved and checked against the model, the passes'
latent shapes and the padding computed, the prompts cut to the model's 256 tokens and batched, the randomness
seeded. Geometry follows the official `inference.py`: width and height are padded to multiples of 32 and the frame
count to 8k+1 for generation, and the result is cropped back to exactly what was asked for.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..arguments import is_number, is_whole
from ..decoding import VideoLatents
from ..models.grid import (
    FRAMES_PER_LATENT,
    MAX_FRAMES,
    MAX_SIZE,
    MIN_FRAMES,
    MIN_SIZE,
    PIXELS_PER_LATENT,
    TEXT_TOKENS,
    latent_frame_count,
)
from ..randomness import Randomness
from .condition_media import MIN_MEDIA_SIDE, cropped_size, padding_for, prepare_media, trim_frames
from .conditioning import Condition
from .denoise import Prompts
from .guides import check_guide_start
from .recipes import check_recipe, resolve_recipe

logger = logging.getLogger(__name__)

MediaItem = tuple[torch.Tensor, int, float]
"""A prepared condition: media `[1, 3, F, h, w]` in [-1, 1], its start frame, its strength."""


@dataclass
class MediaItems:
    """The prepared media of a generation's conditions and of its guides (given in context, `guides.py`)."""

    conditions: list[MediaItem]
    guides: list[MediaItem]


@dataclass
class Prepared:
    """What the passes of one generation share, settled before its first step."""

    settings: dict
    shapes: list[list[tuple[int, int, int, int, int]]]  # per part (the video, or each window), per pass
    padding: tuple[int, int, int, int]  # (left, right, top, bottom)
    device: torch.device
    prompts: list[Prompts]  # one per prompt given
    randomness: Randomness

    @property
    def multi_scale(self) -> bool:
        return self.settings["pipeline_type"] == "multi-scale"

    @property
    def pass_settings(self) -> list[dict]:
        return [self.settings["first_pass"], self.settings["second_pass"]] if self.multi_scale else [self.settings]

    def media_items(self, conditions: Sequence[Condition], width: int, height: int,
                    num_frames: int) -> MediaItems:
        return prepare_conditions(conditions, width, height, num_frames, self.padding, self.settings["crf"])

    def video_latents(self, latents: torch.Tensor, *, width: int, height: int, num_frames: int, frame_rate: float,
                      seed: int, rng: str) -> VideoLatents:
        """The sampled latents with what decoding needs from the recipe."""
        noise_scale = self.settings["decode_noise_scale"]
        decode_timestep = float(self.settings["decode_timestep"])
        return VideoLatents(latents=latents, width=width, height=height, num_frames=num_frames,
                            frame_rate=frame_rate, padding=self.padding, decode_timestep=decode_timestep,
                            decode_noise_scale=decode_timestep if noise_scale is None else float(noise_scale),
                            tone_map_compression_ratio=float(self.settings["tone_map_compression_ratio"]), seed=seed,
                            rng=rng)


def prepare(checkpoint, *, contexts: Sequence[torch.Tensor], context_masks: Sequence[torch.Tensor],
            negative_context: torch.Tensor, negative_context_mask: torch.Tensor, width: int, height: int,
            num_frames: int, frame_rate: float, seed: int, recipe: str | Mapping[str, Any],
            steps: int | None, conditions: Sequence[Condition], upsampler, rng: str,
            device: torch.device | None, overrides: Mapping[str, Any],
            part_frames: Sequence[int] | None = None) -> Prepared:
    """Validate and settle everything a generation needs; `part_frames` are the frame counts of its windows
    (default: the whole video in one)."""
    validate_request(width, height, num_frames, frame_rate, conditions)
    settings = checked_settings(checkpoint, recipe, overrides, steps, upsampler)
    channels = checkpoint.transformer.config.get("in_channels", 128)
    shapes = [pass_shapes(settings, width=width, height=height, num_frames=frames, channels=channels)
              for frames in (part_frames or [num_frames])]
    check_recipe(settings, len(checkpoint.transformer.transformer_blocks))
    _, padding = padding_for(height, width)
    device = torch.device(device) if device is not None else next(checkpoint.transformer.parameters()).device
    dtype = checkpoint.transformer.compute_dtype
    prompts = [prepare_prompts(c, m, negative_context, negative_context_mask, device, dtype)
               for c, m in zip(contexts, context_masks)]
    return Prepared(settings, shapes, padding, device, prompts, Randomness(seed, device, mode=rng))


def validate_request(width: int, height: int, num_frames: int, frame_rate: float,
                     conditions: Sequence[Condition]) -> None:
    """Refuse what would fail (or give garbage) deep inside a generation, before any work starts."""
    for name, value, low, high in (("width", width, MIN_SIZE, MAX_SIZE), ("height", height, MIN_SIZE, MAX_SIZE),
                                   ("num_frames", num_frames, MIN_FRAMES, MAX_FRAMES)):
        if not is_whole(value, low, high):
            raise ValueError(f"{name}={value!r} is out of range (allowed: whole numbers {low}–{high})")
    if not is_number(frame_rate) or frame_rate <= 0:
        raise ValueError(f"frame_rate={frame_rate!r} must be a finite number of frames per second above 0")
    for index, item in enumerate(conditions):
        if not 0 <= item.start_frame < num_frames:
            raise ValueError(f"conditions[{index}].start_frame={item.start_frame} must lie in 0–{num_frames - 1}")
        if not 0.0 <= item.strength <= 1.0:  # NaN fails this too
            raise ValueError(f"conditions[{index}].strength={item.strength} must lie in 0–1")
        media = item.media
        if media.ndim != 4 or media.shape[-1] != 3 or media.shape[0] < 1:
            raise ValueError(f"conditions[{index}]: media must be [frames, height, width, 3], got "
                             f"{tuple(media.shape)}")
        crop_h, crop_w = cropped_size(media.shape[1], media.shape[2], width, height)
        if min(crop_h, crop_w) < MIN_MEDIA_SIDE:
            raise ValueError(f"conditions[{index}]: the media is {media.shape[2]}×{media.shape[1]} px, "
                             f"{crop_w}×{crop_h} once centre-cropped to the video's {width}:{height} aspect "
                             f"ratio; conditioning media must keep at least {MIN_MEDIA_SIDE} px on each side")


def prepare_prompts(context: torch.Tensor, mask: torch.Tensor, negative: torch.Tensor, negative_mask: torch.Tensor,
             device: torch.device, dtype: torch.dtype) -> Prompts:
    """Truncate to the reference's 256 tokens and pad both prompts to one length (masked out) so they batch."""
    pairs = [(c[:, :TEXT_TOKENS], m[:, :TEXT_TOKENS]) for c, m in ((context, mask), (negative, negative_mask))]
    for name, (c, m) in zip(("context", "negative_context"), pairs):
        if c.ndim != 3 or m.shape != c.shape[:2]:
            raise ValueError(f"{name} must be [1, tokens, channels] with a [1, tokens] mask; got {tuple(c.shape)} "
                             f"and {tuple(m.shape)}")
    length = max(c.shape[1] for c, _ in pairs)
    padded = []
    for c, m in pairs:
        extra = length - c.shape[1]
        padded.append(F.pad(c, (0, 0, 0, extra)).to(device=device, dtype=dtype))
        padded.append(F.pad(m, (0, extra)).to(device))
    return Prompts(*padded)


def prepare_conditions(conditions: Sequence[Condition], width: int, height: int, num_frames: int,
                       padding: tuple[int, int, int, int], crf: int) -> MediaItems:
    """Each condition's media trimmed to the 8k+1 frames that fit, cropped, blurred and CRF-compressed as the
    reference does, with its start frame and strength. Guides are cropped only (no blur, no compression unless
    their `crf` asks), and those of strength 0 are left out before anything is drawn or encoded, so they change
    nothing."""
    prepared = MediaItems([], [])
    for index, item in enumerate(conditions):
        if item.guide and item.strength == 0:
            continue
        frames = trim_frames(item.media.shape[0], item.start_frame, num_frames)
        if frames < 1:
            raise ValueError(f"conditions[{index}]: no frame of the media fits after frame {item.start_frame}")
        if frames < item.media.shape[0]:
            logger.warning("conditions[%d]: using %d of %d frames (8k+1 frames that fit the video)", index, frames,
                           item.media.shape[0])
        if item.guide:
            check_guide_start(item.start_frame, frames, f"conditions[{index}] (a guide)")
        elif frames > 1 and item.start_frame % FRAMES_PER_LATENT:
            raise ValueError(f"conditions[{index}]: a video after frame 0 must start at a multiple of 8, "
                             f"not {item.start_frame}")
        default_crf = 0 if item.guide else crf
        media = prepare_media(item.media[:frames], width=width, height=height, padding=padding,
                              crf=default_crf if item.crf is None else int(item.crf), blur=not item.guide)
        (prepared.guides if item.guide else prepared.conditions).append((media, item.start_frame,
                                                                         float(item.strength)))
    return prepared


def pass_shapes(recipe: Mapping[str, Any], *, width: int, height: int, num_frames: int,
                channels: int = 128) -> list[tuple[int, int, int, int, int]]:
    """Latent shape `[1, C, F, H, W]` of each pass of a resolved recipe for the requested video.

    A multi-scale first pass runs at the padded size × `downscale_factor` (floored to multiples of 32) and the
    second at twice that; a base recipe at the padded size.
    """
    (padded_h, padded_w), _ = padding_for(height, width)
    latent_frames = latent_frame_count(num_frames)
    if recipe["pipeline_type"] != "multi-scale":
        return [(1, channels, latent_frames, padded_h // PIXELS_PER_LATENT, padded_w // PIXELS_PER_LATENT)]
    factor = recipe["downscale_factor"]
    first_w, first_h = int(padded_w * factor), int(padded_h * factor)
    first_w, first_h = first_w - first_w % PIXELS_PER_LATENT, first_h - first_h % PIXELS_PER_LATENT
    if first_w < PIXELS_PER_LATENT or first_h < PIXELS_PER_LATENT:
        raise ValueError(f"{width}×{height} is too small for a multi-scale recipe (the first pass would be "
                         f"{first_w}×{first_h}); use at least {PIXELS_PER_LATENT * 2}×{PIXELS_PER_LATENT * 2}")
    first = (1, channels, latent_frames, first_h // PIXELS_PER_LATENT, first_w // PIXELS_PER_LATENT)
    return [first, (1, channels, latent_frames, 2 * first[3], 2 * first[4])]


def checked_settings(checkpoint, recipe: str | Mapping[str, Any], overrides: Mapping[str, Any],
                      steps: int | None, upsampler) -> dict:
    """The resolved recipe, refused up front when the checkpoint or the upsampler does not fit it (the model's
    blocks are checked by `check_recipe` once the sizes are known to fit)."""
    settings = resolve_recipe(recipe, overrides)
    if checkpoint.transformer is None or checkpoint.vae is None:
        raise ValueError("sampling needs a checkpoint with both a transformer and a VAE")
    if steps is not None:
        settings = apply_steps(settings, steps)
    if settings["pipeline_type"] == "multi-scale" and upsampler is None:
        raise ValueError("this recipe is multi-scale and needs the latent upsampler "
                         "(ltxv-spatial-upscaler-0.9.7.safetensors)")
    if settings["pipeline_type"] == "multi-scale" and tuple(getattr(upsampler, "factor", (1, 2, 2))) != (1, 2, 2):
        raise ValueError(f"this recipe is multi-scale and needs the spatial latent upsampler "
                         f"(ltxv-spatial-upscaler-0.9.7.safetensors); the one given upsamples by "
                         f"{tuple(upsampler.factor)} (frames, height, width), e.g. the temporal upscaler, which "
                         f"goes after sampling (Latent Upsample node, `ltx_core.upsample_video`)")
    return settings


def apply_steps(settings: dict, steps: int) -> dict:
    """Give every pass `steps` steps, scaling its skipped steps so each pass keeps its σ window."""
    if steps < 1:
        raise ValueError(f"steps={steps} must be at least 1")
    passes = [settings["first_pass"], settings["second_pass"]] if "first_pass" in settings else [settings]
    if any("timesteps" in p for p in passes):
        raise ValueError("this recipe uses fixed timesteps (a distilled model); its step count cannot be changed")
    for settings_of_pass in passes:
        total = settings_of_pass.get("num_inference_steps", steps)
        skips = {key: round(settings_of_pass.get(key, 0) * steps / total)
                 for key in ("skip_initial_inference_steps", "skip_final_inference_steps")}
        while sum(skips.values()) >= steps:
            largest = max(skips, key=skips.get)
            skips[largest] -= 1
        settings_of_pass.update(num_inference_steps=steps, **skips)
    return settings
