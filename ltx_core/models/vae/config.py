"""The official `vae` config dict (checkpoint metadata), validated once so the modules can trust it.

Defaults are those of `ltx_video`'s `CausalVideoAutoencoder.from_config`, which differ from ComfyUI's in places
(e.g. `spatial_padding_mode` is "zeros" when absent). Keys the reference ignores are ignored here too (logged);
values we cannot honour raise a `ValueError` that names the key.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

BlockSpec = tuple[str, dict[str, Any]]

ENCODER_BLOCKS = frozenset({"res_x", "res_x_y", "compress_time", "compress_space", "compress_all", "compress_all_x_y",
                            "compress_all_res", "compress_space_res", "compress_time_res"})
DECODER_BLOCKS = frozenset({"res_x", "res_x_y", "compress_time", "compress_space", "compress_all"})
BLOCK_PARAMS = frozenset({"num_layers", "multiplier", "residual", "inject_noise"})
NORM_LAYERS = frozenset({"group_norm", "pixel_norm", "layer_norm"})
LATENT_LOG_VARS = frozenset({"per_channel", "uniform", "constant", "none"})
PADDING_MODES = frozenset({"zeros", "reflect", "replicate", "circular"})
# Keys the reference reads; anything else it ignores (e.g. `scaling_factor`, `sample_size`, `_diffusers_version`).
_READ_KEYS = frozenset({"_class_name", "dims", "in_channels", "out_channels", "latent_channels", "encoder_blocks",
                        "decoder_blocks", "blocks", "patch_size", "norm_layer", "latent_log_var", "double_z",
                        "use_quant_conv", "normalize_latent_channels", "causal_decoder", "timestep_conditioning",
                        "encoder_base_channels", "decoder_base_channels", "spatial_padding_mode"})


def _fail(key: str, value: Any, why: str) -> ValueError:
    return ValueError(f"unsupported VAE config {key}={value!r}: {why}")


def _blocks(config: Mapping[str, Any], key: str, allowed: frozenset[str]) -> tuple[BlockSpec, ...]:
    raw = config.get(key, config.get("blocks"))
    if not raw:
        raise _fail(key, raw, "a list of [name, params] blocks is required")
    blocks = []
    for index, entry in enumerate(raw):
        name, params = entry
        params = {"num_layers": params} if isinstance(params, int) else dict(params)
        if name not in allowed:
            raise _fail(f"{key}[{index}]", name, f"unknown block; expected one of {sorted(allowed)}")
        unknown = sorted(set(params) - BLOCK_PARAMS)
        if unknown:
            raise _fail(f"{key}[{index}].{unknown[0]}", params[unknown[0]], f"unknown parameter of block {name!r}")
        if name == "res_x" and "num_layers" not in params:
            raise _fail(f"{key}[{index}]", entry, "res_x needs num_layers")
        blocks.append((name, params))
    return tuple(blocks)


def _choice(config: Mapping[str, Any], key: str, default: Any, allowed: frozenset[str]) -> Any:
    value = config.get(key, default)
    if value not in allowed:
        raise _fail(key, value, f"expected one of {sorted(allowed)}")
    return value


@dataclass(frozen=True)
class VAEConfig:
    in_channels: int
    out_channels: int
    latent_channels: int
    patch_size: int
    norm_layer: str
    latent_log_var: str
    use_quant_conv: bool
    causal_decoder: bool
    timestep_conditioning: bool
    encoder_base_channels: int
    decoder_base_channels: int
    spatial_padding_mode: str
    encoder_blocks: tuple[BlockSpec, ...]
    decoder_blocks: tuple[BlockSpec, ...]

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> VAEConfig:
        class_name = config.get("_class_name", "CausalVideoAutoencoder")
        if class_name != "CausalVideoAutoencoder":
            raise _fail("_class_name", class_name, "only CausalVideoAutoencoder is supported")
        dims = config.get("dims")
        if dims != 3:
            raise _fail("dims", dims, "only 3-D (video) VAEs are supported")
        ignored = sorted(set(config) - _READ_KEYS)
        if ignored:
            logger.debug("VAE config keys ignored (the reference ignores them too): %s", ignored)
        if config.get("normalize_latent_channels", False):
            raise _fail("normalize_latent_channels", config["normalize_latent_channels"], "BatchNorm latents")
        default_log_var = "per_channel" if config.get("double_z", True) else "none"
        latent_log_var = _choice(config, "latent_log_var", default_log_var, LATENT_LOG_VARS)
        use_quant_conv = bool(config.get("use_quant_conv", True))
        if use_quant_conv and latent_log_var != "per_channel":
            raise _fail("use_quant_conv", use_quant_conv, f"requires latent_log_var='per_channel', "
                                                          f"got {latent_log_var!r}")
        if "latent_channels" not in config:
            raise _fail("latent_channels", None, "required")
        return cls(
            in_channels=int(config.get("in_channels", 3)),
            out_channels=int(config.get("out_channels", 3)),
            latent_channels=int(config["latent_channels"]),
            patch_size=int(config.get("patch_size", 1)),
            norm_layer=_choice(config, "norm_layer", "group_norm", NORM_LAYERS),
            latent_log_var=latent_log_var,
            use_quant_conv=use_quant_conv,
            causal_decoder=bool(config.get("causal_decoder", False)),
            timestep_conditioning=bool(config.get("timestep_conditioning", False)),
            encoder_base_channels=int(config.get("encoder_base_channels", 128)),
            decoder_base_channels=int(config.get("decoder_base_channels", 128)),
            spatial_padding_mode=_choice(config, "spatial_padding_mode", "zeros", PADDING_MODES),
            encoder_blocks=_blocks(config, "encoder_blocks", ENCODER_BLOCKS),
            decoder_blocks=_blocks(config, "decoder_blocks", DECODER_BLOCKS),
        )

    @property
    def spatial_compression(self) -> int:
        """Pixels per latent along H/W: the patch size times 2 per spatially compressing encoder block.

        Unlike the reference's `spatial_downscale_factor`, `compress_all_x_y` is counted (it does stride 2)."""
        spatial = ("compress_space", "compress_all", "compress_all_x_y", "compress_all_res", "compress_space_res")
        return self.patch_size * 2 ** sum(name in spatial for name, _ in self.encoder_blocks)

    @property
    def temporal_compression(self) -> int:
        temporal = ("compress_time", "compress_all", "compress_all_x_y", "compress_all_res", "compress_time_res")
        return 2 ** sum(name in temporal for name, _ in self.encoder_blocks)
