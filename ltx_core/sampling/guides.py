"""Guides: a video or an image given to the model in context, for IC-LoRAs (depth, pose, canny, detailer).

A guide's latents are appended after the video's tokens as extra tokens carrying the positions of the frames they
guide, with a conditioning mask equal to their strength, so attention sees them next to the frames they describe;
they are dropped before decoding. This is what ComfyUI core's `LTXVAddGuide` / `LTXVCropGuides` (called by the
official pack's `LTXVInContextSampler`) do: positions are the first pixel frame of each guide latent frame, with the
causal first-frame fix only for a guide at frame 0, plus its start frame; a video guide starts at frame 0 or at the
first frame of a latent frame (8k + 1). Strength follows this pack's conditioning mask (σ never above
`1 - strength`), and unlike image conditions a guide gets no conditioning noise: it stays clean.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..models.grid import FRAMES_PER_LATENT
from ..models.positions import latent_coordinates, latent_to_pixel_coordinates
from .conditioning import ConditionedLatents, patchify


def check_guide_start(start_frame: int, frames: int, label: str) -> None:
    """A video guide starts where a latent frame starts: frame 0, or 8k + 1 (the frames that latent covers)."""
    if frames > 1 and start_frame != 0 and (start_frame - 1) % FRAMES_PER_LATENT:
        raise ValueError(f"{label}: a guide video starts at frame 0 or at the first frame of a latent frame "
                         f"(1, 9, 17, ..., 8k+1), not at frame {start_frame}")


def guide_pixel_coords(latents: torch.Tensor, start_frame: int, causal_fix: bool) -> torch.Tensor:
    """Pixel coordinates `[B, 3, n]` of a guide's latent tokens placed at pixel frame `start_frame`."""
    batch, _, frames, height, width = latents.shape
    coords = latent_coordinates(frames, height, width, batch, latents.device)
    pixel = latent_to_pixel_coordinates(coords, causal_fix=causal_fix and start_frame == 0)
    pixel[:, 0] += start_frame
    return pixel


def append_guides(conditioned: ConditionedLatents, guides: list[tuple[torch.Tensor, int, float]], *,
                  causal_fix: bool, noise: Callable[[tuple, torch.dtype, torch.device], torch.Tensor]
                  ) -> ConditionedLatents:
    """`conditioned` with encoded guides `(normalised latents [B, C, f, H, W], start_frame, strength)` appended.

    A guide starts as `lerp(noise, latents, strength)` like a keyframe (exactly its latents at strength 1);
    `noise(shape, dtype, device)` draws in guide order.
    """
    if not guides:
        return conditioned
    tokens, coords, masks = [conditioned.tokens], [conditioned.pixel_coords], []
    mask = conditioned.mask
    if mask is None:
        mask = torch.zeros(conditioned.tokens.shape[:2], dtype=torch.float32, device=conditioned.tokens.device)
    masks.append(mask)
    for latents, start_frame, strength in guides:
        latents = latents.to(conditioned.tokens.dtype)
        blended = torch.lerp(noise(tuple(latents.shape), latents.dtype, latents.device), latents, strength)
        guide_tokens = patchify(blended)
        tokens.append(guide_tokens)
        coords.append(guide_pixel_coords(latents, start_frame, causal_fix))
        masks.append(torch.full(guide_tokens.shape[:2], strength, dtype=torch.float32, device=guide_tokens.device))
    added = sum(t.shape[1] for t in tokens[1:])
    return ConditionedLatents(torch.cat(tokens, dim=1), torch.cat(coords, dim=2), torch.cat(masks, dim=1),
                              conditioned.num_extra, conditioned.num_guide + added)
