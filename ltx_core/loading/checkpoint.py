"""Loading LTX-Video checkpoints (safetensors only) into `ltx_core` models.

Models are built on the meta device and the file's tensors assigned to them, so a 13B checkpoint is read once
and never initialised twice. The config comes from the file's metadata (official files) or, for files without
one (ComfyUI, diffusers single files), from the released architecture whose names and shapes the file matches.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from torch import nn

from ..acceleration.fp8 import supports_fp8_matmul
from ..models.grid import check_vae_grid
from ..models.ops import AttentionFn, default_attention, fp8_matmul, manual_cast
from ..models.transformer import Transformer3D
from ..models.upsampler import LatentUpsampler
from ..models.vae import CausalVideoVAE
from . import known_configs
from .config_checks import check_transformer_config, check_upsampler_config, check_vae_config, check_weights
from .key_layouts import split_components
from .safetensors_check import check_safetensors

logger = logging.getLogger(__name__)

FP8_DTYPES = (torch.float8_e4m3fn, torch.float8_e5m2)
SAFETENSORS_SUFFIXES = (".safetensors", ".sft")
_STAT_KEYS = ("per_channel_statistics.std-of-means", "per_channel_statistics.mean-of-means")


@dataclass
class LTXCheckpoint:
    """What one file holds: the transformer and/or the VAE, and the config they were built from."""

    path: str
    config: dict = field(default_factory=dict)
    transformer: Transformer3D | None = None
    vae: CausalVideoVAE | None = None


class _SafetensorsFile:
    """Header-first access to a safetensors file, with a sentence when it is not one."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        if not Path(self.path).is_file():
            raise FileNotFoundError(f"checkpoint '{self.path}' does not exist")
        if not self.path.endswith(SAFETENSORS_SUFFIXES):
            raise ValueError(f"'{self.path}' is not a .safetensors/.sft file; only safetensors checkpoints are loaded "
                             "(pickled .ckpt/.pt/.bin files can run code and are refused)")
        check_safetensors(self.path, f"'{self.path}'")
        try:
            self._file = safe_open(self.path, framework="pt", device="cpu")
        except Exception as error:  # safetensors raises its own error types for broken headers
            raise ValueError(f"'{self.path}' is not a readable safetensors file: {error}") from error
        self.metadata = self._file.metadata() or {}
        self.keys = list(self._file.keys())

    def shape(self, key: str) -> tuple[int, ...]:
        return tuple(self._file.get_slice(key).get_shape())

    def tensor(self, key: str) -> torch.Tensor:
        return self._file.get_tensor(key)

    def metadata_config(self) -> dict:
        raw = self.metadata.get("config")
        if not raw:
            return {}
        try:
            config = json.loads(raw)
        except json.JSONDecodeError as error:
            raise ValueError(f"'{self.path}': the 'config' metadata is not valid JSON ({error})") from error
        if not isinstance(config, dict):
            raise ValueError(f"'{self.path}': the 'config' metadata is not a JSON object ({type(config).__name__})")
        return config


def _storage_dtypes(dtype: torch.dtype) -> tuple[torch.dtype, torch.dtype]:
    """(dtype for large matrices, dtype for everything else and for compute)."""
    if dtype in FP8_DTYPES:
        return dtype, torch.bfloat16
    if dtype not in (torch.float32, torch.bfloat16, torch.float16):
        raise ValueError(f"dtype {dtype} is not supported (allowed: float32, bfloat16, float16, float8_e4m3fn, "
                         "float8_e5m2)")
    return dtype, dtype


def fp8_operations(device) -> Any:
    """Layers for fp8 storage: fp8 matrix multiplies where the device has them, else cast to bf16 on use."""
    return fp8_matmul if supports_fp8_matmul(device) else manual_cast


def _convert(tensor: torch.Tensor, matrix_dtype: torch.dtype, other_dtype: torch.dtype, is_matrix: bool):
    if not tensor.is_floating_point():
        return tensor
    if is_matrix:
        if tensor.dtype in FP8_DTYPES and matrix_dtype in FP8_DTYPES:
            return tensor  # keep the file's fp8 encoding rather than re-quantising
        return tensor.to(matrix_dtype)
    return tensor.to(other_dtype)


def _check_against(model: nn.Module, what: str, file: _SafetensorsFile, shapes: dict[str, tuple[int, ...]],
                   names: dict[str, str]) -> None:
    """The file's names and shapes (header only) against the meta model's, before a tensor is read."""
    expected = {name: tuple(value.shape) for name, value in model.state_dict().items()}
    check_weights(file.path, what, expected, shapes, {name: key for key, name in names.items()})


def _assign(model: nn.Module, tensors: dict[str, torch.Tensor], device) -> nn.Module:
    model.load_state_dict(tensors, strict=True, assign=True)
    return model.to(device).eval().requires_grad_(False)


def matching_config(candidates: dict[str, dict], build: Callable[[dict], nn.Module],
                     shapes: dict[str, tuple[int, ...]]) -> dict | None:
    for name, config in candidates.items():
        with torch.device("meta"):
            model = build(config)
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        if expected == shapes:
            logger.info("no config in the file; it matches the released %s architecture", name)
            return config
    return None


def _load_transformer(file: _SafetensorsFile, names: dict[str, str], config: dict | None, dtype: torch.dtype,
                      device, operations, attention: AttentionFn) -> tuple[Transformer3D, dict]:
    shapes = {name: file.shape(key) for key, name in names.items()}
    if config is None:
        config = known_configs.transformer_config_from_shapes(shapes)
        if config is None:
            raise ValueError(f"'{file.path}' has no transformer config in its metadata and its shapes match no "
                             "released LTX-Video transformer (13B 0.9.7: 48 blocks × 4096, 2B: 28 blocks × 2048)")
        logger.warning("'%s' carries no config; using the released %d-block transformer config", file.path,
                       config["num_layers"])
    else:
        check_transformer_config(file.path, config, shapes)
    matrix_dtype, other_dtype = _storage_dtypes(dtype)
    with torch.device("meta"):
        model = Transformer3D(config, dtype=other_dtype, compute_dtype=other_dtype, operations=operations,
                              attention=attention)
    _check_against(model, "transformer", file, shapes, names)
    matrices = {name for name, m in model.named_modules() if hasattr(m, "weight") and isinstance(m, nn.Linear)}
    tensors = {}
    for key, name in names.items():
        is_matrix = name.endswith(".weight") and name[: -len(".weight")] in matrices
        tensors[name] = _convert(file.tensor(key), matrix_dtype, other_dtype, is_matrix)
    return _assign(model, tensors, device), config


def _load_vae(file: _SafetensorsFile, names: dict[str, str], config: dict | None, vae_dtype: torch.dtype, device,
              operations) -> tuple[CausalVideoVAE, dict]:
    # Of the five statistics buffers only the two the reference uses are kept.
    names = {key: name for key, name in names.items()
             if not name.startswith("per_channel_statistics.") or name in _STAT_KEYS}
    shapes = {name: file.shape(key) for key, name in names.items()}
    std_key, mean_key = _STAT_KEYS
    if std_key not in shapes:
        raise ValueError(f"'{file.path}': the VAE has no latent statistics ({std_key})")
    no_mean = mean_key not in shapes
    shapes.setdefault(mean_key, shapes[std_key])

    def build(cfg: dict) -> CausalVideoVAE:
        return CausalVideoVAE.from_config(cfg, dtype=vae_dtype, operations=operations)

    if config is None:
        config = matching_config(known_configs.candidate_vae_configs(), build, shapes)
        if config is None:
            raise ValueError(f"'{file.path}' has no VAE config in its metadata and its weights match no released "
                             "LTX-Video VAE (0.9.0, 0.9.1, 0.9.5+)")
    else:
        check_vae_config(file.path, config, shapes)
    with torch.device("meta"):
        model = build(config)
    check_vae_grid(model.temporal_compression, model.spatial_compression, f"'{file.path}'")
    _check_against(model, "VAE", file, shapes, names)
    tensors = {name: _convert(file.tensor(key), vae_dtype, vae_dtype, False) for key, name in names.items()}
    if no_mean:
        tensors[mean_key] = torch.zeros_like(tensors[std_key])
    return _assign(model, tensors, device), config


def load_checkpoint(path: str | Path, *, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
                    operations: Any = None, attention: AttentionFn | None = None,
                    vae_dtype: torch.dtype | None = None) -> LTXCheckpoint:
    """Load the transformer and/or VAE of an LTX-Video safetensors file.

    `dtype` is the storage dtype: float32, bfloat16, float16, or float8_e4m3fn / float8_e5m2 (transformer
    matrices in fp8, everything else and all compute in bfloat16). The VAE is stored in `vae_dtype`
    (default: the transformer's compute dtype; never fp8).
    `operations` is the layer namespace (default `torch.nn`, or our casting layers for fp8);
    `attention` the attention function (default PyTorch SDPA).
    """
    file = _SafetensorsFile(path)
    transformer_names, vae_names, unknown = split_components(file.keys)
    if not transformer_names and not vae_names:
        sample = ", ".join(file.keys[:5]) or "no tensors"
        raise ValueError(f"'{file.path}' is not an LTX-Video checkpoint: no transformer or VAE weights found "
                         f"(keys look like: {sample})")
    if unknown:
        logger.warning("'%s': ignoring %d tensors that belong to neither the transformer nor the VAE (e.g. %s)",
                       file.path, len(unknown), ", ".join(unknown[:3]))
    if operations is None:
        operations = fp8_operations(device) if dtype in FP8_DTYPES else nn
    metadata_config = file.metadata_config()
    checkpoint = LTXCheckpoint(path=file.path, config=dict(metadata_config))
    if transformer_names:
        checkpoint.transformer, checkpoint.config["transformer"] = _load_transformer(
            file, transformer_names, metadata_config.get("transformer"), dtype, device, operations,
            attention or default_attention)
    if vae_names:
        vae_dtype = vae_dtype or _storage_dtypes(dtype)[1]
        if vae_dtype in FP8_DTYPES:
            raise ValueError(f"vae_dtype {vae_dtype} is not supported: the VAE runs in float32, bfloat16 or float16")
        checkpoint.vae, checkpoint.config["vae"] = _load_vae(file, vae_names, metadata_config.get("vae"),
                                                             _storage_dtypes(vae_dtype)[1], device, operations)
    return checkpoint


def load_latent_upsampler(path: str | Path, *, dtype: torch.dtype = torch.float32,
                          device: str | torch.device = "cpu", operations: Any = None) -> LatentUpsampler:
    """Load a latent upsampler file (flat keys, config in the metadata or a released architecture)."""
    file = _SafetensorsFile(path)
    _, compute_dtype = _storage_dtypes(dtype)
    operations = operations or (manual_cast if dtype in FP8_DTYPES else nn)
    shapes = {key: file.shape(key) for key in file.keys}

    def build(cfg: dict) -> LatentUpsampler:
        return LatentUpsampler(cfg, dtype=compute_dtype, compute_dtype=compute_dtype, operations=operations)

    if "initial_conv.weight" not in shapes:
        raise ValueError(f"'{file.path}' is not an LTX-Video latent upsampler (expected keys initial_conv.*, "
                         f"res_blocks.*, upsampler.0.*, final_conv.*; found e.g. {', '.join(file.keys[:5])})")
    config = file.metadata_config()
    if config:
        check_upsampler_config(file.path, config, shapes)
    else:
        config = matching_config(known_configs.candidate_upsampler_configs(), build, shapes)
    if not config:
        raise ValueError(f"'{file.path}' is not an LTX-Video latent upsampler we know: it has no config in its "
                         f"metadata and its weights match neither released 0.9.7 upsampler (spatial, temporal)")
    with torch.device("meta"):
        model = build(config)
    _check_against(model, "latent upsampler", file, shapes, {key: key for key in file.keys})
    tensors = {key: _convert(file.tensor(key), compute_dtype, compute_dtype, False) for key in file.keys}
    return _assign(model, tensors, device)
