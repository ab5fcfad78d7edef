"""`generate`: text/image/video to video with the official 0.9.x recipes, as plain torch.

Geometry follows the official `inference.py`: width and height are padded to multiples of 32 and the frame count
to 8k+1 for generation, and the result is cropped back to exactly what was asked for. Multi-scale recipes run a
first pass at about 2/3 of the size, upsample the latents ×2, re-noise and refine them in a second pass, decode,
and resize to the target.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import torch
import torch.nn.functional as F

from .checkpoint import LTXCheckpoint
from .conditioning import Condition, apply_conditions, patchify, unpatchify
from .guidance import resolve_guidance
from .media import padded_frame_count, padding_for, prepare_media, resize_media, trim_frames
from .randomness import Randomness
from .recipes import resolve_recipe
from .sampler import PassSettings, Prompts, denoise
from .schedules import make_timesteps

logger = logging.getLogger(__name__)

LATENT_SCALE = 32
MAX_TEXT_TOKENS = 256
# callback(step, total, denoised latents [B, C, F, H, W]) after every step of every pass
Callback = Callable[[int, int, torch.Tensor], None]


def adain(latents: torch.Tensor, reference: torch.Tensor, factor: float) -> torch.Tensor:
    """Match each channel's mean and (unbiased) std to the first pass's, then blend by `factor`."""
    ref_std, ref_mean = torch.std_mean(reference, dim=(2, 3, 4), keepdim=True)
    std, mean = torch.std_mean(latents, dim=(2, 3, 4), keepdim=True)
    return torch.lerp(latents, (latents - mean) / std * ref_std + ref_mean, factor)


def tone_map(latents: torch.Tensor, compression: float) -> torch.Tensor:
    """Sigmoid compression of large latent values (0 = identity), applied before decoding."""
    if not 0 <= compression <= 1:
        raise ValueError(f"tone_map_compression_ratio={compression} must lie in [0, 1]")
    scale = compression * 0.75
    return latents * (1.0 - 0.8 * scale * torch.sigmoid(4.0 * scale * (latents.abs() - 1.0)))


def _pass_settings(recipe: dict, settings: dict, scheduler_config: dict, latent_shape: tuple, frame_rate: float,
                   allowed: Optional[Sequence[float]]) -> PassSettings:
    timesteps = make_timesteps(scheduler_config, num_steps=settings.get("num_inference_steps"),
                               timesteps=settings.get("timesteps"), latent_shape=latent_shape,
                               skip_initial=settings.get("skip_initial_inference_steps", 0),
                               skip_final=settings.get("skip_final_inference_steps", 0))
    if allowed is not None:
        bad = [round(t, 4) for t in timesteps.tolist() if round(t, 4) not in allowed]
        if bad:
            raise ValueError(f"timesteps {bad} are not allowed by this checkpoint (allowed: {list(allowed)})")
    guidance = resolve_guidance(timesteps, guidance_scale=settings.get("guidance_scale", 4.5),
                                stg_scale=settings.get("stg_scale", 1.0),
                                rescaling_scale=settings.get("rescaling_scale", 0.7),
                                skip_block_list=settings.get("skip_block_list"),
                                guidance_timesteps=settings.get("guidance_timesteps"))
    return PassSettings(timesteps=timesteps, guidance=guidance,
                        cfg_star_rescale=bool(settings.get("cfg_star_rescale", False)),
                        skip_strategy=recipe["stg_mode"], frame_rate=frame_rate,
                        image_cond_noise_scale=float(recipe["image_cond_noise_scale"]),
                        stochastic=bool(recipe["stochastic_sampling"]),
                        batched_guidance=bool(recipe["batched_guidance"]))


def _scheduler_config(checkpoint: LTXCheckpoint, sampler: str) -> dict:
    if sampler == "from_checkpoint":
        return checkpoint.config.get("scheduler") or {"sampler": "LinearQuadratic"}
    if sampler.lower() in ("uniform", "linear-quadratic"):
        return {"sampler": "Uniform" if sampler.lower() == "uniform" else "LinearQuadratic"}
    raise ValueError(f"sampler '{sampler}' is not supported (allowed: from_checkpoint, uniform, linear-quadratic)")


class _Generation:
    """One call of `generate`: the shared state of its passes."""

    def __init__(self, checkpoint: LTXCheckpoint, prompts: Prompts, recipe: dict, frame_rate: float,
                 randomness: Randomness, callback: Optional[Callback], cancel: Optional[Callable[[], None]]):
        self.transformer, self.vae = checkpoint.transformer, checkpoint.vae
        self.checkpoint, self.prompts, self.recipe = checkpoint, prompts, recipe
        self.frame_rate, self.randomness = frame_rate, randomness
        self.callback, self.cancel = callback, cancel
        self.scheduler_config = _scheduler_config(checkpoint, recipe["sampler"])
        self.device = next(self.transformer.parameters()).device
        self.dtype = self.transformer.compute_dtype
        self.vae_dtype = next(self.vae.parameters()).dtype
        self.step_offset, self.total_steps = 0, 0

    def plan(self, passes: Sequence[tuple[dict, tuple]]) -> list[PassSettings]:
        allowed = self.checkpoint.config.get("allowed_inference_steps")
        plans = [_pass_settings(self.recipe, s, self.scheduler_config, shape, self.frame_rate, allowed)
                 for s, shape in passes]
        self.total_steps = sum(len(p.timesteps) for p in plans)
        return plans

    def encode_items(self, media_items: Sequence[tuple[torch.Tensor, int, float]], height: int, width: int):
        encoded = []
        for media, start, strength in media_items:
            resized = resize_media(media, height, width).to(device=self.device, dtype=self.vae_dtype)
            latents = self.vae.encode(resized, sample=True, generator=self.randomness.vae_generator)
            encoded.append((latents, start, strength))
        return encoded

    def run_pass(self, settings: PassSettings, latent_shape: tuple, media_items, init_latents=None) -> torch.Tensor:
        """One pass at the size of `latent_shape`; returns normalised latents without extra tokens."""
        batch, channels, frames, height, width = latent_shape
        noise = self.randomness.randn((batch, frames * height * width, channels), self.dtype)
        noise = unpatchify(noise, frames, height, width)
        t0 = settings.timesteps[0]
        latents = noise if init_latents is None else t0 * noise + (1 - t0) * init_latents.to(self.dtype)
        encoded = self.encode_items(media_items, height * LATENT_SCALE, width * LATENT_SCALE)
        conditioned = apply_conditions(latents, encoded, causal_fix=self.transformer.causal_temporal_positioning,
                                       noise=lambda shape, dtype, device: self.randomness.randn(shape, dtype))

        def on_step(step: int, total: int, denoised: torch.Tensor) -> None:
            if self.callback is not None:
                self.callback(step, total, unpatchify(denoised[:, conditioned.num_extra:], frames, height, width))

        tokens = denoise(self.transformer, conditioned, self.prompts, settings, randn=self.randomness.randn,
                         global_randn=self.randomness.global_randn_like, callback=on_step, cancel=self.cancel,
                         step_offset=self.step_offset, total_steps=self.total_steps)
        self.step_offset += len(settings.timesteps)
        return unpatchify(tokens[:, conditioned.num_extra:], frames, height, width)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Normalised latents → frames `[B, 3, F, H, W]` in [0, 1] with the recipe's decode noise."""
        timestep, noise_scale = self.recipe["decode_timestep"], self.recipe["decode_noise_scale"]
        if noise_scale is None:
            noise_scale = timestep
        if self.vae.decoder.timestep_conditioning and noise_scale:
            noise = self.randomness.global_randn_like(latents)
            scale = torch.tensor([noise_scale] * latents.shape[0], device=latents.device)[:, None, None, None, None]
            latents = latents * (1 - scale) + noise * scale
        latents = tone_map(latents, self.recipe["tone_map_compression_ratio"])
        pixels = self.vae.decode(latents, timestep=torch.tensor([timestep] * latents.shape[0]), noise_scale=0.0,
                                 dtype=self.vae_dtype, cancel=self.cancel)
        return (pixels / 2 + 0.5).clamp(0, 1)


def _validate(width: int, height: int, num_frames: int, frame_rate: float, conditions: Sequence[Condition]) -> None:
    for name, value, low, high in (("width", width, 32, 8192), ("height", height, 32, 8192),
                                   ("num_frames", num_frames, 1, 2049)):
        if not low <= value <= high:
            raise ValueError(f"{name}={value} is out of range (allowed: {low}–{high})")
    if frame_rate <= 0:
        raise ValueError(f"frame_rate={frame_rate} must be positive")
    for index, item in enumerate(conditions):
        if not 0 <= item.start_frame < num_frames:
            raise ValueError(f"conditions[{index}].start_frame={item.start_frame} must lie in 0–{num_frames - 1}")
        if not 0.0 <= item.strength <= 1.0:
            raise ValueError(f"conditions[{index}].strength={item.strength} must lie in 0–1")


def _prepare_conditions(conditions: Sequence[Condition], width: int, height: int, num_frames: int,
                        padding: tuple[int, int, int, int], crf: int) -> list[tuple[torch.Tensor, int, float]]:
    prepared = []
    for index, item in enumerate(conditions):
        frames = trim_frames(item.media.shape[0], item.start_frame, num_frames)
        if frames < 1:
            raise ValueError(f"conditions[{index}]: no frame of the media fits after frame {item.start_frame}")
        if frames < item.media.shape[0]:
            logger.warning("conditions[%d]: using %d of %d frames (8k+1 frames that fit the video)", index, frames,
                           item.media.shape[0])
        if frames > 1 and item.start_frame % 8:
            raise ValueError(f"conditions[{index}]: a video after frame 0 must start at a multiple of 8, "
                             f"not {item.start_frame}")
        media = prepare_media(item.media[:frames], width=width, height=height, padding=padding, crf=crf)
        prepared.append((media, item.start_frame, float(item.strength)))
    return prepared


def generate(checkpoint: LTXCheckpoint, *, context: torch.Tensor, context_mask: torch.Tensor,
             negative_context: torch.Tensor, negative_context_mask: torch.Tensor, width: int, height: int,
             num_frames: int, frame_rate: float, seed: int, recipe: Union[str, Mapping[str, Any]] = "0.9.7-dev",
             steps: Optional[int] = None, conditions: Sequence[Condition] = (), upsampler=None,
             callback: Optional[Callback] = None, cancel: Optional[Callable[[], None]] = None,
             rng: str = "default", **overrides) -> torch.Tensor:
    """Generate a video; returns frames `[num_frames, height, width, 3]` float in [0, 1].

    `context` / `negative_context` are T5 outputs `[1, L, 4096]` with 0/1 masks `[1, L]` (L ≤ 256).
    `recipe` is a recipe name or a dict shaped like the official recipe files; `overrides` replace its fields.
    `steps` sets the number of steps (first pass; the second pass keeps its re-noise point).
    `rng="reference"` draws every random number from the sources the official pipeline uses, in its order.
    """
    _validate(width, height, num_frames, frame_rate, conditions)
    if checkpoint.transformer is None or checkpoint.vae is None:
        raise ValueError("generate needs a checkpoint with both a transformer and a VAE")
    settings = resolve_recipe(recipe, overrides)
    if steps is not None:
        settings = _apply_steps(settings, steps)
    multi_scale = settings["pipeline_type"] == "multi-scale"
    if multi_scale and upsampler is None:
        raise ValueError("this recipe is multi-scale and needs the latent upsampler "
                         "(ltxv-spatial-upscaler-0.9.7.safetensors)")
    (padded_h, padded_w), padding = padding_for(height, width)
    padded_frames = padded_frame_count(num_frames)
    device = next(checkpoint.transformer.parameters()).device
    dtype = checkpoint.transformer.compute_dtype
    prompts = Prompts(*(t[:, :MAX_TEXT_TOKENS].to(device) for t in (context, context_mask, negative_context,
                                                                      negative_context_mask)))
    prompts.context, prompts.negative_context = prompts.context.to(dtype), prompts.negative_context.to(dtype)
    media_items = _prepare_conditions(conditions, width, height, num_frames, padding, settings["crf"])
    randomness = Randomness(seed, device, mode=rng)
    run = _Generation(checkpoint, prompts, settings, frame_rate, randomness, callback, cancel)
    latent_frames = (padded_frames - 1) // 8 + 1
    channels = checkpoint.transformer.config.get("in_channels", 128)

    with torch.no_grad():
        if multi_scale:
            frames = _multi_scale(run, settings, upsampler, media_items, channels, latent_frames, padded_h, padded_w)
        else:
            shape = (1, channels, latent_frames, padded_h // LATENT_SCALE, padded_w // LATENT_SCALE)
            (plan,) = run.plan([(settings, shape)])
            frames = run.decode(run.run_pass(plan, shape, media_items))
    left, right, top, bottom = padding
    frames = frames[0, :, :num_frames, top:padded_h - bottom, left:padded_w - right]
    return frames.permute(1, 2, 3, 0).float().cpu()


def _multi_scale(run: _Generation, settings: dict, upsampler, media_items, channels: int, latent_frames: int,
                 height: int, width: int) -> torch.Tensor:
    factor = settings["downscale_factor"]
    first_w, first_h = int(width * factor), int(height * factor)
    first_w, first_h = first_w - first_w % LATENT_SCALE, first_h - first_h % LATENT_SCALE
    if first_w < LATENT_SCALE or first_h < LATENT_SCALE:
        raise ValueError(f"{width}×{height} is too small for a multi-scale recipe (the first pass would be "
                         f"{first_w}×{first_h}); use at least {LATENT_SCALE * 2}×{LATENT_SCALE * 2}")
    first_shape = (1, channels, latent_frames, first_h // LATENT_SCALE, first_w // LATENT_SCALE)
    second_shape = (1, channels, latent_frames, 2 * first_h // LATENT_SCALE, 2 * first_w // LATENT_SCALE)
    first_plan, second_plan = run.plan([(settings["first_pass"], first_shape), (settings["second_pass"], second_shape)])
    first = run.run_pass(first_plan, first_shape, media_items)
    upsampled = run.vae.normalize(upsampler(run.vae.denormalize(first)))
    upsampled = adain(upsampled, first, settings["adain_factor"])
    second = run.run_pass(second_plan, second_shape, media_items, init_latents=upsampled)
    frames = run.decode(second)
    num = frames.shape[2]
    flat = frames.transpose(1, 2).flatten(0, 1)
    flat = F.interpolate(flat, size=(height, width), mode="bilinear", align_corners=False)
    return flat.unflatten(0, (frames.shape[0], num)).transpose(1, 2)


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
