"""Tiny random LTX-Video models in the official checkpoint layout, built with the reference package.

Every parity test builds the reference module from a config (`from_config`), fills it with random weights,
saves it exactly like the official single-file checkpoints (`model.diffusion_model.*`, `vae.*`, JSON `config`
in the safetensors metadata) and then loads the same file on both sides.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

HEADS = 2


def transformer_config(num_layers: int = 2, heads: int = HEADS, head_dim: int = 32, caption_channels: int = 64,
                       **overrides) -> dict:
    """Config of a 0.9.7-style transformer; 2×32 gives an inner dim (64) that is not a multiple of 6."""
    config = {
        "_class_name": "Transformer3DModel",
        "activation_fn": "gelu-approximate",
        "attention_bias": True,
        "attention_head_dim": head_dim,
        "attention_type": "default",
        "caption_channels": caption_channels,
        "cross_attention_dim": heads * head_dim,
        "double_self_attention": False,
        "dropout": 0.0,
        "in_channels": 128,
        "norm_elementwise_affine": False,
        "norm_eps": 1e-06,
        "norm_num_groups": 32,
        "num_attention_heads": heads,
        "num_embeds_ada_norm": 1000,
        "num_layers": num_layers,
        "num_vector_embeds": None,
        "only_cross_attention": False,
        "out_channels": 128,
        "project_to_2d_pos": True,
        "upcast_attention": False,
        "use_linear_projection": False,
        "qk_norm": "rms_norm",
        "standardization_norm": "rms_norm",
        "positional_embedding_type": "rope",
        "positional_embedding_theta": 10000.0,
        "positional_embedding_max_pos": [20, 2048, 2048],
        "timestep_scale_multiplier": 1000,
        "causal_temporal_positioning": True,
    }
    config.update(overrides)
    return config


def vae_config(base_channels: int = 8, layers: int = 1, timestep_conditioning: bool = True, **overrides) -> dict:
    """Config of a 0.9.5/0.9.7-style causal VAE (same block layout, fewer layers and channels)."""
    config = {
        "_class_name": "CausalVideoAutoencoder",
        "dims": 3,
        "in_channels": 3,
        "out_channels": 3,
        "latent_channels": 128,
        "encoder_blocks": [
            ["res_x", {"num_layers": layers}],
            ["compress_space_res", {"multiplier": 2}],
            ["res_x", {"num_layers": layers}],
            ["compress_time_res", {"multiplier": 2}],
            ["res_x", {"num_layers": layers}],
            ["compress_all_res", {"multiplier": 2}],
            ["res_x", {"num_layers": layers}],
            ["compress_all_res", {"multiplier": 2}],
            ["res_x", {"num_layers": layers}],
        ],
        "decoder_blocks": [
            ["res_x", {"num_layers": layers, "inject_noise": False}],
            ["compress_all", {"residual": True, "multiplier": 2}],
            ["res_x", {"num_layers": layers, "inject_noise": False}],
            ["compress_all", {"residual": True, "multiplier": 2}],
            ["res_x", {"num_layers": layers, "inject_noise": False}],
            ["compress_all", {"residual": True, "multiplier": 2}],
            ["res_x", {"num_layers": layers, "inject_noise": False}],
        ],
        "scaling_factor": 1.0,
        "norm_layer": "pixel_norm",
        "patch_size": 4,
        "latent_log_var": "uniform",
        "use_quant_conv": False,
        "causal_decoder": False,
        "timestep_conditioning": timestep_conditioning,
        "encoder_base_channels": base_channels,
        "decoder_base_channels": base_channels,
    }
    config.update(overrides)
    return config


def upsampler_config(mid_channels: int = 32, num_blocks_per_stage: int = 1, **overrides) -> dict:
    config = {
        "_class_name": "LatentUpsampler",
        "in_channels": 128,
        "mid_channels": mid_channels,
        "num_blocks_per_stage": num_blocks_per_stage,
        "dims": 3,
        "spatial_upsample": True,
        "temporal_upsample": False,
    }
    config.update(overrides)
    return config


def scheduler_config() -> dict:
    return {"_class_name": "RectifiedFlowScheduler", "num_train_timesteps": 1000, "shifting": None,
            "base_resolution": None, "sampler": "LinearQuadratic"}


def randomize_(module: torch.nn.Module, seed: int, scale: float = 0.2, bias_scale: float | None = None,
               norm_weight: float = 0.0) -> torch.nn.Module:
    """Fill every parameter with seeded noise so that zero-initialised tables and gates matter too.

    Matrices get `scale / sqrt(fan_in)` (1 keeps the signal's size through a layer), vectors `bias_scale` (default
    `scale`) twice over, and the weights of normalisations (RMS norms of q and k) `norm_weight` on top.
    """
    bias_scale = scale if bias_scale is None else bias_scale
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in sorted(module.named_parameters()):
            if name.endswith("timestep_scale_multiplier"):
                param.fill_(1000.0 + float(torch.rand((), generator=generator)) * 10)
                continue
            fan_in = param[0].numel() if param.ndim > 1 else 1
            first = torch.randn(param.shape, generator=generator)
            if param.ndim > 1:
                param.copy_(first * scale / max(fan_in, 1) ** 0.5)
            else:
                second = torch.randn(param.shape, generator=generator)
                param.copy_(first * bias_scale + second * bias_scale
                            + (norm_weight if name.endswith("norm.weight") else 0.0))
    return module


def reference_transformer(config: dict, seed: int = 0, *, responsive: bool = False):
    """The official transformer with seeded random weights.

    `responsive` gives weights that make it respond to its inputs the way a trained model does: matrices keep the
    signal's size (scale 1), biases are small and the q/k norms sharp (weights about 1), so that the prompt (and
    with it CFG and the negative prompt), the timestep, the STG strategy and the token positions (frame rate,
    keyframe frames) move the sampled latents by 0.01–1 and the decoded frames by ≥ 1e-3, what the pipeline and
    node tests need. With the default scale 0.2 the caption projection, cross-attention and RoPE barely reach the
    output (CFG 3 → 1 moves the frames by 5e-5); the LoRA and fp8 tests keep those weights, as their rounding
    thresholds were set on them.
    """
    from ltx_video.models.transformers.transformer3d import Transformer3DModel

    model = Transformer3DModel.from_config(config)
    if responsive:
        return randomize_(model, seed, scale=1.0, bias_scale=0.1, norm_weight=1.0).eval()
    return randomize_(model, seed).eval()


def reference_vae(config: dict, seed: int = 1):
    from ltx_video.models.autoencoders.causal_video_autoencoder import CausalVideoAutoencoder

    return randomize_(CausalVideoAutoencoder.from_config(json.loads(json.dumps(config))), seed).eval()


def latent_statistics(channels: int = 128, seed: int = 2) -> dict[str, torch.Tensor]:
    """The five per-channel statistics buffers the official VAE files carry."""
    generator = torch.Generator().manual_seed(seed)
    std = torch.rand(channels, generator=generator) + 0.5
    mean = torch.randn(channels, generator=generator) * 0.3
    return {
        "std-of-means": std,
        "mean-of-means": mean,
        "mean-of-stds": torch.rand(channels, generator=generator),
        "mean-of-stds_over_std-of-means": torch.rand(channels, generator=generator),
        "channel": torch.arange(channels, dtype=torch.float32),
    }


def save_single_file(path: Path, *, transformer=None, transformer_config_: dict | None = None, vae=None,
                     vae_config_: dict | None = None, statistics: dict | None = None,
                     extra_metadata: dict | None = None, extra_config: dict | None = None) -> Path:
    """Write an official-layout single-file checkpoint (what `ltxv-13b-0.9.7-dev.safetensors` looks like);
    `extra_config` adds top-level keys to the `config` JSON (a distilled file's `allowed_inference_steps`)."""
    tensors: dict[str, torch.Tensor] = {}
    config: dict = {}
    if transformer is not None:
        tensors.update({f"model.diffusion_model.{k}": v for k, v in transformer.state_dict().items()})
        config["transformer"] = transformer_config_
    if vae is not None:
        tensors.update({f"vae.{k}": v for k, v in vae.state_dict().items()})
        stats = statistics if statistics is not None else latent_statistics()
        tensors.update({f"vae.per_channel_statistics.{k}": v for k, v in stats.items()})
        config["vae"] = vae_config_
    config["scheduler"] = scheduler_config()
    config.update(extra_config or {})
    metadata = {"config": json.dumps(config)}
    metadata.update(extra_metadata or {})
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=metadata)
    return path


def reference_upsampler(config: dict, seed: int = 3):
    from ltx_video.models.autoencoders.latent_upsampler import LatentUpsampler

    return randomize_(LatentUpsampler.from_config(config), seed).eval()


def save_upsampler(path: Path, upsampler, config: dict) -> Path:
    save_file({k: v.contiguous() for k, v in upsampler.state_dict().items()}, str(path),
              metadata={"config": json.dumps(config)})
    return path


def save_model_set(folder: Path, *, num_layers: int = 3, heads: int = HEADS, head_dim: int = 32,
                   caption_channels: int = 64, vae_base: int = 8, vae_layers: int = 1, up_mid: int = 32,
                   up_blocks: int = 1) -> tuple[Path, Path]:
    """A checkpoint (transformer + VAE) and a latent upsampler, as the official files: what a generation needs."""
    tconfig = transformer_config(num_layers=num_layers, heads=heads, head_dim=head_dim,
                                 caption_channels=caption_channels)
    vconfig = vae_config(base_channels=vae_base, layers=vae_layers)
    uconfig = upsampler_config(mid_channels=up_mid, num_blocks_per_stage=up_blocks)
    checkpoint = save_single_file(Path(folder) / "ltxv-tiny.safetensors",
                                  transformer=reference_transformer(tconfig, responsive=True),
                                  transformer_config_=tconfig, vae=reference_vae(vconfig), vae_config_=vconfig)
    upsampler = save_upsampler(Path(folder) / "ltxv-tiny-upsampler.safetensors", reference_upsampler(uconfig),
                               uconfig)
    return checkpoint, upsampler
