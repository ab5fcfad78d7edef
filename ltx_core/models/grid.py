"""The model's grid: how pixels, frames and prompt tokens map onto the cells the transformer works on.

The one owner of these numbers. The causal VAE turns 8 pixel frames into one latent frame (the first frame stands
alone, hence 8k+1 frames) and 32×32 pixels into one latent cell; the transformer reads 256 T5 tokens. A VAE whose
own compression factors disagree is refused when it is loaded (`check_vae_grid`), so nothing downstream works on
a grid the model does not have.
"""

from __future__ import annotations

FRAMES_PER_LATENT = 8
"""Pixel frames per latent frame (after the first)."""
PIXELS_PER_LATENT = 32
"""Pixel rows (and columns) per latent cell."""
SCALE_FACTORS = (FRAMES_PER_LATENT, PIXELS_PER_LATENT, PIXELS_PER_LATENT)
"""(frames, rows, columns) of pixels per latent cell."""
TEXT_TOKENS = 256
"""T5 tokens of a prompt the model reads; the reference truncates (and the enhancer fits) prompts to this."""

MIN_SIZE, MAX_SIZE = 32, 8192
"""Width and height a generation takes, in pixels (padded to the grid and cropped back)."""
MIN_FRAMES, MAX_FRAMES = 1, 2049
"""Frame counts a generation takes (the model runs the next 8k+1 and the result is cut back)."""


def padded_frame_count(num_frames: int) -> int:
    """Frames generated for `num_frames` requested: the next 8k+1 (89 → 89, 90 → 97)."""
    return ((num_frames - 2) // FRAMES_PER_LATENT + 1) * FRAMES_PER_LATENT + 1


def latent_frame_count(num_frames: int) -> int:
    """Latent frames of a video of `num_frames` pixel frames (padded to 8k+1 first)."""
    return (padded_frame_count(num_frames) - 1) // FRAMES_PER_LATENT + 1


def check_vae_grid(temporal: int, spatial: int, where: str) -> None:
    """Refuse a VAE whose compression factors are not the grid every other part of the pack assumes."""
    if (temporal, spatial) != (FRAMES_PER_LATENT, PIXELS_PER_LATENT):
        raise ValueError(f"{where}: the VAE compresses {temporal} frames and {spatial}×{spatial} px per latent cell; "
                         f"LTX-Video 0.9.x models work on {FRAMES_PER_LATENT} frames and "
                         f"{PIXELS_PER_LATENT}×{PIXELS_PER_LATENT} px")
