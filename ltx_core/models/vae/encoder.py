"""The causal video encoder: pixels `[B, C, 8k+1, H, W]` → posterior moments `[B, *, k+1, H/32, W/32]`."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import MidBlock3D, ResnetBlock3D, SpaceToDepthDownsample
from .config import VAEConfig
from .layers import CausalConv3d, make_norm, patchify

# Strided causal convs of the plain `compress_*` blocks, and the strides of the `*_res` space-to-depth blocks.
_CONV_STRIDES = {"compress_time": (2, 1, 1), "compress_space": (1, 2, 2), "compress_all": (2, 2, 2),
                 "compress_all_x_y": (2, 2, 2)}
_RES_STRIDES = {"compress_all_res": (2, 2, 2), "compress_space_res": (1, 2, 2), "compress_time_res": (2, 1, 1)}


class Encoder(nn.Module):
    """patchify → conv_in → down blocks → norm → SiLU → conv_out; always causal in time.

    `conv_out` predicts the mean and, depending on `latent_log_var`, a log-variance per channel (`per_channel`),
    one shared by all channels (`uniform`), or none (`constant`: fixed at −30, `none`).
    """

    def __init__(self, config: VAEConfig, *, dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None, operations=nn) -> None:
        super().__init__()
        kw = dict(dtype=dtype, device=device, operations=operations)
        pad = config.spatial_padding_mode
        self.patch_size = config.patch_size
        self.latent_channels = config.latent_channels
        self.latent_log_var = config.latent_log_var
        channels = config.encoder_base_channels
        self.conv_in = CausalConv3d(config.in_channels * config.patch_size ** 2, channels, 3,
                                    spatial_padding_mode=pad, **kw)
        self.down_blocks = nn.ModuleList()
        for name, params in config.encoder_blocks:
            in_channels = channels
            if name in ("res_x_y", "compress_all_x_y") or name in _RES_STRIDES:
                channels *= params.get("multiplier", 2)
            if name == "res_x":
                block: nn.Module = MidBlock3D(channels, params["num_layers"], norm_layer=config.norm_layer,
                                              spatial_padding_mode=pad, **kw)
            elif name == "res_x_y":
                block = ResnetBlock3D(in_channels, channels, norm_layer=config.norm_layer,
                                      spatial_padding_mode=pad, **kw)
            elif name in _CONV_STRIDES:
                block = CausalConv3d(in_channels, channels, 3, _CONV_STRIDES[name], spatial_padding_mode=pad, **kw)
            else:
                block = SpaceToDepthDownsample(in_channels, channels, _RES_STRIDES[name], spatial_padding_mode=pad,
                                               **kw)
            self.down_blocks.append(block)
        self.conv_norm_out = make_norm(config.norm_layer, channels, **kw)
        extra = {"per_channel": config.latent_channels, "uniform": 1, "constant": 1, "none": 0}
        self.conv_out = CausalConv3d(channels, config.latent_channels + extra[config.latent_log_var], 3,
                                     spatial_padding_mode=pad, **kw)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """Raw `conv_out` output (see `CausalVideoVAE.posterior` for how it splits into mean / log-variance)."""
        x = self.conv_in(patchify(video, self.patch_size))
        for block in self.down_blocks:
            x = block(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))
