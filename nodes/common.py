"""What the pack's nodes share: custom socket types, the objects passed through them, and host glue.

Only imported inside ComfyUI (the pack's `__init__` checks for the host first). `ltx_core` never imports
ComfyUI; this module is where ComfyUI's memory management, layer ops and attention are handed to it.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from typing import Any, Optional

import comfy.ldm.modules.attention
import comfy.model_management as mm
import comfy.model_patcher
import comfy.ops
import folder_paths
import torch
from comfy_api.latest import io

from ..ltx_core.acceleration import can_use_fp8_matmul, scaled_fp8_linear
from ..ltx_core.loading import NotSafetensorsError, check_safetensors

logger = logging.getLogger(__name__)

CATEGORY = "LTX-Video 0.9.7"
NODE_PREFIX = "LTX097"

# Custom socket types. Each wraps a ComfyUI ModelPatcher so that ComfyUI's memory management loads, offloads and
# patches (LoRA) the model like its own; nodes receive and return these objects, never bare modules.
LTXModelType = io.Custom("LTX097_MODEL")
LTXVaeType = io.Custom("LTX097_VAE")
LTXUpsamplerType = io.Custom("LTX097_UPSAMPLER")

FP8_DTYPES = (torch.float8_e4m3fn, torch.float8_e5m2)
WEIGHT_DTYPES: dict[str, Optional[torch.dtype]] = {
    "auto": None,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
    "fp32": torch.float32,
    "fp8_e4m3fn": torch.float8_e4m3fn,
    "fp8_e5m2": torch.float8_e5m2,
}
SAFETENSORS_DTYPES = {"F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2, "BF16": torch.bfloat16,
                      "F16": torch.float16, "F32": torch.float32}
MODEL_EXTENSIONS = (".safetensors",)


@dataclass
class LTXModel:
    """The LTX-Video transformer of one checkpoint (`LTX097_MODEL`).

    `patcher.model` is the `ltx_core.Transformer3D`; `config` is the checkpoint's whole config (`transformer`,
    `vae`, `scheduler` sections); `dtype` the storage dtype of its matrices and `compute_dtype` what it runs in.
    Nodes that change the model (LoRA, ...) must return `with_patcher(self.patcher.clone())`, never mutate.
    """

    patcher: Any
    config: dict
    path: str
    dtype: torch.dtype
    compute_dtype: torch.dtype
    extra: dict = field(default_factory=dict)

    @property
    def transformer(self) -> torch.nn.Module:
        return self.patcher.model

    @property
    def transformer_config(self) -> dict:
        return self.config.get("transformer", {})

    @property
    def scheduler_config(self) -> dict:
        return self.config.get("scheduler", {})

    def with_patcher(self, patcher) -> "LTXModel":
        return dataclasses.replace(self, patcher=patcher, extra=dict(self.extra))


@dataclass
class LTXVae:
    """The causal video VAE of one checkpoint (`LTX097_VAE`); `patcher.model` is `ltx_core.CausalVideoVAE`."""

    patcher: Any
    config: dict
    path: str
    dtype: torch.dtype

    @property
    def vae(self) -> torch.nn.Module:
        return self.patcher.model


@dataclass
class LTXUpsampler:
    """A latent upsampler (`LTX097_UPSAMPLER`); `patcher.model` is `ltx_core.LatentUpsampler`, which takes
    un-normalised latents `[B, 128, F, H, W]`."""

    patcher: Any
    config: dict
    path: str
    dtype: torch.dtype

    @property
    def upsampler(self) -> torch.nn.Module:
        return self.patcher.model


def comfy_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                    attn_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
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


def operations_for(storage_dtype: torch.dtype, compute_dtype: torch.dtype, device: Optional[torch.device] = None):
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


def stored_dtype(path: str, prefer: tuple[str, ...] = ("transformer_blocks.",)) -> Optional[torch.dtype]:
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


def resolve_weight_dtype(choice: str, path: str, device: torch.device) -> torch.dtype:
    """Map a `weight_dtype` widget value to a storage dtype.

    "auto": keep the file's fp8 if it stores fp8; otherwise what ComfyUI picks for diffusion models on `device`
    among bfloat16 / float32 (bfloat16 on GPUs that support it, float32 on CPU; `--bf16-unet`, `--fp32-unet`
    and the other unet dtype flags are honoured).
    """
    if choice not in WEIGHT_DTYPES:
        raise ValueError(f"weight_dtype '{choice}' is not one of {', '.join(WEIGHT_DTYPES)}")
    dtype = WEIGHT_DTYPES[choice]
    if dtype is not None:
        return dtype
    file_dtype = stored_dtype(path)
    if file_dtype in FP8_DTYPES:
        return file_dtype
    dtype = mm.unet_dtype(device=device, supported_dtypes=[torch.bfloat16, torch.float32])
    return dtype if dtype in (torch.bfloat16, torch.float16, torch.float32) + FP8_DTYPES else torch.float32


def resolve_vae_like_dtype(choice: str, device: torch.device) -> torch.dtype:
    """"auto" → what ComfyUI picks for VAEs on `device` (bfloat16 on GPUs that support it, else float32)."""
    if choice not in ("auto", "bf16", "fp16", "fp32"):
        raise ValueError(f"dtype '{choice}' is not one of auto, bf16, fp16, fp32")
    if choice != "auto":
        return WEIGHT_DTYPES[choice]
    dtype = mm.vae_dtype(device=device, allowed_dtypes=[torch.bfloat16, torch.float32])
    return dtype if dtype in (torch.bfloat16, torch.float16, torch.float32) else torch.float32


def model_files(*folders: str) -> list[str]:
    """Loadable file names from ComfyUI model folders (first folder wins on duplicate names), sorted."""
    names: list[str] = []
    seen = set()
    for folder in folders:
        if folder not in folder_paths.folder_names_and_paths:
            continue
        for name in folder_paths.get_filename_list(folder):
            if name.lower().endswith(MODEL_EXTENSIONS) and name not in seen:
                seen.add(name)
                names.append(name)
    return sorted(names, key=str.lower)


def check_model_file(name: str, *folders: str) -> bool | str:
    """`validate_inputs` answer for a file-name input: True, or the sentence that refuses the prompt (HTTP 400)
    when the file is missing or is no safetensors file (a pickle renamed `.safetensors`; header and size only)."""
    try:
        check_safetensors(model_path(name, *folders), f"model file '{name}'")
    except (FileNotFoundError, NotSafetensorsError) as error:
        return str(error)
    return True


def model_path(name: str, *folders: str) -> str:
    """Full path of a file listed by `model_files(*folders)`; a sentence if it is not there."""
    for folder in folders:
        if folder in folder_paths.folder_names_and_paths:
            path = folder_paths.get_full_path(folder, name)
            if path is not None:
                return path
    raise FileNotFoundError(f"model file '{name}' was not found in the ComfyUI model folders "
                            f"{', '.join(folders)}; put it in models/{folders[0]}/ or add a path for it in "
                            f"extra_model_paths.yaml")


def wrap(model: torch.nn.Module, load_device: torch.device, offload_device: torch.device):
    """A ComfyUI ModelPatcher around an ltx_core module (ComfyUI then owns loading and offloading it)."""
    return comfy.model_patcher.ModelPatcher(model, load_device=load_device, offload_device=offload_device)


def check_number(name: str, value: Any, low: float, high: float) -> bool | str:
    """`validate_inputs` answer for a number widget: True, or the sentence that refuses the prompt (HTTP 400).

    ComfyUI's own min/max check lets NaN through (every comparison with NaN is false) and is skipped for the
    inputs a node validates itself, so nodes that validate a number check its range here. `None` is what ComfyUI
    passes for a linked input: its value is not known yet and is checked when the node runs.
    """
    if value is None:
        return True
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not low <= value <= high:
        return f"{name}={value!r} is not allowed (allowed: a number in {low:g}–{high:g})"
    return True
