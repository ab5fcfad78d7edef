"""Text/image/video to video with the official 0.9.x recipes: `sample_video`, `decode_video`, `generate`.

Geometry follows the official `inference.py`: width and height are padded to multiples of 32 and the frame count
to 8k+1 for generation, and the result is cropped back to exactly what was asked for. Multi-scale recipes run a
first pass at about 2/3 of the size, upsample the latents ×2, re-noise and refine them in a second pass, decode,
and resize to the target.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import torch
import torch.nn.functional as F

from .checkpoint import LTXCheckpoint
from .conditioning import Condition
from .decoding import iter_decode_video
from .guides import check_guide_start
from .media import (MIN_MEDIA_SIDE, cropped_size, padded_frame_count, padding_for, prepare_media,
                    trim_frames)
from .passes import LATENT_SCALE, Callback, ModelHook, PassRunner
from .randomness import Randomness
from .recipes import check_recipe, resolve_recipe
from .sampler import Prompts

logger = logging.getLogger(__name__)

MAX_TEXT_TOKENS = 256


@dataclass
class VideoLatents:
    """Sampled latents and what decoding needs to turn them into exactly the requested frames."""

    latents: torch.Tensor  # normalised [B, C, F, H, W] at the last pass's size
    width: int
    height: int
    num_frames: int
    frame_rate: float
    padding: tuple[int, int, int, int]  # (left, right, top, bottom) around the requested size
    decode_timestep: float
    decode_noise_scale: float
    tone_map_compression_ratio: float
    seed: int
    rng: str = "default"

    @property
    def padded_size(self) -> tuple[int, int]:
        left, right, top, bottom = self.padding
        return self.height + top + bottom, self.width + left + right


def _validate(width: int, height: int, num_frames: int, frame_rate: float, conditions: Sequence[Condition]) -> None:
    """Refuse what would fail (or give garbage) deep inside a generation, before any work starts."""
    for name, value, low, high in (("width", width, 32, 8192), ("height", height, 32, 8192),
                                   ("num_frames", num_frames, 1, 2049)):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"{name}={value!r} is out of range (allowed: whole numbers {low}–{high})")
    if isinstance(frame_rate, bool) or not isinstance(frame_rate, (int, float)) or not math.isfinite(frame_rate) \
            or frame_rate <= 0:
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


def _prompts(context: torch.Tensor, mask: torch.Tensor, negative: torch.Tensor, negative_mask: torch.Tensor,
             device: torch.device, dtype: torch.dtype) -> Prompts:
    """Truncate to the reference's 256 tokens and pad both prompts to one length (masked out) so they batch."""
    pairs = [(c[:, :MAX_TEXT_TOKENS], m[:, :MAX_TEXT_TOKENS]) for c, m in ((context, mask), (negative, negative_mask))]
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


Prepared = list[tuple[torch.Tensor, int, float]]


def _prepare_conditions(conditions: Sequence[Condition], width: int, height: int, num_frames: int,
                        padding: tuple[int, int, int, int], crf: int) -> tuple[Prepared, Prepared]:
    """(conditions, guides) as `(media [1, 3, F, h, w], start_frame, strength)`; guides of strength 0 are left
    out before anything is drawn or encoded, so they change nothing."""
    prepared: Prepared = []
    guides: Prepared = []
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
        elif frames > 1 and item.start_frame % 8:
            raise ValueError(f"conditions[{index}]: a video after frame 0 must start at a multiple of 8, "
                             f"not {item.start_frame}")
        default_crf = 0 if item.guide else crf
        media = prepare_media(item.media[:frames], width=width, height=height, padding=padding,
                              crf=default_crf if item.crf is None else int(item.crf), blur=not item.guide)
        (guides if item.guide else prepared).append((media, item.start_frame, float(item.strength)))
    return prepared, guides


def sample_video(checkpoint: LTXCheckpoint, *, context: torch.Tensor, context_mask: torch.Tensor,
                 negative_context: torch.Tensor, negative_context_mask: torch.Tensor, width: int, height: int,
                 num_frames: int, frame_rate: float, seed: int, recipe: Union[str, Mapping[str, Any]] = "0.9.7-dev",
                 steps: Optional[int] = None, conditions: Sequence[Condition] = (), upsampler=None,
                 callback: Optional[Callback] = None, cancel: Optional[Callable[[], None]] = None,
                 rng: str = "default", device: Optional[torch.device] = None, on_model: Optional[ModelHook] = None,
                 **overrides) -> VideoLatents:
    """Run the recipe's passes and return the final latents (see `generate` for the arguments).

    `device` is where the computation runs (default: where the transformer's weights are); `on_model(name)` is
    called before the transformer, the VAE or the upsampler is used, so a host can load it there first.
    """
    _validate(width, height, num_frames, frame_rate, conditions)
    settings = _checked_settings(checkpoint, recipe, overrides, steps, upsampler)
    multi_scale = settings["pipeline_type"] == "multi-scale"
    channels = checkpoint.transformer.config.get("in_channels", 128)
    shapes = pass_shapes(settings, width=width, height=height, num_frames=num_frames, channels=channels)
    check_recipe(settings, len(checkpoint.transformer.transformer_blocks))
    _, padding = padding_for(height, width)
    device = torch.device(device) if device is not None else next(checkpoint.transformer.parameters()).device
    dtype = checkpoint.transformer.compute_dtype
    prompts = _prompts(context, context_mask, negative_context, negative_context_mask, device, dtype)
    media_items, guide_items = _prepare_conditions(conditions, width, height, num_frames, padding, settings["crf"])
    randomness = Randomness(seed, device, mode=rng)
    runner = PassRunner(checkpoint, prompts, settings, frame_rate, randomness, device, callback=callback,
                        cancel=cancel, on_model=on_model)
    with torch.no_grad():
        if multi_scale:
            first_plan, second_plan = runner.plan([(settings["first_pass"], shapes[0]),
                                                   (settings["second_pass"], shapes[1])])
            first = runner.run_pass(first_plan, shapes[0], media_items, guide_items=guide_items)
            upsampled = runner.upsample(upsampler, first, settings["adain_factor"])
            latents = runner.run_pass(second_plan, shapes[1], media_items, init_latents=upsampled,
                                      guide_items=guide_items)
        else:
            (plan,) = runner.plan([(settings, shapes[0])])
            latents = runner.run_pass(plan, shapes[0], media_items, guide_items=guide_items)
    noise_scale = settings["decode_noise_scale"]
    return VideoLatents(latents=latents, width=width, height=height, num_frames=num_frames, frame_rate=frame_rate,
                        padding=padding, decode_timestep=float(settings["decode_timestep"]),
                        decode_noise_scale=float(settings["decode_timestep"] if noise_scale is None else noise_scale),
                        tone_map_compression_ratio=float(settings["tone_map_compression_ratio"]), seed=seed, rng=rng)


def decode_video(vae, video: VideoLatents, *, cancel: Optional[Callable[[], None]] = None,
                 chunk_frames: Optional[int] = None, device: Optional[torch.device] = None,
                 progress: Optional[Callable[[int, int], None]] = None) -> torch.Tensor:
    """Decode sampled latents to frames `[num_frames, height, width, 3]` float in [0, 1] on the CPU.

    Adds the recipe's decode noise (from a generator seeded by the video's seed, or the global RNG in reference
    mode), decodes in chunks of latent frames (`progress(done, total)` in latent frames and `cancel()` run after
    each), resizes to the padded size when the last pass ran larger (multi-scale), and crops the padding and extra
    frames. `iter_decode_video` gives the same frames chunk by chunk.
    """
    chunks = list(iter_decode_video(vae, video, cancel=cancel, chunk_frames=chunk_frames, device=device,
                                    progress=progress))
    return torch.cat(chunks) if len(chunks) > 1 else chunks[0]


def generate(checkpoint: LTXCheckpoint, *, context: torch.Tensor, context_mask: torch.Tensor,
             negative_context: torch.Tensor, negative_context_mask: torch.Tensor, width: int, height: int,
             num_frames: int, frame_rate: float, seed: int, recipe: Union[str, Mapping[str, Any]] = "0.9.7-dev",
             steps: Optional[int] = None, conditions: Sequence[Condition] = (), upsampler=None,
             callback: Optional[Callback] = None, cancel: Optional[Callable[[], None]] = None,
             rng: str = "default", **overrides) -> torch.Tensor:
    """Generate a video; returns frames `[num_frames, height, width, 3]` float in [0, 1].

    `context` / `negative_context` are T5 outputs `[1, L, 4096]` with 0/1 masks `[1, L]` (truncated to 256).
    `recipe` is a recipe name or a dict shaped like the official recipe files; `overrides` replace its fields.
    `steps` sets the number of steps of every pass (each keeps its σ window). `conditions` are
    `Condition(media, start_frame, strength)`. `callback(step, total, latents)` runs after every step and
    `cancel()` before every step and after every decode chunk (it raises to stop).
    `rng="reference"` draws every random number from the sources the official pipeline uses, in its order.
    """
    video = sample_video(checkpoint, context=context, context_mask=context_mask, negative_context=negative_context,
                         negative_context_mask=negative_context_mask, width=width, height=height,
                         num_frames=num_frames, frame_rate=frame_rate, seed=seed, recipe=recipe, steps=steps,
                         conditions=conditions, upsampler=upsampler, callback=callback, cancel=cancel, rng=rng,
                         **overrides)
    return decode_video(checkpoint.vae, video, cancel=cancel)


def pass_shapes(recipe: Mapping[str, Any], *, width: int, height: int, num_frames: int,
                channels: int = 128) -> list[tuple[int, int, int, int, int]]:
    """Latent shape `[1, C, F, H, W]` of each pass of a resolved recipe for the requested video.

    A multi-scale first pass runs at the padded size × `downscale_factor` (floored to multiples of 32) and the
    second at twice that; a base recipe at the padded size.
    """
    (padded_h, padded_w), _ = padding_for(height, width)
    latent_frames = (padded_frame_count(num_frames) - 1) // 8 + 1
    if recipe["pipeline_type"] != "multi-scale":
        return [(1, channels, latent_frames, padded_h // LATENT_SCALE, padded_w // LATENT_SCALE)]
    factor = recipe["downscale_factor"]
    first_w, first_h = int(padded_w * factor), int(padded_h * factor)
    first_w, first_h = first_w - first_w % LATENT_SCALE, first_h - first_h % LATENT_SCALE
    if first_w < LATENT_SCALE or first_h < LATENT_SCALE:
        raise ValueError(f"{width}×{height} is too small for a multi-scale recipe (the first pass would be "
                         f"{first_w}×{first_h}); use at least {LATENT_SCALE * 2}×{LATENT_SCALE * 2}")
    first = (1, channels, latent_frames, first_h // LATENT_SCALE, first_w // LATENT_SCALE)
    return [first, (1, channels, latent_frames, 2 * first[3], 2 * first[4])]


def _checked_settings(checkpoint, recipe: Union[str, Mapping[str, Any]], overrides: Mapping[str, Any],
                      steps: Optional[int], upsampler) -> dict:
    """The resolved recipe, refused up front when the checkpoint or the upsampler does not fit it (the model's
    blocks are checked by `check_recipe` once the sizes are known to fit)."""
    settings = resolve_recipe(recipe, overrides)
    if checkpoint.transformer is None or checkpoint.vae is None:
        raise ValueError("sampling needs a checkpoint with both a transformer and a VAE")
    if steps is not None:
        settings = _apply_steps(settings, steps)
    if settings["pipeline_type"] == "multi-scale" and upsampler is None:
        raise ValueError("this recipe is multi-scale and needs the latent upsampler "
                         "(ltxv-spatial-upscaler-0.9.7.safetensors)")
    return settings


def _apply_steps(settings: dict, steps: int) -> dict:
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
