"""VAE blocks: residual blocks (optionally timestep-modulated), and the space↔depth resamplers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..embeddings import TimestepEmbedder
from .layers import CausalConv3d, ChannelLayerNorm, depth_to_space, make_norm, space_to_depth, volume
from .streaming import DecodeStream, FirstFrameDrop, FrameQueue, gaussian_noise

RESNET_EPS = 1e-6
NORM_GROUPS = 32


class TimeEmbedding(nn.Module):
    """Layout of diffusers' `PixArtAlphaCombinedTimestepSizeEmbeddings` without size conditioning, so the keys are
    `time_embedder.timestep_embedder.linear_{1,2}` as in the official checkpoints."""

    def __init__(self, embed_dim: int, *, dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None, operations=nn) -> None:
        super().__init__()
        self.timestep_embedder = TimestepEmbedder(embed_dim, dtype=dtype, device=device, operations=operations)

    def forward(self, timestep: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        return self.timestep_embedder(timestep, dtype)


def modulation(table: torch.Tensor, embedding: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """`table[K, C]` + per-sample `embedding[B, K*C]` → K tensors `[B, C, 1, 1, 1]` (adaLN shift/scale rows)."""
    values = table.to(like.dtype)[None, :, :, None, None, None] + embedding.reshape(
        embedding.shape[0], table.shape[0], -1, 1, 1, 1)
    return values.unbind(dim=1)


@dataclass
class _ResnetStream:
    skip: FrameQueue = field(default_factory=FrameQueue)
    noise: dict[int, torch.Tensor] = field(default_factory=dict)


class ResnetBlock3D(nn.Module):
    """`norm → [adaLN] → SiLU → conv` twice, plus the (projected, if the width changes) input."""

    def __init__(self, in_channels: int, out_channels: int | None = None, *, norm_layer: str,
                 inject_noise: bool = False, timestep_conditioning: bool = False, spatial_padding_mode: str = "zeros",
                 dtype: torch.dtype | None = None, device: torch.device | str | None = None,
                 operations=nn) -> None:
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        kw = dict(dtype=dtype, device=device, operations=operations)
        conv_kw = dict(spatial_padding_mode=spatial_padding_mode, **kw)
        self.inject_noise = inject_noise
        self.timestep_conditioning = timestep_conditioning
        self.norm1 = make_norm(norm_layer, in_channels, eps=RESNET_EPS, groups=NORM_GROUPS, **kw)
        self.conv1 = CausalConv3d(in_channels, out_channels, 3, **conv_kw)
        self.norm2 = make_norm(norm_layer, out_channels, eps=RESNET_EPS, groups=NORM_GROUPS, **kw)
        self.conv2 = CausalConv3d(out_channels, out_channels, 3, **conv_kw)
        if inject_noise:
            # Both scales are sized by the input width in the official model (which only injects when in == out).
            self.per_channel_scale1 = nn.Parameter(torch.zeros(in_channels, 1, 1, dtype=dtype, device=device))
            self.per_channel_scale2 = nn.Parameter(torch.zeros(in_channels, 1, 1, dtype=dtype, device=device))
        self.norm3: nn.Module | None = None
        self.conv_shortcut: nn.Module | None = None
        if in_channels != out_channels:
            self.norm3 = ChannelLayerNorm(in_channels, RESNET_EPS, **kw)
            self.conv_shortcut = operations.Conv3d(in_channels, out_channels, 1, dtype=dtype, device=device)
        if timestep_conditioning:
            self.scale_shift_table = nn.Parameter(
                torch.randn(4, in_channels, dtype=dtype, device=device) / in_channels ** 0.5)

    def _add_noise(self, x: torch.Tensor, index: int, stream: DecodeStream | None) -> torch.Tensor:
        """StyleGAN-style spatial noise, one `[H, W]` map per layer shared by all frames (and chunks)."""
        scale = self.per_channel_scale1 if index == 1 else self.per_channel_scale2
        if stream is None:
            noise = gaussian_noise(tuple(x.shape[-2:]), x, None)
        else:
            drawn = stream.state(self, _ResnetStream).noise
            if index not in drawn:
                if x.shape[2] == 0:
                    return x
                drawn[index] = gaussian_noise(tuple(x.shape[-2:]), x, stream.generator)
            noise = drawn[index]
        return x + (noise[None] * scale)[None, :, None]

    def forward(self, x: torch.Tensor, causal: bool = True, timestep_embedding: torch.Tensor | None = None,
                stream: DecodeStream | None = None) -> torch.Tensor:
        h = self.norm1(x)
        if self.timestep_conditioning:
            if timestep_embedding is None:
                raise ValueError("this block is timestep-conditioned: pass a timestep")
            shift1, scale1, shift2, scale2 = modulation(self.scale_shift_table, timestep_embedding, h)
            h = h * (1 + scale1) + shift1
        h = self.conv1(F.silu(h), causal, stream)
        if self.inject_noise:
            h = self._add_noise(h, 1, stream)
        h = self.norm2(h)
        if self.timestep_conditioning:
            h = h * (1 + scale2) + shift2
        h = self.conv2(F.silu(h), causal, stream)
        if self.inject_noise:
            h = self._add_noise(h, 2, stream)
        skip = x
        if self.conv_shortcut is not None:
            # A streamed chunk may bring no frames yet (convs cannot run on zero frames).
            skip = (self.conv_shortcut(self.norm3(x)) if x.shape[2]
                    else x.new_empty(x.shape[0], h.shape[1], 0, *x.shape[3:]))
        if stream is not None:
            skip = stream.state(self, _ResnetStream).skip.align(skip, h.shape[2])
        return skip + h


class MidBlock3D(nn.Module):
    """`res_x`: a stack of same-width residual blocks sharing one timestep embedding (official `UNetMidBlock3D`)."""

    def __init__(self, channels: int, num_layers: int, *, norm_layer: str, inject_noise: bool = False,
                 timestep_conditioning: bool = False, spatial_padding_mode: str = "zeros",
                 dtype: torch.dtype | None = None, device: torch.device | str | None = None,
                 operations=nn) -> None:
        super().__init__()
        kw = dict(dtype=dtype, device=device, operations=operations)
        self.timestep_conditioning = timestep_conditioning
        if timestep_conditioning:
            self.time_embedder = TimeEmbedding(channels * 4, **kw)
        self.res_blocks = nn.ModuleList([
            ResnetBlock3D(channels, channels, norm_layer=norm_layer, inject_noise=inject_noise,
                          timestep_conditioning=timestep_conditioning, spatial_padding_mode=spatial_padding_mode,
                          **kw)
            for _ in range(num_layers)])

    def forward(self, x: torch.Tensor, causal: bool = True, timestep: torch.Tensor | None = None,
                stream: DecodeStream | None = None) -> torch.Tensor:
        embedding = None
        if self.timestep_conditioning:
            if timestep is None:
                raise ValueError("this block is timestep-conditioned: pass a timestep")
            embedding = self.time_embedder(timestep.flatten(), x.dtype)
        for block in self.res_blocks:
            x = block(x, causal, embedding, stream)
        return x


class SpaceToDepthDownsample(nn.Module):
    """Encoder `compress_*_res`: conv then fold `stride` into channels, plus a parameter-free skip that folds the
    input the same way and averages channel groups. A temporal stride first duplicates frame 0 (causality)."""

    def __init__(self, in_channels: int, out_channels: int, stride: Sequence[int], *,
                 spatial_padding_mode: str = "zeros", dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None, operations=nn) -> None:
        super().__init__()
        self.stride = tuple(stride)
        self.group_size = in_channels * volume(stride) // out_channels
        self.conv = CausalConv3d(in_channels, out_channels // volume(stride), 3,
                                 spatial_padding_mode=spatial_padding_mode, dtype=dtype, device=device,
                                 operations=operations)

    def forward(self, x: torch.Tensor, causal: bool = True) -> torch.Tensor:
        if self.stride[0] == 2:
            x = torch.cat([x[:, :, :1], x], dim=2)
        skip = space_to_depth(x, self.stride)
        skip = skip.unflatten(1, (-1, self.group_size)).mean(dim=2)
        return space_to_depth(self.conv(x, causal), self.stride) + skip


@dataclass
class _UpsampleStream:
    skip: FrameQueue = field(default_factory=FrameQueue)
    drop_main: FirstFrameDrop = field(default_factory=FirstFrameDrop)
    drop_skip: FirstFrameDrop = field(default_factory=FirstFrameDrop)


class DepthToSpaceUpsample(nn.Module):
    """Decoder `compress_*`: conv to `prod(stride)·C/reduction` channels, then unfold them into space/time.

    With a temporal stride the first output frame is dropped (it mirrors the encoder's duplicated frame 0), so F
    latent frames become 2F−1. The optional residual unfolds the input the same way and tiles it over channels.
    """

    def __init__(self, in_channels: int, stride: Sequence[int], *, residual: bool = False,
                 out_channels_reduction_factor: int = 1, spatial_padding_mode: str = "zeros",
                 dtype: torch.dtype | None = None, device: torch.device | str | None = None,
                 operations=nn) -> None:
        super().__init__()
        self.stride = tuple(stride)
        self.residual = residual
        self.repeats = volume(stride) // out_channels_reduction_factor
        self.conv = CausalConv3d(in_channels, volume(stride) * in_channels // out_channels_reduction_factor, 3,
                                 spatial_padding_mode=spatial_padding_mode, dtype=dtype, device=device,
                                 operations=operations)

    def forward(self, x: torch.Tensor, causal: bool = True, stream: DecodeStream | None = None) -> torch.Tensor:
        state = stream.state(self, _UpsampleStream) if stream is not None else _UpsampleStream()
        skip = None
        if self.residual:
            skip = depth_to_space(x, self.stride).repeat(1, self.repeats, 1, 1, 1)
            if self.stride[0] == 2:
                skip = state.drop_skip(skip)
        x = depth_to_space(self.conv(x, causal, stream), self.stride)
        if self.stride[0] == 2:
            x = state.drop_main(x)
        if skip is not None:
            x = x + state.skip.align(skip, x.shape[2])
        return x
