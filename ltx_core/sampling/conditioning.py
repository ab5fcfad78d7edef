"""Conditioning items: images and videos pinned to frames of the generated video with a strength.

Frame-0 items are written into the initial latents in place. A single image at a later frame becomes extra
"keyframe" tokens with their own positions; a later video puts its latent frames in place and its first two latent
frames (the causal prefix, which looks like a first frame) as extra tokens. Each token carries a conditioning
strength: its σ never exceeds `1 - strength`, so strength 1 tokens stay clean. Guides (IC-LoRA control
videos) are appended after the video's tokens (`guides.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..models.grid import FRAMES_PER_LATENT
from ..models.positions import latent_coordinates, latent_to_pixel_coordinates

PREFIX_LATENT_FRAMES = 2


@dataclass
class Condition:
    """`media` `[F, H, W, 3]` in [0, 1] placed at pixel frame `start_frame` with `strength` in [0, 1].

    `crf` is the H.264 quality of the compression round trip the media goes through (0 = none); None takes the
    recipe's (29 in the official recipes) for a condition, none for a guide. `guide=True` makes it a guide for an
    IC-LoRA: given to the model in context (extra tokens at the frames it guides), never written into the video.
    """

    media: torch.Tensor
    start_frame: int = 0
    strength: float = 1.0
    crf: int | None = None
    guide: bool = False


@dataclass
class ConditionedLatents:
    """Patchified tokens `[B, N, C]` (keyframe tokens first, guide tokens last), their pixel coordinates and
    strengths."""

    tokens: torch.Tensor
    pixel_coords: torch.Tensor
    mask: torch.Tensor | None
    num_extra: int
    num_guide: int = 0

    def video_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """The video's own tokens of a `[B, N, C]` sequence laid out like these (keyframe and guide tokens cut)."""
        return tokens[:, self.num_extra:tokens.shape[1] - self.num_guide]


def patchify(latents: torch.Tensor) -> torch.Tensor:
    """`[B, C, F, H, W]` → `[B, F·H·W, C]` in (f, h, w) raster order."""
    return latents.flatten(2).transpose(1, 2)


def unpatchify(tokens: torch.Tensor, frames: int, height: int, width: int) -> torch.Tensor:
    return tokens.transpose(1, 2).unflatten(2, (frames, height, width))


def _pixel_coords(latents: torch.Tensor, causal_fix: bool) -> torch.Tensor:
    batch, _, frames, height, width = latents.shape
    coords = latent_coordinates(frames, height, width, batch, latents.device)
    return latent_to_pixel_coordinates(coords, causal_fix=causal_fix)


def apply_conditions(latents: torch.Tensor, items: list[tuple[torch.Tensor, int, float]], *, causal_fix: bool,
                     noise: Callable[[tuple, torch.dtype, torch.device], torch.Tensor]) -> ConditionedLatents:
    """Merge encoded items `(normalised latents [B, C, f, H, W], start_frame, strength)` into `latents`.

    `noise(shape, dtype, device)` draws the noise that keyframe tokens are blended with, in item order.
    """
    if not items:
        return ConditionedLatents(patchify(latents), _pixel_coords(latents, causal_fix), None, 0)
    latents = latents.clone()
    mask = torch.zeros(latents[:, 0].shape, dtype=torch.float32, device=latents.device)
    extra_tokens, extra_coords, extra_mask = [], [], []
    for item_latents, start_frame, strength in items:
        item_latents = item_latents.to(latents.dtype)
        frames = item_latents.shape[2]
        if start_frame == 0:
            latents[:, :, :frames] = torch.lerp(latents[:, :, :frames], item_latents, strength)
            mask[:, :frames] = strength
            continue
        if frames > 1:
            if start_frame % FRAMES_PER_LATENT:
                raise ValueError(f"a conditioning video at frame {start_frame}: videos after frame 0 must start at "
                                 "a multiple of 8")
            begin = start_frame // FRAMES_PER_LATENT + PREFIX_LATENT_FRAMES
            if frames > PREFIX_LATENT_FRAMES:
                end = begin + frames - PREFIX_LATENT_FRAMES
                latents[:, :, begin:end] = torch.lerp(latents[:, :, begin:end],
                                                      item_latents[:, :, PREFIX_LATENT_FRAMES:], strength)
                mask[:, begin:end] = strength
            item_latents = item_latents[:, :, :PREFIX_LATENT_FRAMES]
        blended = torch.lerp(noise(tuple(item_latents.shape), item_latents.dtype, item_latents.device),
                             item_latents, strength)
        coords = _pixel_coords(blended, causal_fix)
        coords[:, 0] += start_frame
        tokens = patchify(blended)
        extra_tokens.append(tokens)
        extra_coords.append(coords)
        extra_mask.append(torch.full(tokens.shape[:2], strength, dtype=torch.float32, device=tokens.device))
    main_tokens = patchify(latents)
    main_mask = mask.flatten(1)
    return ConditionedLatents(
        torch.cat([*extra_tokens, main_tokens], dim=1),
        torch.cat([*extra_coords, _pixel_coords(latents, causal_fix)], dim=2),
        torch.cat([*extra_mask, main_mask], dim=1),
        sum(t.shape[1] for t in extra_tokens),
    )
