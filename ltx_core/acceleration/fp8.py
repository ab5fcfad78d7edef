"""fp8 matrix multiplies for fp8 checkpoints on GPUs that have them (Ada, Hopper and newer).

The plain fp8 path upcasts every weight to bf16 on every use and multiplies in bf16. Here the weight stays in
float8_e4m3fn and the activations are quantised to e4m3 per tensor (scale = amax / 448, so nothing is clipped);
`torch._scaled_mm` multiplies the two in fp8 and accumulates in float32. The cost is the activations' 3-bit
mantissa: a relative error of about 1-2 % per layer, which is why it is a speed option, not the default elsewhere.
"""

from __future__ import annotations

import torch

FP8_MAX = 448.0  # largest finite float8_e4m3fn
_ALIGNMENT = 16  # _scaled_mm needs both matrix dimensions to be multiples of 16


def supports_fp8_matmul(device: torch.device | str) -> bool:
    """True on CUDA devices with fp8 tensor cores (compute capability 8.9 or newer)."""
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return False
    return torch.cuda.get_device_capability(device) >= (8, 9)


def can_use_fp8_matmul(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether `scaled_fp8_linear` can run this product (e4m3 weight, aligned shapes, a float activation)."""
    return (weight.dtype == torch.float8_e4m3fn and weight.ndim == 2 and x.is_floating_point()
            and x.shape[-1] % _ALIGNMENT == 0 and weight.shape[0] % _ALIGNMENT == 0
            and x.dtype in (torch.bfloat16, torch.float16, torch.float32))


def scaled_fp8_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                      weight_scale: torch.Tensor | None = None) -> torch.Tensor:
    """`x @ weight.T + bias` with `weight` `[out, in]` in float8_e4m3fn (times `weight_scale`, default 1) and `x`
    quantised per tensor; the result has `x`'s dtype."""
    shape = x.shape
    flat = x.reshape(-1, shape[-1])
    amax = flat.abs().amax().float().clamp(min=1e-12)
    scale_x = (amax / FP8_MAX).reshape(())
    quantised = (flat.float() / scale_x).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)
    scale_w = torch.ones((), device=x.device, dtype=torch.float32) if weight_scale is None \
        else weight_scale.to(device=x.device, dtype=torch.float32).reshape(())
    out_dtype = x.dtype if x.dtype != torch.float32 else torch.bfloat16
    out = torch._scaled_mm(quantised, weight.t(), scale_a=scale_x, scale_b=scale_w,
                           bias=None if bias is None else bias.to(out_dtype), out_dtype=out_dtype)
    return out.to(x.dtype).reshape(*shape[:-1], weight.shape[0])
