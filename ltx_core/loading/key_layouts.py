"""Checkpoint key layouts: find the transformer and VAE tensors in a file and name them the official way.

Accepted layouts: the official single file (`model.diffusion_model.*`, `vae.*`), ComfyUI files
(the same, plus `text_encoders.*`, or bare / `diffusion_model.`-prefixed transformer keys in
`diffusion_models/`), separate transformer or VAE files, and diffusers names (`proj_in`, `time_embed`,
`norm_q`, `resnets`, `mid_block`, `latents_mean`, ...).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

TRANSFORMER_PREFIXES = ("model.diffusion_model.", "diffusion_model.", "transformer.", "model.")
VAE_PREFIXES = ("vae.", "first_stage_model.")
IGNORED_PREFIXES = ("text_encoders.", "cond_stage_model.", "conditioner.")

_TRANSFORMER_ROOTS = ("transformer_blocks.", "patchify_proj.", "adaln_single.", "caption_projection.", "proj_out.",
                      "scale_shift_table", "proj_in.", "time_embed.")
_VAE_ROOTS = ("encoder.", "decoder.", "per_channel_statistics.", "latents_mean", "latents_std")

def _strip(key: str, prefixes: Iterable[str]) -> str | None:
    for prefix in prefixes:
        if key.startswith(prefix):
            return key[len(prefix):]
    return None


def _is_transformer_key(name: str) -> bool:
    return name.startswith(_TRANSFORMER_ROOTS)


def _is_vae_key(name: str) -> bool:
    return name.startswith(_VAE_ROOTS)


def split_components(keys: Iterable[str]) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """Map file keys to official transformer / VAE names; return (transformer, vae, unrecognised keys)."""
    transformer: dict[str, str] = {}
    vae: dict[str, str] = {}
    unknown: list[str] = []
    for key in keys:
        if key.startswith(IGNORED_PREFIXES):
            continue
        name = _strip(key, VAE_PREFIXES)
        if name is not None and _is_vae_key(name):
            vae[key] = name
            continue
        name = _strip(key, TRANSFORMER_PREFIXES)
        if name is not None and _is_transformer_key(name):
            transformer[key] = name
        elif _is_transformer_key(key):
            transformer[key] = key
        elif _is_vae_key(key):
            vae[key] = key
        else:
            unknown.append(key)
    if any(n.startswith(("proj_in.", "time_embed.")) for n in transformer.values()):
        transformer = {k: diffusers_to_official_transformer(n) for k, n in transformer.items()}
    if any(".resnets." in n or ".mid_block." in n or n.startswith("latents_") for n in vae.values()):
        vae = {k: diffusers_to_official_vae(n) for k, n in vae.items()}
    return transformer, vae, unknown


def diffusers_to_official_transformer(name: str) -> str:
    for diffusers, official in (("proj_in.", "patchify_proj."), ("time_embed.", "adaln_single.")):
        if name.startswith(diffusers):
            name = official + name[len(diffusers):]
    return name.replace(".norm_q.", ".q_norm.").replace(".norm_k.", ".k_norm.")


# diffusers' 0.9.5+ VAE groups blocks (`down_blocks.i` + `downsamplers.0`, `mid_block`); the official file numbers
# every block in sequence. Encoder: block i -> 2i, its downsampler -> 2i+1, mid -> 8. Decoder: mid -> 0,
# upsampler of block j -> 2j+1, block j -> 2j+2.
_ENCODER_SAMPLER = re.compile(r"^encoder\.down_blocks\.(\d+)\.downsamplers\.0\.(.*)$")
_ENCODER_BLOCK = re.compile(r"^encoder\.down_blocks\.(\d+)\.(.*)$")
_DECODER_SAMPLER = re.compile(r"^decoder\.up_blocks\.(\d+)\.upsamplers\.0\.(.*)$")
_DECODER_BLOCK = re.compile(r"^decoder\.up_blocks\.(\d+)\.(.*)$")
_ENCODER_MID_INDEX = 8


def diffusers_to_official_vae(name: str) -> str:
    if name == "latents_mean":
        return "per_channel_statistics.mean-of-means"
    if name == "latents_std":
        return "per_channel_statistics.std-of-means"
    if m := _ENCODER_SAMPLER.match(name):
        name = f"encoder.down_blocks.{2 * int(m[1]) + 1}.{m[2]}"
    elif m := _ENCODER_BLOCK.match(name):
        name = f"encoder.down_blocks.{2 * int(m[1])}.{m[2]}"
    elif name.startswith("encoder.mid_block."):
        name = f"encoder.down_blocks.{_ENCODER_MID_INDEX}." + name[len("encoder.mid_block."):]
    elif m := _DECODER_SAMPLER.match(name):
        name = f"decoder.up_blocks.{2 * int(m[1]) + 1}.{m[2]}"
    elif m := _DECODER_BLOCK.match(name):
        name = f"decoder.up_blocks.{2 * int(m[1]) + 2}.{m[2]}"
    elif name.startswith("decoder.mid_block."):
        name = "decoder.up_blocks.0." + name[len("decoder.mid_block."):]
    elif name.startswith("decoder.time_embedder."):
        name = "decoder.last_time_embedder." + name[len("decoder.time_embedder."):]
    elif name == "decoder.scale_shift_table":
        name = "decoder.last_scale_shift_table"
    return (name.replace(".resnets.", ".res_blocks.").replace(".conv_shortcut.conv.", ".conv_shortcut.")
            .replace(".norm3.", ".norm3.norm."))
