"""Text/image/video to video in one window with the official 0.9.x recipes: `sample_video`.

Multi-scale recipes run a first pass at about 2/3 of the size, upsample the latents ×2, re-noise and refine them in
a second pass; decoding (`ltx_core.decoding`) then resizes to the target and crops.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from ..decoding import VideoLatents
from ..loading.checkpoint import LTXCheckpoint
from .conditioning import Condition
from .passes import Callback, ModelHook, PassRunner
from .preparation import prepare


def sample_video(checkpoint: LTXCheckpoint, *, context: torch.Tensor, context_mask: torch.Tensor,
                 negative_context: torch.Tensor, negative_context_mask: torch.Tensor, width: int, height: int,
                 num_frames: int, frame_rate: float, seed: int, recipe: str | Mapping[str, Any] = "0.9.7-dev",
                 steps: int | None = None, conditions: Sequence[Condition] = (), upsampler=None,
                 callback: Callback | None = None, cancel: Callable[[], None] | None = None,
                 rng: str = "default", device: torch.device | None = None, on_model: ModelHook | None = None,
                 **overrides) -> VideoLatents:
    """Run the recipe's passes and return the final latents (see `generate` for the arguments).

    `device` is where the computation runs (default: where the transformer's weights are); `on_model(name)` is
    called before the transformer, the VAE or the upsampler is used, so a host can load it there first.
    """
    prepared = prepare(checkpoint, contexts=[context], context_masks=[context_mask],
                       negative_context=negative_context, negative_context_mask=negative_context_mask, width=width,
                       height=height, num_frames=num_frames, frame_rate=frame_rate, seed=seed, recipe=recipe,
                       steps=steps, conditions=conditions, upsampler=upsampler, rng=rng, device=device,
                       overrides=overrides)
    settings, shapes = prepared.settings, prepared.shapes[0]
    media_items = prepared.media_items(conditions, width, height, num_frames)
    runner = PassRunner(checkpoint, prepared.prompts[0], settings, frame_rate, prepared.randomness,
                        prepared.device, callback=callback, cancel=cancel, on_model=on_model)
    with torch.no_grad():
        if prepared.multi_scale:
            first_plan, second_plan = runner.plan([(settings["first_pass"], shapes[0]),
                                                   (settings["second_pass"], shapes[1])])
            first = runner.run_pass(first_plan, shapes[0], media_items.conditions, guide_items=media_items.guides)
            upsampled = runner.upsample(upsampler, first, settings["adain_factor"])
            latents = runner.run_pass(second_plan, shapes[1], media_items.conditions, init_latents=upsampled,
                                      guide_items=media_items.guides)
        else:
            (plan,) = runner.plan([(settings, shapes[0])])
            latents = runner.run_pass(plan, shapes[0], media_items.conditions, guide_items=media_items.guides)
    return prepared.video_latents(latents, width=width, height=height, num_frames=num_frames, frame_rate=frame_rate,
                                  seed=seed, rng=rng)
