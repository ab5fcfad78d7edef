"""The latent upsampler (`ltxv-spatial-upscaler-0.9.7`): doubles latent width and height (or frames).

It works on un-normalised latents; the multi-scale pipeline un-normalises, upsamples and re-normalises.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


class ResBlock(nn.Module):
    """Two conv + GroupNorm(32) layers; the activation comes after the residual sum."""

    def __init__(self, channels: int, conv: type, *, dtype, device, operations):
        super().__init__()
        self.conv1 = conv(channels, channels, kernel_size=3, padding=1, dtype=dtype, device=device)
        self.norm1 = operations.GroupNorm(32, channels, dtype=dtype, device=device)
        self.conv2 = conv(channels, channels, kernel_size=3, padding=1, dtype=dtype, device=device)
        self.norm2 = operations.GroupNorm(32, channels, dtype=dtype, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.norm1(self.conv1(x)))
        return F.silu(self.norm2(self.conv2(h)) + x)


class LatentUpsampler(nn.Module):
    """Spatial ×2 and/or temporal ×2 latent upsampler; `config` is the file's metadata config."""

    def __init__(self, config: dict, *, dtype=None, device=None, compute_dtype: torch.dtype | None = None,
                 operations=nn):
        super().__init__()
        self.config = config
        self.compute_dtype = compute_dtype or dtype or torch.float32
        channels = config.get("in_channels", 4)
        mid = config.get("mid_channels", 128)
        blocks = config.get("num_blocks_per_stage", 4)
        self.dims = config.get("dims", 2)
        self.spatial = config.get("spatial_upsample", True)
        self.temporal = config.get("temporal_upsample", False)
        if self.dims not in (2, 3):
            raise ValueError(f"latent upsampler config: dims={self.dims} is not supported (allowed: 2, 3)")
        if not (self.spatial or self.temporal):
            raise ValueError("latent upsampler config: spatial_upsample or temporal_upsample must be true")
        common = dict(dtype=dtype, device=device)
        conv = operations.Conv2d if self.dims == 2 else operations.Conv3d
        self.initial_conv = conv(channels, mid, kernel_size=3, padding=1, **common)
        self.initial_norm = operations.GroupNorm(32, mid, **common)
        self.res_blocks = nn.ModuleList([ResBlock(mid, conv, operations=operations, **common) for _ in range(blocks)])
        if self.spatial and self.temporal:
            up_conv, self.factor = operations.Conv3d(mid, 8 * mid, kernel_size=3, padding=1, **common), (2, 2, 2)
        elif self.spatial:
            up_conv, self.factor = operations.Conv2d(mid, 4 * mid, kernel_size=3, padding=1, **common), (1, 2, 2)
        else:
            up_conv, self.factor = operations.Conv3d(mid, 2 * mid, kernel_size=3, padding=1, **common), (2, 1, 1)
        self.upsampler = nn.Sequential(up_conv)
        self.post_upsample_res_blocks = nn.ModuleList(
            [ResBlock(mid, conv, operations=operations, **common) for _ in range(blocks)])
        self.final_conv = conv(mid, channels, kernel_size=3, padding=1, **common)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        """`[B, C, F, H, W]` un-normalised latents → upsampled latents of the same layout."""
        batch, frames = latents.shape[0], latents.shape[2]
        x = latents.to(self.compute_dtype)
        if self.dims == 2:
            x = rearrange(x, "b c f h w -> (b f) c h w")
        x = F.silu(self.initial_norm(self.initial_conv(x)))
        for block in self.res_blocks:
            x = block(x)
        x = self._upsample(x, batch, frames)
        for block in self.post_upsample_res_blocks:
            x = block(x)
        x = self.final_conv(x)
        if self.dims == 2:
            x = rearrange(x, "(b f) c h w -> b c f h w", b=batch, f=frames)
        return x

    def _upsample(self, x: torch.Tensor, batch: int, frames: int) -> torch.Tensor:
        pf, ph, pw = self.factor
        if self.dims == 3 and not self.temporal:
            x = rearrange(x, "b c f h w -> (b f) c h w")
        x = self.upsampler(x)
        if x.ndim == 4:
            x = rearrange(x, "b (c p1 p2) h w -> b c (h p1) (w p2)", p1=ph, p2=pw)
            return rearrange(x, "(b f) c h w -> b c f h w", b=batch, f=frames) if self.dims == 3 else x
        x = rearrange(x, "b (c p1 p2 p3) f h w -> b c (f p1) (h p2) (w p3)", p1=pf, p2=ph, p3=pw)
        return x[:, :, 1:] if self.temporal else x
