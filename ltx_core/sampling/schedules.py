"""σ schedules and the rectified-flow Euler step of the official `RectifiedFlowScheduler`.

σ runs from 1 (noise) to 0 (clean); the scheduled list holds the σ at which each step evaluates the model,
and every run ends at σ = 0. Steps are per token: conditioning tokens start at a lower σ and only move once the
global σ reaches theirs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

T_EPS = 1e-6


def linear_quadratic(num_steps: int, threshold_noise: float = 0.025, linear_steps: int | None = None
                     ) -> torch.Tensor:
    """LTX's default: σ falls linearly to `1 - threshold_noise` over the first half, then quadratically."""
    if num_steps == 1:
        return torch.tensor([1.0])
    linear_steps = num_steps // 2 if linear_steps is None else linear_steps
    linear = [i * threshold_noise / linear_steps for i in range(linear_steps)]
    step_diff = linear_steps - threshold_noise * num_steps
    quadratic_steps = num_steps - linear_steps
    quadratic_coef = step_diff / (linear_steps * quadratic_steps ** 2)
    linear_coef = threshold_noise / linear_steps - 2 * step_diff / quadratic_steps ** 2
    const = quadratic_coef * linear_steps ** 2
    quadratic = [quadratic_coef * i ** 2 + linear_coef * i + const for i in range(linear_steps, num_steps)]
    return torch.tensor([1.0 - x for x in linear + quadratic])


def uniform(num_steps: int) -> torch.Tensor:
    return torch.linspace(1, 1 / num_steps, num_steps)


def _time_shift(mu: float, sigma: float, t: torch.Tensor) -> torch.Tensor:
    return math.exp(mu) / (math.exp(mu) + (1 / t - 1) ** sigma)


def sd3_shift(timesteps: torch.Tensor, num_tokens: int, terminal: float | None = None) -> torch.Tensor:
    """Resolution-dependent shift (SD3 / Flux): more tokens spend longer at high σ; optional terminal stretch."""
    slope = (2.05 - 0.95) / (4096 - 1024)
    mu = slope * num_tokens + (0.95 - slope * 1024)
    shifted = _time_shift(mu, 1, timesteps)
    if terminal is None:
        return shifted
    if not 0 < terminal < 1:
        raise ValueError(f"target_shift_terminal={terminal} must lie strictly between 0 and 1")
    one_minus = 1 - shifted
    return 1 - one_minus / (one_minus[-1] / (1 - terminal))


def simple_diffusion_shift(timesteps: torch.Tensor, num_tokens: int, base_resolution: int = 32 * 32) -> torch.Tensor:
    snr = (timesteps / (1 - timesteps)) ** 2
    return torch.sigmoid(0.5 * (torch.log(snr) + 2 * math.log(num_tokens / base_resolution)))


def make_timesteps(scheduler_config: dict, *, num_steps: int | None = None,
                   timesteps: Sequence[float] | None = None, latent_shape: Sequence[int] = (),
                   skip_initial: int = 0, skip_final: int = 0) -> torch.Tensor:
    """The σ list of one pass, as `retrieve_timesteps` builds it from the checkpoint's scheduler config.

    An explicit `timesteps` list (distilled recipes) is used as is; otherwise `num_steps` of the configured
    sampler are shifted for the token count and then trimmed by the skip counts.
    """
    if timesteps is not None:
        return torch.tensor([float(t) for t in timesteps], dtype=torch.float32)
    if num_steps is None or num_steps < 1:
        raise ValueError(f"num_inference_steps={num_steps} must be at least 1")
    steps = min(int(scheduler_config.get("num_train_timesteps", 1000)), num_steps)
    sampler = scheduler_config.get("sampler") or "Uniform"
    if sampler == "LinearQuadratic":
        sigmas = linear_quadratic(steps)
    elif sampler == "Uniform":
        sigmas = uniform(steps)
    elif sampler == "Constant":
        shift = scheduler_config.get("shift")
        if shift is None:
            raise ValueError("scheduler config: sampler 'Constant' needs a 'shift' value")
        sigmas = _time_shift(shift, 1, uniform(steps))
    else:
        raise ValueError(f"scheduler config: sampler '{sampler}' is not supported "
                         "(allowed: LinearQuadratic, Uniform, Constant)")
    num_tokens = math.prod(latent_shape[2:]) if len(latent_shape) >= 3 else 0
    shifting = scheduler_config.get("shifting")
    if shifting == "SD3":
        sigmas = sd3_shift(sigmas, num_tokens, scheduler_config.get("target_shift_terminal"))
    elif shifting == "SimpleDiffusion":
        sigmas = simple_diffusion_shift(sigmas, num_tokens, scheduler_config.get("base_resolution") or 1024)
    elif shifting is not None:
        raise ValueError(f"scheduler config: shifting '{shifting}' is not supported (allowed: SD3, SimpleDiffusion)")
    if skip_initial < 0 or skip_final < 0 or skip_initial + skip_final >= len(sigmas):
        raise ValueError(f"skip_initial_inference_steps={skip_initial} and skip_final_inference_steps={skip_final} "
                         f"must be non-negative and leave at least one of the {len(sigmas)} steps")
    return sigmas[skip_initial:len(sigmas) - skip_final]


def euler_step(latents: torch.Tensor, velocity: torch.Tensor, sigma: torch.Tensor, timesteps: torch.Tensor,
               noise: torch.Tensor | None = None) -> torch.Tensor:
    """One step from per-token σ `[B, N]` to the next lower scheduled σ (or 0).

    With `noise` (stochastic sampling) the step re-noises the predicted clean latents instead of moving along
    the velocity.
    """
    padded = torch.cat([timesteps.to(sigma.device), torch.zeros(1, device=sigma.device)])
    lower = padded[:, None, None] < sigma[None] - T_EPS
    next_sigma = (lower * padded[:, None, None]).max(dim=0).values
    dt = (sigma - next_sigma)[..., None]
    if noise is None:
        return latents - dt * velocity
    clean = latents - sigma[..., None] * velocity
    target = sigma[..., None] - dt
    return (1 - target) * clean + target * noise
