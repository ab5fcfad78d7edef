"""Configs of the released LTX-Video architectures, for files that carry no `config` metadata.

The official files embed their config; ComfyUI-saved and diffusers single files do not. We then pick the released
architecture whose parameter names and shapes match the file exactly, or say that the file is not one we know.
"""

from __future__ import annotations

import copy

_RES = "res_x"


def _decoder(layers: list[int], noise: list[bool]) -> list:
    blocks: list = []
    for i, (n, inject) in enumerate(zip(layers, noise)):
        if i:
            blocks.append(["compress_all", {"residual": True, "multiplier": 2}])
        blocks.append([_RES, {"num_layers": n, "inject_noise": inject}])
    return blocks


_VAE_COMMON = {
    "_class_name": "CausalVideoAutoencoder", "dims": 3, "in_channels": 3, "out_channels": 3, "latent_channels": 128,
    "scaling_factor": 1.0, "norm_layer": "pixel_norm", "patch_size": 4, "latent_log_var": "uniform",
    "use_quant_conv": False, "causal_decoder": False,
}

VAE_CONFIGS = {
    "0.9.0": {**_VAE_COMMON, "blocks": [
        [_RES, 4], ["compress_all", 1], ["res_x_y", 1], [_RES, 3], ["compress_all", 1], ["res_x_y", 1],
        [_RES, 3], ["compress_all", 1], [_RES, 3], [_RES, 4]]},
    "0.9.1": {**_VAE_COMMON, "timestep_conditioning": True,
              "encoder_blocks": [
                  [_RES, {"num_layers": 4}], ["compress_all", {}], ["res_x_y", 1], [_RES, {"num_layers": 3}],
                  ["compress_all", {}], ["res_x_y", 1], [_RES, {"num_layers": 3}], ["compress_all", {}],
                  [_RES, {"num_layers": 3}], [_RES, {"num_layers": 4}]],
              "decoder_blocks": _decoder([5, 6, 7, 8], [True, True, True, False])},
    "0.9.5+": {**_VAE_COMMON, "timestep_conditioning": True,
               "encoder_blocks": [
                   [_RES, {"num_layers": 4}], ["compress_space_res", {"multiplier": 2}], [_RES, {"num_layers": 6}],
                   ["compress_time_res", {"multiplier": 2}], [_RES, {"num_layers": 6}],
                   ["compress_all_res", {"multiplier": 2}], [_RES, {"num_layers": 2}],
                   ["compress_all_res", {"multiplier": 2}], [_RES, {"num_layers": 2}]],
               "decoder_blocks": _decoder([5, 5, 5, 5], [False] * 4)},
}

UPSAMPLER_CONFIGS = {
    "spatial-0.9.7": {"_class_name": "LatentUpsampler", "in_channels": 128, "mid_channels": 512,
                      "num_blocks_per_stage": 4, "dims": 3, "spatial_upsample": True, "temporal_upsample": False},
    "temporal-0.9.7": {"_class_name": "LatentUpsampler", "in_channels": 128, "mid_channels": 512,
                       "num_blocks_per_stage": 4, "dims": 3, "spatial_upsample": False, "temporal_upsample": True},
}

_TRANSFORMER_BASE = {
    "_class_name": "Transformer3DModel", "activation_fn": "gelu-approximate", "attention_bias": True,
    "caption_channels": 4096, "in_channels": 128, "out_channels": 128, "norm_elementwise_affine": False,
    "norm_eps": 1e-6, "num_attention_heads": 32, "qk_norm": "rms_norm", "standardization_norm": "rms_norm",
    "positional_embedding_type": "rope", "positional_embedding_theta": 10000.0,
    "positional_embedding_max_pos": [20, 2048, 2048], "timestep_scale_multiplier": 1000,
    "causal_temporal_positioning": True,
}


def candidate_vae_configs() -> dict[str, dict]:
    return copy.deepcopy(VAE_CONFIGS)


def candidate_upsampler_configs() -> dict[str, dict]:
    return copy.deepcopy(UPSAMPLER_CONFIGS)


def transformer_config_from_shapes(shapes: dict[str, tuple[int, ...]]) -> dict | None:
    """A released transformer's config (13B: 48×4096, 2B: 28×2048; 32 heads) read off the tensor shapes."""
    weight = shapes.get("patchify_proj.weight")
    if weight is None:
        return None
    dim = weight[0]
    layers = len({k.split(".")[1] for k in shapes if k.startswith("transformer_blocks.")})
    if dim not in (2048, 4096):
        return None
    return {**_TRANSFORMER_BASE, "num_layers": layers, "attention_head_dim": dim // 32, "cross_attention_dim": dim}
