"""Basic VAE layers: the time-padded 3-D conv, channel norms and the (un)patchify / pixel-shuffle rearranges."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from einops import rearrange
from torch import nn

from .streaming import ConvCache, DecodeStream


class CausalConv3d(nn.Module):
    """3-D conv whose temporal padding replicates edge frames instead of zero-padding.

    `causal=True` (encoder) prepends `kernel - 1` copies of the first frame; `causal=False` (the 0.9.x decoder)
    puts half of them before and half after. Spatial padding is done by the inner conv with the configured
    `padding_mode`. The inner conv is the `conv` submodule so the weights are `...conv.weight` like the official
    files. With a `stream`, the temporal padding is applied across chunk boundaries (see `streaming.py`).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 stride: int | Sequence[int] = 1, *, spatial_padding_mode: str = "zeros",
                 dtype: torch.dtype | None = None, device: torch.device | str | None = None,
                 operations=nn) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.out_channels = out_channels
        self.conv = operations.Conv3d(in_channels, out_channels, kernel_size, stride=stride,
                                      padding=(0, kernel_size // 2, kernel_size // 2),
                                      padding_mode=spatial_padding_mode, dtype=dtype, device=device)

    def forward(self, x: torch.Tensor, causal: bool = True, stream: DecodeStream | None = None) -> torch.Tensor:
        context = self.kernel_size - 1
        front, back = (context, 0) if causal else (context // 2, context // 2)
        if stream is None:
            x = torch.cat([x[:, :, :1].expand(-1, -1, front, -1, -1), x,
                           x[:, :, -1:].expand(-1, -1, back, -1, -1)], dim=2)
            return self.conv(x)
        x = stream.state(self, ConvCache).window(x, context=context, front=front, back=back, final=stream.final)
        if x.shape[2] < self.kernel_size:
            return x.new_empty(x.shape[0], self.out_channels, 0, *x.shape[3:])
        return self.conv(x)


class PixelNorm(nn.Module):
    """Normalises each position over channels (eps 1e-8); unlike GroupNorm it never mixes frames."""

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / torch.sqrt(torch.mean(x ** 2, dim=1, keepdim=True) + self.eps)


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis of `[B, C, F, H, W]`; the official wrapper names its layer `norm`."""

    def __init__(self, channels: int, eps: float, *, dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None, operations=nn) -> None:
        super().__init__()
        self.norm = operations.LayerNorm(channels, eps=eps, elementwise_affine=True, dtype=dtype, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = rearrange(x, "b c d h w -> b d h w c")
        return rearrange(self.norm(x), "b d h w c -> b c d h w")


def make_norm(norm_layer: str, channels: int, *, eps: float = 1e-6, groups: int = 32,
              dtype: torch.dtype | None = None, device: torch.device | str | None = None,
              operations=nn) -> nn.Module:
    """The config's `norm_layer`: `pixel_norm` (0.9.x, eps fixed at 1e-8), `group_norm` or `layer_norm`."""
    if norm_layer == "pixel_norm":
        return PixelNorm()
    if norm_layer == "group_norm":
        return operations.GroupNorm(groups, channels, eps=eps, affine=True, dtype=dtype, device=device)
    if norm_layer == "layer_norm":
        return ChannelLayerNorm(channels, eps, dtype=dtype, device=device, operations=operations)
    raise ValueError(f"unsupported VAE config norm_layer={norm_layer!r}")


def patchify(x: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Folds `patch_size²` pixels into channels; the sub-pixel order is (width, height), as in the official VAE."""
    return rearrange(x, "b c f (h q) (w r) -> b (c r q) f h w", q=patch_size, r=patch_size)


def unpatchify(x: torch.Tensor, patch_size: int) -> torch.Tensor:
    return rearrange(x, "b (c r q) f h w -> b c f (h q) (w r)", q=patch_size, r=patch_size)


def space_to_depth(x: torch.Tensor, stride: Sequence[int]) -> torch.Tensor:
    return rearrange(x, "b c (d p1) (h p2) (w p3) -> b (c p1 p2 p3) d h w", p1=stride[0], p2=stride[1], p3=stride[2])


def depth_to_space(x: torch.Tensor, stride: Sequence[int]) -> torch.Tensor:
    return rearrange(x, "b (c p1 p2 p3) d h w -> b c (d p1) (h p2) (w p3)", p1=stride[0], p2=stride[1], p3=stride[2])


def volume(stride: Sequence[int]) -> int:
    return math.prod(stride)
