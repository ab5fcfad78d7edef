"""A file's config checked against the tensors the same file holds, before any module is built.

Building a model costs time and memory in proportion to its config (a forged `num_layers=20000` builds 20000
blocks, even on the meta device), so every number that sets how much is built is checked first: within sane
bounds, and equal to what the file's tensor names and shapes say. Each refusal names the file, the config field,
its value, and what the file has. After the build, `check_weights` compares every name and shape (header only)
before a tensor is read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..arguments import is_whole
from ..models.vae.config import VAEConfig

MAX_LAYERS = 256
"""Blocks of a transformer, residual layers of a VAE block, residual blocks of an upsampler stage."""
MAX_DIM = 16384
"""Channels and feature widths (the 13B transformer's inner dim is 4096)."""
MAX_VAE_BLOCKS = 64

Shapes = Mapping[str, tuple[int, ...]]


def _dims(shape) -> str:
    return "×".join(str(s) for s in shape)


def _refuse(path: str, section: str, field: str, value: Any, why: str) -> ValueError:
    return ValueError(f"'{path}': {section} config {field}={value!r} {why}")


def _bounded(path: str, section: str, field: str, value: Any, high: int, in_file: str = "") -> int:
    if not is_whole(value, 1, high):
        raise _refuse(path, section, field, value, f"is not allowed (a whole number in 1–{high})" + in_file)
    return value


def _int_field(path: str, section: str, config: Mapping[str, Any], field: str, high: int,
               default: int | None = None) -> int:
    return _bounded(path, section, field, config.get(field, default), high)


def _indices(shapes: Shapes, prefix: str) -> list[int]:
    """The distinct N of the names `<prefix>N.…`, sorted."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    return sorted({int(m[1]) for name in shapes if (m := pattern.match(name))})


def _count_text(indices: list[int], prefix: str, what: str) -> str:
    if not indices:
        return f"no {what} ({prefix}N)"
    names = f"{prefix}{indices[0]}–{indices[-1]}" if len(indices) > 1 else f"{prefix}{indices[0]}"
    return f"{len(indices)} {what} ({names})"


def _check_count(path: str, section: str, field: str, value: Any, high: int, shapes: Shapes, prefix: str,
                 what: str) -> int:
    """A count within bounds and not larger than the file's (what would be built for nothing); gaps and extra
    blocks in the file are named key by key by `check_weights` once the (small) model is built."""
    indices = _indices(shapes, prefix)
    in_file = f"; the file has {_count_text(indices, prefix, what)}"
    value = _bounded(path, section, field, value, high, in_file)
    if value > len(indices):
        raise _refuse(path, section, field, value, "does not match the file" + in_file)
    return value


def _check_shape(path: str, section: str, fields: str, shapes: Shapes, name: str, expected: tuple[int, ...]) -> None:
    found = shapes.get(name)
    if found is not None and tuple(found[:len(expected)]) != expected:
        raise ValueError(f"'{path}': {section} config {fields} does not match the file: {name} is {_dims(found)}, "
                         f"the config needs {_dims(expected)}")


def _section(path: str, section: str, config: Any) -> Mapping[str, Any]:
    if not isinstance(config, Mapping):
        raise ValueError(f"'{path}': the {section} config in the file's metadata is not a JSON object "
                         f"({type(config).__name__})")
    return config


def check_transformer_config(path: str, config: Any, shapes: Shapes) -> None:
    """Bounds and file agreement of the numbers that size a transformer: blocks, heads × head dim, channels."""
    section = "transformer"
    config = _section(path, section, config)
    heads = _int_field(path, section, config, "num_attention_heads", MAX_DIM)
    head_dim = _int_field(path, section, config, "attention_head_dim", MAX_DIM)
    inner = heads * head_dim
    if inner > MAX_DIM:
        raise _refuse(path, section, "num_attention_heads × attention_head_dim", f"{heads} × {head_dim} = {inner}",
                      f"is not allowed (the inner dim is at most {MAX_DIM})")
    channels = _int_field(path, section, config, "in_channels", MAX_DIM)
    out_channels = _int_field(path, section, config, "out_channels", MAX_DIM, channels) \
        if config.get("out_channels") is not None else channels
    caption = _int_field(path, section, config, "caption_channels", MAX_DIM)
    cross = _int_field(path, section, config, "cross_attention_dim", MAX_DIM, inner) \
        if config.get("cross_attention_dim") is not None else inner
    _check_count(path, section, "num_layers", config.get("num_layers"), MAX_LAYERS, shapes, "transformer_blocks.",
                 "transformer blocks")
    heads_text = f"num_attention_heads × attention_head_dim ({heads} × {head_dim} = {inner})"
    _check_shape(path, section, f"{heads_text} and in_channels ({channels})", shapes, "patchify_proj.weight",
                 (inner, channels))
    _check_shape(path, section, f"out_channels ({out_channels}) and {heads_text}", shapes, "proj_out.weight",
                 (out_channels, inner))
    _check_shape(path, section, f"{heads_text} and caption_channels ({caption})", shapes,
                 "caption_projection.linear_1.weight", (inner, caption))
    _check_shape(path, section, f"{heads_text} and cross_attention_dim ({cross})", shapes,
                 "transformer_blocks.0.attn2.to_k.weight", (inner, cross))


def _check_vae_blocks(path: str, blocks, field: str, shapes: Shapes, prefix: str, reverse: bool) -> None:
    section = "VAE"
    _check_count(path, section, f"len({field})", len(blocks), MAX_VAE_BLOCKS, shapes, prefix, "blocks")
    for index, (name, params) in enumerate(blocks):
        if name != "res_x":  # resamplers (and 0.9.0's res_x_y) hold no stack of residual layers
            continue
        where = f"{field}[{len(blocks) - 1 - index if reverse else index}].num_layers"
        # the file numbers blocks in the order they run
        _check_count(path, section, where, params.get("num_layers"), MAX_LAYERS, shapes,
                     f"{prefix}{index}.res_blocks.", "residual layers in that block")


def check_vae_config(path: str, config: Any, shapes: Shapes) -> None:
    """Bounds and file agreement of the VAE's block lists: one file block per config block, each with as many
    residual layers as its `num_layers` says."""
    section = "VAE"
    config = _section(path, section, config)
    for field in ("encoder_base_channels", "decoder_base_channels", "latent_channels", "in_channels",
                  "out_channels", "patch_size"):
        if config.get(field) is not None:
            _int_field(path, section, config, field, MAX_DIM)
    try:
        parsed = VAEConfig.from_dict(config)
    except (TypeError, ValueError, AttributeError) as error:
        raise ValueError(f"'{path}': {error}") from error
    _check_vae_blocks(path, parsed.encoder_blocks, "encoder_blocks", shapes, "encoder.down_blocks.", reverse=False)
    # the decoder runs its blocks in reverse: up_blocks.0 is the config's last block
    decoder = tuple(reversed(parsed.decoder_blocks))
    _check_vae_blocks(path, decoder, "decoder_blocks", shapes, "decoder.up_blocks.", reverse=True)


def check_upsampler_config(path: str, config: Any, shapes: Shapes) -> None:
    """Bounds and file agreement of the latent upsampler's channels and residual blocks per stage."""
    section = "latent upsampler"
    config = _section(path, section, config)
    channels = _int_field(path, section, config, "in_channels", MAX_DIM, 4)
    mid = _int_field(path, section, config, "mid_channels", MAX_DIM, 128)
    if mid % 32:
        raise _refuse(path, section, "mid_channels", mid, "is not allowed (a multiple of 32: its GroupNorm has 32 "
                                                          "groups)")
    blocks = config.get("num_blocks_per_stage", 4)
    _check_count(path, section, "num_blocks_per_stage", blocks, MAX_LAYERS, shapes, "res_blocks.", "residual blocks")
    _check_count(path, section, "num_blocks_per_stage", blocks, MAX_LAYERS, shapes, "post_upsample_res_blocks.",
                 "residual blocks after the upsampling")
    _check_shape(path, section, f"mid_channels ({mid}) and in_channels ({channels})", shapes, "initial_conv.weight",
                 (mid, channels))


def check_weights(path: str, what: str, expected: Shapes, found: Shapes, file_keys: Mapping[str, str]) -> None:
    """Every tensor the built model needs is in the file with the same shape, and nothing else is (header only).

    `file_keys` maps a model name to the file's key for it, so that the message names what the file calls it.
    """
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = [name for name in sorted(set(expected) & set(found)) if tuple(expected[name]) != tuple(found[name])]
    parts = []
    if wrong:
        examples = "; ".join(f"{file_keys.get(n, n)} is {_dims(found[n])} in the file, the config needs "
                             f"{_dims(expected[n])}" for n in wrong[:3])
        parts.append(f"{len(wrong)} with another shape ({examples})")
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:5])})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(file_keys.get(n, n) for n in unexpected[:5])})")
    if parts:
        raise ValueError(f"'{path}': the {what} weights do not match its config: {'; '.join(parts)}")
