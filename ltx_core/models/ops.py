"""Layer namespaces and the attention function that models are built with.

Every model in `ltx_core` takes an `operations` namespace (anything with `Linear`, `Conv2d`, `Conv3d`,
`GroupNorm`, `LayerNorm` classes accepting `dtype=` and `device=`) and an `attention` function. The default is
plain `torch.nn` and `scaled_dot_product_attention`; ComfyUI passes `comfy.ops` classes and its own attention so
that low-VRAM loading, weight casting and LoRA patching work. `manual_cast` is our own stand-in for running
weights stored in a narrow dtype (fp8) with compute in the activations' dtype, when ComfyUI is not around.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..acceleration.fp8 import can_use_fp8_matmul, scaled_fp8_linear

AttentionFn = Callable[..., torch.Tensor]


def default_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                      attn_mask: torch.Tensor | None = None) -> torch.Tensor:
    """`[B, H, N, D]` in, `[B, H, N, D]` out; `attn_mask` is an additive bias broadcastable to `[B, H, N, M]`."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)


def _cast(tensor: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor | None:
    if tensor is None:
        return None
    return tensor.to(device=like.device, dtype=like.dtype)


class _CastLinear(nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, _cast(self.weight, x), _cast(self.bias, x))


class _Fp8MatmulLinear(_CastLinear):
    """fp8 weights multiplied in fp8 (`acceleration.fp8`) where the product allows it, else cast like `manual_cast`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.weight.device == x.device and can_use_fp8_matmul(x, self.weight):
            return scaled_fp8_linear(x, self.weight, self.bias)
        return super().forward(x)


class _CastConv2d(nn.Conv2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, _cast(self.weight, x), _cast(self.bias, x))


class _CastConv3d(nn.Conv3d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, _cast(self.weight, x), _cast(self.bias, x))


class _CastGroupNorm(nn.GroupNorm):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.group_norm(x, self.num_groups, _cast(self.weight, x), _cast(self.bias, x), self.eps)


class _CastLayerNorm(nn.LayerNorm):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.normalized_shape, _cast(self.weight, x), _cast(self.bias, x), self.eps)


class manual_cast:  # noqa: N801 - a namespace, named like comfy.ops.manual_cast
    """Layers whose weights are cast to the input's dtype and device on every call (fp8 storage, bf16 compute)."""

    Linear = _CastLinear
    Conv2d = _CastConv2d
    Conv3d = _CastConv3d
    GroupNorm = _CastGroupNorm
    LayerNorm = _CastLayerNorm


class fp8_matmul(manual_cast):  # noqa: N801 - a namespace
    """`manual_cast`, with fp8 matrix multiplies for the linear layers (GPUs with fp8 tensor cores)."""

    Linear = _Fp8MatmulLinear

