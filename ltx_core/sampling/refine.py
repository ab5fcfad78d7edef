"""Refining given latents: `refine_video`, the official multi-scale second pass started from any sampled video.

The official pipeline refines the spatially upsampled first-pass latents by noising them to the first σ of the
second pass's schedule with the seed's noise (`t0·noise + (1 − t0)·latents`) and running that pass. This does the
same for latents that come from elsewhere, e.g. the temporal upscaler's output (`upsample_video`): the pass is
the recipe's second pass (a single-scale recipe's only pass), run at the latents' own size, and `denoise` caps the
σ it starts from (1: the recipe's own σ window).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from ..decoding import VideoLatents
from .conditioning import Condition
from .denoise import PassSettings
from .passes import Callback, ModelHook, PassRunner
from .preparation import prepare, prepare_conditions
from .recipes import resolve_recipe
from .schedules import T_EPS

_MULTI_SCALE_ONLY = ("first_pass", "second_pass", "downscale_factor", "pipeline_type")


def refining_recipe(recipe: str | Mapping[str, Any], overrides: Mapping[str, Any]) -> dict:
    """The recipe's refining pass as a one-pass recipe: a multi-scale recipe's second pass with its top-level
    settings (decode, tone mapping, noise...), or a single-scale recipe as it is."""
    resolved = resolve_recipe(recipe, overrides)
    if resolved["pipeline_type"] != "multi-scale":
        return resolved
    top = {key: value for key, value in resolved.items() if key not in _MULTI_SCALE_ONLY}
    return resolve_recipe({**top, "pipeline_type": "base", **resolved["second_pass"]}, {})


def capped(plan: PassSettings, denoise: float) -> PassSettings:
    """The pass from the first σ at or below `denoise` (its guidance steps kept with their σ)."""
    keep = [float(t) <= denoise + T_EPS for t in plan.timesteps]
    if not any(keep):
        raise ValueError(f"denoise={denoise} is below every σ of the refining pass (the last is "
                         f"{float(plan.timesteps[-1]):.4f}); raise it")
    return dataclasses.replace(plan, timesteps=plan.timesteps[torch.tensor(keep)],
                               guidance=[g for g, k in zip(plan.guidance, keep) if k])


def refine_video(checkpoint, video: VideoLatents, *, context: torch.Tensor, context_mask: torch.Tensor,
                 negative_context: torch.Tensor, negative_context_mask: torch.Tensor, seed: int,
                 recipe: str | Mapping[str, Any] = "0.9.7-dev", steps: int | None = None, denoise: float = 1.0,
                 conditions: Sequence[Condition] = (), callback: Callback | None = None,
                 cancel: Callable[[], None] | None = None, rng: str = "default", device: torch.device | None = None,
                 on_model: ModelHook | None = None, **overrides) -> VideoLatents:
    """`video` refined by the recipe's refining pass from σ ≤ `denoise` (see the module docstring); the result
    keeps the video's geometry (size, frames, frame rate, padding) and takes the recipe's decode settings."""
    if not 0 < denoise <= 1:
        raise ValueError(f"denoise={denoise!r} is out of range (allowed: above 0 and at most 1)")
    settings = refining_recipe(recipe, overrides)
    prepared = prepare(checkpoint, contexts=[context], context_masks=[context_mask],
                       negative_context=negative_context, negative_context_mask=negative_context_mask,
                       width=video.width, height=video.height, num_frames=video.num_frames,
                       frame_rate=video.frame_rate, seed=seed, recipe=settings, steps=steps, conditions=conditions,
                       upsampler=None, rng=rng, device=device, overrides={})
    shape = tuple(video.latents.shape)
    items = prepare_conditions(conditions, video.width, video.height, video.num_frames, video.padding,
                               prepared.settings["crf"])
    runner = PassRunner(checkpoint, prepared.prompts[0], prepared.settings, video.frame_rate, prepared.randomness,
                        prepared.device, callback=callback, cancel=cancel, on_model=on_model)
    (plan,) = runner.plan([(prepared.settings, shape)])
    plan = capped(plan, float(denoise))
    runner.total_steps = len(plan.timesteps)
    with torch.no_grad():
        latents = runner.run_pass(plan, shape, items.conditions, init_latents=video.latents.to(prepared.device),
                                  guide_items=items.guides)
    decoded = prepared.video_latents(latents, width=video.width, height=video.height, num_frames=video.num_frames,
                                     frame_rate=video.frame_rate, seed=seed, rng=rng)
    return dataclasses.replace(decoded, padding=video.padding)
