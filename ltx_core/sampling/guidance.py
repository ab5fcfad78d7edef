"""Per-step guidance of the 0.9.7 recipes: CFG (with CFG-star), STG and STG rescaling.

Every schedule value may be a scalar or a list indexed through `guidance_timesteps`: step i uses the first entry
whose timestep is ≤ σ_i (the last entry if none is). A step runs up to three predictions: unconditional (negative
prompt), conditional, and conditional with perturbed blocks; the flags decide which.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

Schedule = float | Sequence[float]


@dataclass(frozen=True)
class GuidanceStep:
    """What one denoising step does."""

    cfg_scale: float
    stg_scale: float
    rescale: float
    skip_blocks: tuple[int, ...]

    @property
    def use_cfg(self) -> bool:
        return self.cfg_scale > 1.0

    @property
    def use_stg(self) -> bool:
        return self.stg_scale > 0

    @property
    def branches(self) -> tuple[str, ...]:
        """Predictions this step needs, in the reference's batch order."""
        return (("uncond",) if self.use_cfg else ()) + ("cond",) + (("perturbed",) if self.use_stg else ())


def _mapping(timesteps: torch.Tensor, guidance_timesteps: Sequence[float] | None) -> list[int]:
    if not guidance_timesteps:
        return []
    mapping = []
    for t in timesteps:
        matches = [i for i, value in enumerate(guidance_timesteps) if value <= t]
        mapping.append(matches[0] if matches else len(guidance_timesteps) - 1)
    return mapping


def _per_step(value, mapping: list[int], count: int, name: str) -> list:
    if not isinstance(value, (list, tuple)):
        return [value] * count
    if not mapping:
        raise ValueError(f"{name} is a list, so guidance_timesteps must be given to index it")
    if max(mapping) >= len(value):
        raise ValueError(f"{name} has {len(value)} entries but guidance_timesteps has {max(mapping) + 1}")
    return [value[m] for m in mapping]


def resolve_guidance(timesteps: torch.Tensor, *, guidance_scale: Schedule, stg_scale: Schedule,
                     rescaling_scale: Schedule, skip_block_list: Sequence | None = None,
                     guidance_timesteps: Sequence[float] | None = None) -> list[GuidanceStep]:
    """Resolve the recipe's schedules to one `GuidanceStep` per σ."""
    mapping = _mapping(timesteps, guidance_timesteps)
    count = len(timesteps)
    cfg = _per_step(guidance_scale, mapping, count, "guidance_scale")
    stg = _per_step(stg_scale, mapping, count, "stg_scale")
    rescale = _per_step(rescaling_scale, mapping, count, "rescaling_scale")
    if skip_block_list is None:
        blocks: list = [()] * count
    elif len(skip_block_list) == 0 or not isinstance(skip_block_list[0], (list, tuple)):
        blocks = [tuple(skip_block_list)] * count
    else:
        blocks = [tuple(b) for b in _per_step(list(skip_block_list), mapping, count, "skip_block_list")]
    return [GuidanceStep(float(c), float(s), float(r), b) for c, s, r, b in zip(cfg, stg, rescale, blocks)]


def combine(predictions: dict[str, torch.Tensor], step: GuidanceStep, cfg_star_rescale: bool) -> torch.Tensor:
    """Mix the branch predictions `[B, N, C]` into one velocity, in the reference's order of operations."""
    cond = predictions["cond"]
    batch = cond.shape[0]
    velocity = cond
    if step.use_cfg:
        uncond = predictions["uncond"]
        if cfg_star_rescale:
            positive, negative = cond.reshape(batch, -1), uncond.reshape(batch, -1)
            alpha = (positive * negative).sum(dim=1, keepdim=True) / ((negative ** 2).sum(dim=1, keepdim=True) + 1e-8)
            uncond = alpha.view(batch, 1, 1) * uncond
        velocity = uncond + step.cfg_scale * (cond - uncond)
    if step.use_stg:
        velocity = velocity + step.stg_scale * (cond - predictions["perturbed"])
        if step.rescale != 1.0:
            factor = cond.reshape(batch, -1).std(dim=1, keepdim=True) / velocity.reshape(batch, -1).std(dim=1,
                                                                                                      keepdim=True)
            factor = step.rescale * factor + (1 - step.rescale)
            velocity = velocity * factor.view(batch, 1, 1)
    return velocity
