"""ComfyUI's layer ops, attention and dtype policy, handed to `ltx_core` (which never imports ComfyUI).

`ltx_core` builds its models from an injected `operations` namespace and attention function; the ones here are
ComfyUI's own (low-VRAM capable, casting, LoRA-patchable layers; the attention backend ComfyUI picked at start-up),
plus fp8 matrix multiplies for e4m3 weights, and the mapping from the loaders' dtype widgets to torch dtypes.
"""

from __future__ import annotations

import logging

import comfy.ldm.modules.attention
import comfy.model_management as mm
import comfy.ops
import torch

from ..ltx_core.acceleration import can_use_fp8_matmul, scaled_fp8_linear
from ..ltx_core.loading import FP8_DTYPES

logger = logging.getLogger(__name__)

DTYPE_CHOICES = ("auto", "bf16", "fp16", "fp32")
"""The dtype widget of every loader that does not offer fp8 (the upsampler, the prompt enhancer, the checker)."""
WEIGHT_DTYPES: dict[str, torch.dtype | None] = {
    "auto": None,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
    "fp32": torch.float32,
    "fp8_e4m3fn": torch.float8_e4m3fn,
    "fp8_e5m2": torch.float8_e5m2,
}
"""The model loader's `weight_dtype` widget; the first four are `DTYPE_CHOICES`."""
SAFETENSORS_DTYPES = {"F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2, "BF16": torch.bfloat16,
                      "F16": torch.float16, "F32": torch.float32}


def comfy_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                    attn_mask: torch.Tensor | None = None) -> torch.Tensor:
    """ltx_core's attention signature (`[B, H, N, D]` in and out, additive mask) on ComfyUI's attention backend.

    Looks `optimized_attention` (`optimized_attention_masked` with a mask, as core's LTXV does) up on every call,
    so the backend ComfyUI picked at start-up (sub-quadratic on CPU, PyTorch SDPA / xformers / sage / flash on
    GPUs) is the one used.
    """
    if attn_mask is not None and attn_mask.is_floating_point() and attn_mask.dtype != q.dtype:
        attn_mask = attn_mask.to(q.dtype)
    attention = comfy.ldm.modules.attention
    function = attention.optimized_attention if attn_mask is None else attention.optimized_attention_masked
    return function(q, k, v, q.shape[1], mask=attn_mask, skip_reshape=True, skip_output_reshape=True)


class fp8_matmul_ops(comfy.ops.manual_cast):  # noqa: N801 - a namespace, named like comfy.ops'
    """ComfyUI's casting layers, with e4m3 linear layers multiplied in fp8 (`ltx_core.acceleration.fp8`).

    A layer with patches applied at use (LoRAs on fp8 weights, see `lora.attach_patches`) keeps the bf16 path,
    so its LoRA is never applied to an fp8 weight.
    """

    class Linear(comfy.ops.manual_cast.Linear):
        def forward_comfy_cast_weights(self, input: torch.Tensor) -> torch.Tensor:
            if self.weight_function or self.bias_function or not can_use_fp8_matmul(input, self.weight):
                return super().forward_comfy_cast_weights(input)
            weight, bias, stream = comfy.ops.cast_bias_weight(self, input, dtype=self.weight.dtype,
                                                              bias_dtype=input.dtype, offloadable=True)
            out = scaled_fp8_linear(input, weight, bias)
            comfy.ops.uncast_bias_weight(self, weight, bias, stream)
            return out


def operations_for(storage_dtype: torch.dtype, compute_dtype: torch.dtype, device: torch.device | None = None):
    """ComfyUI layer ops: plain (but low-VRAM capable) layers when weights are stored in the compute dtype,
    casting layers when they are not (fp8 storage), fp8 matrix multiplies for e4m3 weights on GPUs that have
    them (ComfyUI's own `supports_fp8_compute` decides)."""
    if storage_dtype == compute_dtype:
        return comfy.ops.disable_weight_init
    if storage_dtype == torch.float8_e4m3fn and device is not None and mm.supports_fp8_compute(device):
        return fp8_matmul_ops
    return comfy.ops.manual_cast


def compute_dtype_for(storage_dtype: torch.dtype) -> torch.dtype:
    """What ltx_core computes in for a storage dtype (fp8 matrices run in bfloat16)."""
    return torch.bfloat16 if storage_dtype in FP8_DTYPES else storage_dtype


def stored_dtype(path: str, prefer: tuple[str, ...] = ("transformer_blocks.",)) -> torch.dtype | None:
    """The dtype a safetensors file stores its big matrices in (read from the header only; None if unknown).

    Looks at the first 2-D `*.weight` whose name contains one of `prefer` (transformer block matrices, which are
    the ones fp8 files quantise), else at any 2-D weight.
    """
    try:
        from safetensors import safe_open

        with safe_open(path, framework="pt", device="cpu") as handle:
            keys = sorted(handle.keys())
            candidates = [k for k in keys if k.endswith(".weight") and any(p in k for p in prefer)] or \
                [k for k in keys if k.endswith(".weight")]
            for key in candidates:
                tensor_slice = handle.get_slice(key)
                if len(tensor_slice.get_shape()) == 2:
                    return SAFETENSORS_DTYPES.get(tensor_slice.get_dtype())
    except Exception as error:  # not a safetensors file: ltx_core says so in a sentence when it loads it
        logger.debug("could not read the header of %s: %s", path, error)
    return None


def dtype_choice(choice: str, choices: tuple[str, ...] = DTYPE_CHOICES, name: str = "dtype") -> torch.dtype | None:
    """The dtype a widget value names (None for "auto"); a sentence for a value that is not one of `choices`."""
    if choice not in choices:
        raise ValueError(f"{name} '{choice}' is not one of {', '.join(choices)}")
    return WEIGHT_DTYPES[choice]


def resolve_weight_dtype(choice: str, path: str, device: torch.device) -> torch.dtype:
    """Map a `weight_dtype` widget value to a storage dtype.

    "auto": keep the file's fp8 if it stores fp8; otherwise what ComfyUI picks for diffusion models on `device`
    among bfloat16 / float32 (bfloat16 on GPUs that support it, float32 on CPU; `--bf16-unet`, `--fp32-unet`
    and the other unet dtype flags are honoured).
    """
    dtype = dtype_choice(choice, tuple(WEIGHT_DTYPES), "weight_dtype")
    if dtype is not None:
        return dtype
    file_dtype = stored_dtype(path)
    if file_dtype in FP8_DTYPES:
        return file_dtype
    dtype = mm.unet_dtype(device=device, supported_dtypes=[torch.bfloat16, torch.float32])
    return dtype if dtype in (torch.bfloat16, torch.float16, torch.float32) + FP8_DTYPES else torch.float32


def resolve_vae_like_dtype(choice: str, device: torch.device) -> torch.dtype:
    """"auto" → what ComfyUI picks for VAEs on `device` (bfloat16 on GPUs that support it, else float32)."""
    dtype = dtype_choice(choice)
    if dtype is not None:
        return dtype
    dtype = mm.vae_dtype(device=device, allowed_dtypes=[torch.bfloat16, torch.float32])
    return dtype if dtype in (torch.bfloat16, torch.float16, torch.float32) else torch.float32
