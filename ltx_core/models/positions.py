"""Token positions and rotary embeddings (RoPE) of the LTX-Video transformer.

Tokens carry fractional pixel-space coordinates `(t, y, x)`; time is in seconds so that the same motion looks the
same at any frame rate. The rotation covers the whole inner dimension across heads, with the three axes interleaved
per frequency and `inner_dim % 6` unrotated channels at the start.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .grid import SCALE_FACTORS


def latent_coordinates(frames: int, height: int, width: int, batch_size: int = 1,
                       device: torch.device | str | None = None) -> torch.Tensor:
    """Integer `(f, h, w)` coordinates of every latent token in raster order: `[B, 3, F*H*W]`."""
    grid = torch.meshgrid(torch.arange(frames, device=device), torch.arange(height, device=device),
                          torch.arange(width, device=device), indexing="ij")
    coords = torch.stack(grid, dim=0).reshape(3, -1)
    return coords.unsqueeze(0).repeat(batch_size, 1, 1)


def latent_to_pixel_coordinates(latent_coords: torch.Tensor, *, causal_fix: bool = True,
                                scale_factors: Sequence[int] = SCALE_FACTORS) -> torch.Tensor:
    """Scale latent coordinates to the first pixel each token covers.

    With `causal_fix` the first latent frame stands for one pixel frame only (the VAE is causal), so frame
    coordinates become 0, 1, 9, 17, ...
    """
    pixel = latent_coords * torch.tensor(scale_factors, device=latent_coords.device)[None, :, None]
    if causal_fix:
        pixel[:, 0] = (pixel[:, 0] + 1 - scale_factors[0]).clamp(min=0)
    return pixel


def pixel_to_positions(pixel_coords: torch.Tensor, frame_rate: float) -> torch.Tensor:
    """Float32 positions with the time axis in seconds (the reference multiplies by `1/frame_rate`)."""
    positions = pixel_coords.to(torch.float32)
    positions[:, 0] = positions[:, 0] * (1.0 / frame_rate)
    return positions


def latent_positions(latent_shape: Sequence[int], frame_rate: float, *, causal_fix: bool = True,
                     device: torch.device | str | None = None) -> torch.Tensor:
    """Positions `[B, 3, N]` for a latent video of shape `[B, C, F, H, W]` (what the transformer takes)."""
    batch, _, frames, height, width = latent_shape
    coords = latent_coordinates(frames, height, width, batch, device)
    return pixel_to_positions(latent_to_pixel_coordinates(coords, causal_fix=causal_fix), frame_rate)


def rope_frequencies(positions: torch.Tensor, dim: int, theta: float, max_pos: Sequence[float],
                     dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """`cos`, `sin` of shape `[B, N, dim]`, computed in float32 and cast to the compute dtype like the reference."""
    fractions = torch.stack([positions[:, i] / max_pos[i] for i in range(3)], dim=-1)  # [B, N, 3]
    num_freqs = dim // 6
    freqs = theta ** torch.linspace(math.log(1, theta), math.log(theta, theta), num_freqs,
                                    device=positions.device, dtype=torch.float32)
    freqs = freqs * math.pi / 2
    angles = (freqs * (fractions.unsqueeze(-1) * 2 - 1)).transpose(-1, -2).flatten(2)  # [B, N, 3*num_freqs]
    cos = angles.cos().repeat_interleave(2, dim=-1)
    sin = angles.sin().repeat_interleave(2, dim=-1)
    pad = dim % 6
    if pad:
        cos = torch.cat([torch.ones_like(cos[:, :, :pad]), cos], dim=-1)
        sin = torch.cat([torch.zeros_like(sin[:, :, :pad]), sin], dim=-1)
    return cos.to(dtype), sin.to(dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate adjacent channel pairs: `(x0, x1) -> (x0 cos - x1 sin, x1 cos + x0 sin)`."""
    pairs = x.unflatten(-1, (-1, 2))
    rotated = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
    return x * cos + rotated * sin
