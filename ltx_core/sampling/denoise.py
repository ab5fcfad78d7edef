"""The denoising loop of one pass: guidance branches, per-token σ, conditioning noise and Euler steps."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..acceleration.step_cache import StepCache
from ..models.positions import pixel_to_positions
from ..models.transformer import SkipLayers, Transformer3D
from ..non_finite import INPUT_CAUSES, check_finite
from .conditioning import ConditionedLatents
from .guidance import GuidanceStep, combine
from .schedules import T_EPS, euler_step

# callback(step_index, total_steps, denoised_tokens [B, N, C]) after every step
StepCallback = Callable[[int, int, torch.Tensor], None]


@dataclass
class Prompts:
    """T5 outputs (truncated to the reference's 256 tokens) and their 0/1 masks."""

    context: torch.Tensor
    mask: torch.Tensor
    negative_context: torch.Tensor
    negative_mask: torch.Tensor


@dataclass
class PassSettings:
    timesteps: torch.Tensor
    guidance: list[GuidanceStep]
    cfg_star_rescale: bool
    skip_strategy: str
    frame_rate: float
    image_cond_noise_scale: float
    stochastic: bool
    batched_guidance: bool


def _predict(transformer: Transformer3D, tokens: torch.Tensor, positions: torch.Tensor, sigma: torch.Tensor,
             prompts: Prompts, step: GuidanceStep, settings: PassSettings,
             cache: StepCache | None = None) -> dict[str, torch.Tensor]:
    """Run the branches this step needs: as one batch (fast) or one by one (less memory); same result."""
    branches = step.branches
    contexts = {"uncond": (prompts.negative_context, prompts.negative_mask)}
    contexts["cond"] = contexts["perturbed"] = (prompts.context, prompts.mask)

    def run(names: tuple[str, ...]) -> torch.Tensor:
        count = len(names)
        perturbed = torch.tensor([n == "perturbed" for n in names]).repeat_interleave(tokens.shape[0])
        skip = SkipLayers(step.skip_blocks, perturbed) if "perturbed" in names and step.skip_blocks else None
        block_cache = None if cache is None else cache.for_branches(names, tokens.shape[0])
        return transformer(tokens.repeat(count, 1, 1), positions=positions.repeat(count, 1, 1),
                           context=torch.cat([contexts[n][0] for n in names]),
                           context_mask=torch.cat([contexts[n][1] for n in names]),
                           timestep=sigma.repeat(count, 1), skip_layers=skip, skip_strategy=settings.skip_strategy,
                           block_cache=block_cache)

    if settings.batched_guidance:
        return dict(zip(branches, run(branches).float().chunk(len(branches))))
    return {name: run((name,)).float() for name in branches}


def denoise(transformer: Transformer3D, latents: ConditionedLatents, prompts: Prompts, settings: PassSettings, *,
            randn: Callable[[tuple, torch.dtype], torch.Tensor],
            global_randn: Callable[[torch.Tensor], torch.Tensor],
            callback: StepCallback | None = None, cancel: Callable[[], None] | None = None,
            step_offset: int = 0, total_steps: int | None = None, pass_name: str = "the pass",
            step_cache: StepCache | None = None) -> torch.Tensor:
    """Denoise `latents.tokens` along `settings.timesteps`; returns the final tokens (extra tokens included).

    `randn(shape, dtype)` draws from the sampling generator (conditioning noise); `global_randn(like)` draws the
    stochastic-sampling noise (the reference's global RNG). Raises `NonFiniteLatentsError` at the first step whose
    latents are not finite (`pass_name` says in which pass). `step_cache` (one per pass) lets steps reuse the deep
    blocks' residual (see `acceleration.step_cache`).
    """
    tokens, mask = latents.tokens, latents.mask
    check_finite(tokens, f"the start of {pass_name}, before its first step", causes=INPUT_CAUSES)
    init_tokens = tokens.clone()
    positions = pixel_to_positions(latents.pixel_coords, settings.frame_rate)
    batch = tokens.shape[0]
    total = total_steps or len(settings.timesteps)
    for index, (t, step) in enumerate(zip(settings.timesteps, settings.guidance)):
        if cancel is not None:
            cancel()
        if mask is not None and settings.image_cond_noise_scale > 0:
            noise = randn(tuple(tokens.shape), tokens.dtype)
            hard = (mask > 1.0 - T_EPS).unsqueeze(-1)
            if latents.num_guide:  # guides stay clean: no conditioning noise
                hard[:, hard.shape[1] - latents.num_guide:] = False
            tokens = torch.where(hard, init_tokens + settings.image_cond_noise_scale * noise * t ** 2, tokens)
        sigma = t.expand(batch).unsqueeze(-1).to(tokens.device)
        if mask is not None:
            sigma = torch.min(sigma, 1.0 - mask)
        if step_cache is not None:
            step_cache.at_step(index)
        predictions = _predict(transformer, tokens, positions, sigma, prompts, step, settings, step_cache)
        velocity = combine(predictions, step, settings.cfg_star_rescale)
        noise = global_randn(tokens) if settings.stochastic else None
        stepped = euler_step(tokens, velocity, sigma, settings.timesteps, noise)
        if mask is not None:
            stepped = torch.where((t - T_EPS < (1.0 - mask)).unsqueeze(-1), stepped, tokens)
        check_finite(stepped, f"step {step_offset + index + 1} of {total} ({pass_name}, σ={float(t):.4f})",
                     transformer)
        if callback is not None:
            callback(step_offset + index, total, tokens - sigma.unsqueeze(-1) * velocity)
        tokens = stepped
    return tokens
