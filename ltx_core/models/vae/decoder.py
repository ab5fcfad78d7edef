"""The video decoder: un-normalised latents `[B, 128, F, h, w]` → pixels `[B, 3, 8(F−1)+1, 32h, 32w]`."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import DepthToSpaceUpsample, MidBlock3D, ResnetBlock3D, TimeEmbedding, modulation
from .config import VAEConfig
from .layers import CausalConv3d, make_norm, unpatchify
from .streaming import DecodeStream

_UPSAMPLE_STRIDES = {"compress_time": (2, 1, 1), "compress_space": (1, 2, 2), "compress_all": (2, 2, 2)}


class Decoder(nn.Module):
    """conv_in → up blocks (the config's `decoder_blocks` in reverse) → norm → [adaLN] → SiLU → conv_out.

    Every call processes one temporal chunk of a `DecodeStream`; a one-chunk stream is the plain decode.
    With timestep conditioning, the decode timestep is multiplied by the learned `timestep_scale_multiplier`
    (≈1000) and modulates each `res_x` block and the output norm.
    """

    def __init__(self, config: VAEConfig, *, dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None, operations=nn) -> None:
        super().__init__()
        kw = dict(dtype=dtype, device=device, operations=operations)
        pad = config.spatial_padding_mode
        blocks = list(reversed(config.decoder_blocks))
        self.patch_size = config.patch_size
        self.causal = config.causal_decoder
        self.timestep_conditioning = config.timestep_conditioning
        self.mixes_frames = config.norm_layer == "group_norm"
        # The official width bookkeeping: start from the widest stage, every widening block (seen from the
        # encoder side) multiplies it; only `res_x_y` and `compress_all` actually narrow it again below.
        channels = config.decoder_base_channels
        for name, params in blocks:
            if name == "res_x_y":
                channels *= params.get("multiplier", 2)
            elif name.startswith("compress"):
                channels *= params.get("multiplier", 1)
        self.conv_in = CausalConv3d(config.latent_channels, channels, 3, spatial_padding_mode=pad, **kw)
        self.up_blocks = nn.ModuleList()
        for name, params in blocks:
            if name == "res_x":
                block: nn.Module = MidBlock3D(channels, params["num_layers"], norm_layer=config.norm_layer,
                                              inject_noise=params.get("inject_noise", False),
                                              timestep_conditioning=config.timestep_conditioning,
                                              spatial_padding_mode=pad, **kw)
            elif name == "res_x_y":
                in_channels, channels = channels, channels // params.get("multiplier", 2)
                block = ResnetBlock3D(in_channels, channels, norm_layer=config.norm_layer,
                                      inject_noise=params.get("inject_noise", False), spatial_padding_mode=pad, **kw)
            elif name == "compress_all":
                reduction = params.get("multiplier", 1)
                block = DepthToSpaceUpsample(channels, _UPSAMPLE_STRIDES[name], residual=params.get("residual", False),
                                             out_channels_reduction_factor=reduction, spatial_padding_mode=pad, **kw)
                channels //= reduction
            else:
                block = DepthToSpaceUpsample(channels, _UPSAMPLE_STRIDES[name], spatial_padding_mode=pad, **kw)
            self.up_blocks.append(block)
        self.conv_norm_out = make_norm(config.norm_layer, channels, **kw)
        self.conv_out = CausalConv3d(channels, config.out_channels * config.patch_size ** 2, 3,
                                     spatial_padding_mode=pad, **kw)
        if config.timestep_conditioning:
            self.timestep_scale_multiplier = nn.Parameter(torch.tensor(1000.0, dtype=dtype or torch.float32,
                                                                       device=device))
            self.last_time_embedder = TimeEmbedding(channels * 2, **kw)
            self.last_scale_shift_table = nn.Parameter(
                torch.randn(2, channels, dtype=dtype, device=device) / channels ** 0.5)

    def output_frames(self, latent_frames: int) -> int:
        """Frames decoded from `latent_frames` (each temporal upsample maps n → 2n − 1)."""
        frames = latent_frames
        for block in self.up_blocks:
            if isinstance(block, DepthToSpaceUpsample) and block.stride[0] == 2:
                frames = 2 * frames - 1
        return frames

    def peak_elements_per_latent_frame(self, height: int, width: int) -> int:
        """Largest activation (in elements, batch 1) per latent frame of `height × width`, for chunk sizing."""
        channels, time_scale, area = self.conv_in.out_channels, 1, height * width
        peak = channels * area
        for block in self.up_blocks:
            if isinstance(block, DepthToSpaceUpsample):
                peak = max(peak, block.conv.out_channels * time_scale * area)
                channels = block.conv.out_channels // (block.stride[0] * block.stride[1] * block.stride[2])
                time_scale *= block.stride[0]
                area *= block.stride[1] * block.stride[2]
            elif isinstance(block, ResnetBlock3D):
                channels = block.conv2.out_channels
            peak = max(peak, channels * time_scale * area)
        return max(peak, self.conv_out.out_channels * time_scale * area)

    def forward(self, z: torch.Tensor, timestep: torch.Tensor | None, stream: DecodeStream) -> torch.Tensor:
        """One chunk of un-normalised latents → the pixel frames that are complete so far (possibly none)."""
        x = self.conv_in(z, self.causal, stream)
        scaled_timestep = None
        if self.timestep_conditioning:
            if timestep is None:
                raise ValueError("this decoder is timestep-conditioned: pass a timestep")
            scaled_timestep = timestep * self.timestep_scale_multiplier
        for block in self.up_blocks:
            if isinstance(block, MidBlock3D):
                x = block(x, self.causal, scaled_timestep, stream)
            elif isinstance(block, ResnetBlock3D):
                x = block(x, self.causal, None, stream)
            else:
                x = block(x, self.causal, stream)
        x = self.conv_norm_out(x)
        if self.timestep_conditioning:
            embedding = self.last_time_embedder(scaled_timestep.flatten(), x.dtype)
            shift, scale = modulation(self.last_scale_shift_table, embedding, x)
            x = x * (1 + scale) + shift
        x = self.conv_out(F.silu(x), self.causal, stream)
        return unpatchify(x, self.patch_size)
