"""`generate`: a whole video from prompts in one call (sampling, then decoding)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from .decoding import decode_video
from .loading import LTXCheckpoint
from .sampling import Callback, Condition, sample_video


def generate(checkpoint: LTXCheckpoint, *, context: torch.Tensor, context_mask: torch.Tensor,
             negative_context: torch.Tensor, negative_context_mask: torch.Tensor, width: int, height: int,
             num_frames: int, frame_rate: float, seed: int, recipe: str | Mapping[str, Any] = "0.9.7-dev",
             steps: int | None = None, conditions: Sequence[Condition] = (), upsampler=None,
             callback: Callback | None = None, cancel: Callable[[], None] | None = None,
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
