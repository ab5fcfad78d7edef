"""The passes of a generation: planning σ schedules and guidance, and running one denoising pass.

A `PassRunner` holds what the passes of one generation share (models, prompts, recipe, randomness, hooks); the
public entry points (`pipeline.sample_video`, `windows.sample_long_video`) drive it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import torch

from ..acceleration.step_cache import DEFAULT_MAX_REUSE, StepCache
from ..loading.checkpoint import LTXCheckpoint
from ..models.grid import PIXELS_PER_LATENT
from ..non_finite import check_finite
from ..randomness import Randomness
from .condition_media import resize_media
from .conditioning import apply_conditions, unpatchify
from .denoise import PassSettings, Prompts, denoise
from .guidance import resolve_guidance
from .guides import append_guides
from .schedules import make_timesteps

logger = logging.getLogger(__name__)

# callback(step, total, denoised latents [B, C, F, H, W]) after every step of every pass
Callback = Callable[[int, int, torch.Tensor], None]
# on_model(name) before "transformer", "vae" or "upsampler" is used, so a host can load it onto the device
ModelHook = Callable[[str], None]


def adain(latents: torch.Tensor, reference: torch.Tensor, factor: float) -> torch.Tensor:
    """Match each channel's mean and (unbiased) std to the first pass's, then blend by `factor`."""
    ref_std, ref_mean = torch.std_mean(reference, dim=(2, 3, 4), keepdim=True)
    std, mean = torch.std_mean(latents, dim=(2, 3, 4), keepdim=True)
    return torch.lerp(latents, (latents - mean) / std * ref_std + ref_mean, factor)


def _pass_settings(recipe: dict, settings: dict, scheduler_config: dict, latent_shape: tuple, frame_rate: float,
                   allowed: Sequence[float] | None) -> PassSettings:
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


def _device_of(module: torch.nn.Module) -> torch.device:
    return next(module.parameters()).device


class PassRunner:
    """One generation: the state its passes share."""

    def __init__(self, checkpoint: LTXCheckpoint, prompts: Prompts, recipe: dict, frame_rate: float,
                 randomness: Randomness, device: torch.device, *, callback: Callback | None = None,
                 cancel: Callable[[], None] | None = None, on_model: ModelHook | None = None):
        self.transformer, self.vae = checkpoint.transformer, checkpoint.vae
        self.checkpoint, self.prompts, self.recipe = checkpoint, prompts, recipe
        self.frame_rate, self.randomness, self.device = frame_rate, randomness, device
        self.callback, self.cancel = callback, cancel
        self.use = on_model or (lambda name: None)
        self.scheduler_config = _scheduler_config(checkpoint, recipe["sampler"])
        self.dtype = self.transformer.compute_dtype
        self.vae_dtype = next(self.vae.parameters()).dtype
        self.step_offset, self.total_steps = 0, 0
        self.passes_done, self.pass_count = 0, 1
        self.step_caches: list[StepCache] = []

    def plan(self, passes: Sequence[tuple[dict, tuple]]) -> list[PassSettings]:
        allowed = self.checkpoint.config.get("allowed_inference_steps")
        plans = [_pass_settings(self.recipe, s, self.scheduler_config, shape, self.frame_rate, allowed)
                 for s, shape in passes]
        self.total_steps = sum(len(p.timesteps) for p in plans)
        self.pass_count = len(plans)
        return plans

    def encode_items(self, media_items: Sequence[tuple[torch.Tensor, int, float]], height: int, width: int):
        if not media_items:
            return []
        self.use("vae")
        vae_device = _device_of(self.vae)
        encoded = []
        for media, start, strength in media_items:
            resized = resize_media(media, height, width).to(device=vae_device, dtype=self.vae_dtype)
            latents = self.vae.encode(resized, sample=True, generator=self.randomness.vae_generator)
            encoded.append((latents.to(self.device), start, strength))
        return encoded

    def run_pass(self, settings: PassSettings, latent_shape: tuple, media_items, init_latents=None,
                 latent_items: Sequence[tuple[torch.Tensor, int, float]] = (), guide_items=()) -> torch.Tensor:
        """One pass at the size of `latent_shape`; returns normalised latents without extra tokens.

        `latent_items` are conditions already in this pass's latent space (`(latents, start_frame, strength)`,
        e.g. the end of the previous window of a long video); they go before the encoded media items.
        `guide_items` are prepared guides, encoded at this pass's size like the media items.
        """
        batch, channels, frames, height, width = latent_shape
        noise = self.randomness.randn((batch, frames * height * width, channels), self.dtype)
        noise = unpatchify(noise, frames, height, width)
        t0 = settings.timesteps[0]
        latents = noise if init_latents is None else t0 * noise + (1 - t0) * init_latents.to(self.dtype)
        pixel_height, pixel_width = height * PIXELS_PER_LATENT, width * PIXELS_PER_LATENT
        encoded = [*latent_items, *self.encode_items(media_items, pixel_height, pixel_width)]
        causal_fix = self.transformer.causal_temporal_positioning
        conditioned = apply_conditions(latents, encoded, causal_fix=causal_fix, noise=self._item_noise)
        guides = self.encode_items(guide_items, pixel_height, pixel_width)
        conditioned = append_guides(conditioned, guides, causal_fix=causal_fix, noise=self._item_noise)

        def on_step(step: int, total: int, denoised: torch.Tensor) -> None:
            if self.callback is not None:
                self.callback(step, total, unpatchify(conditioned.video_tokens(denoised), frames, height, width))

        self.use("transformer")
        cache = self._step_cache(len(settings.timesteps))
        tokens = denoise(self.transformer, conditioned, self.prompts, settings, randn=self.randomness.randn,
                         global_randn=self.randomness.global_randn_like, callback=on_step, cancel=self.cancel,
                         step_offset=self.step_offset, total_steps=self.total_steps,
                         pass_name=f"pass {self.passes_done + 1} of {self.pass_count}", step_cache=cache)
        if cache is not None:
            self.step_caches.append(cache)
            logger.info("step cache: %d of %d transformer forwards reused their deep blocks",
                        sum(cache.reused.values()), sum(cache.reused.values()) + sum(cache.computed.values()))
        self.step_offset += len(settings.timesteps)
        self.passes_done += 1
        return unpatchify(conditioned.video_tokens(tokens), frames, height, width)

    def _item_noise(self, shape: tuple, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """The noise keyframe and guide tokens start from (blended with their latents by strength)."""
        return self.randomness.randn(shape, dtype)

    def _step_cache(self, num_steps: int) -> StepCache | None:
        """A fresh cache for one pass, or None when the recipe's `step_cache_threshold` is 0 (off)."""
        threshold = float(self.recipe.get("step_cache_threshold", 0.0))
        if threshold == 0:
            return None
        return StepCache(threshold, num_steps, max_reuse=int(self.recipe.get("step_cache_max_reuse",
                                                                             DEFAULT_MAX_REUSE)))

    def upsample(self, upsampler, latents: torch.Tensor, adain_factor: float) -> torch.Tensor:
        """Un-normalise, upsample ×2, re-normalise, and match the first pass's statistics (AdaIN)."""
        self.use("upsampler")
        denormalized = self.vae.denormalize(latents).to(_device_of(upsampler))
        upsampled = self.vae.normalize(upsampler(denormalized).to(latents.device))
        check_finite(upsampled, "the latent upsampler's output, between the passes", upsampler,
                     causes="NaN or infinite weights in the latent upsampler file, or float16 overflow in it",
                     model_name="latent upsampler")
        return adain(upsampled, latents, adain_factor)


