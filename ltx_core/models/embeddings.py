"""Sinusoidal timestep embedding and its two-layer MLP, shared by the transformer and the VAE decoder.

Both LTX-Video models use diffusers' `Timesteps(256, flip_sin_to_cos=True, downscale_freq_shift=0)` followed by
`TimestepEmbedding` (`linear_1 → SiLU → linear_2`). The sinusoid is always computed in fp32 and only then cast to
the activations' dtype, exactly as diffusers does, so that bf16 runs match the official ones.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

SINUSOID_CHANNELS = 256


def timestep_sinusoid(t: torch.Tensor, dim: int = SINUSOID_CHANNELS, max_period: float = 10000.0) -> torch.Tensor:
    """`[N]` timesteps (may be fractional) → `[N, dim]` fp32 embedding laid out `cos | sin`.

    The order of operations follows diffusers' `get_timestep_embedding` with shift 0 so the result is bit-identical.
    """
    if t.ndim != 1:
        raise ValueError(f"timesteps must be 1-D, got shape {tuple(t.shape)}")
    half = dim // 2
    exponent = -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device)
    frequencies = torch.exp(exponent / half)
    angles = t[:, None].float() * frequencies[None, :]
    embedding = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)
    if dim % 2 == 1:
        embedding = F.pad(embedding, (0, 1))
    return embedding


class TimestepEmbedder(nn.Module):
    """Timesteps `[N]` → `[N, embed_dim]`: sinusoid (fp32, cast to `dtype`) → `linear_1` → SiLU → `linear_2`.

    `dtype` is the activations' dtype (diffusers' `hidden_dtype`), not the weights' dtype, because weights may be
    stored narrower (fp8) and cast on the fly by the injected `operations`.
    """

    def __init__(self, embed_dim: int, in_channels: int = SINUSOID_CHANNELS, *, dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None, operations=nn) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.linear_1 = operations.Linear(in_channels, embed_dim, dtype=dtype, device=device)
        self.linear_2 = operations.Linear(embed_dim, embed_dim, dtype=dtype, device=device)

    def forward(self, timestep: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        sinusoid = timestep_sinusoid(timestep.flatten(), self.in_channels).to(dtype)
        return self.linear_2(F.silu(self.linear_1(sinusoid)))
