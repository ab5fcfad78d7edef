"""Hostile model files refused early and by name: forged configs (before anything is built), pickles renamed
`.safetensors`, tensors of the wrong shape (before any tensor is read), and weights that turn the latents NaN
(the generation stops at that step instead of decoding a black video)."""

from __future__ import annotations

import copy
import json
import os
import time

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from ltx_core import NonFiniteLatentsError, generate, load_checkpoint, load_latent_upsampler
from support import tiny

FORGED_BUDGET_S = 5.0
"""Generous: the refusal takes milliseconds; building 20000 blocks took ~30 s."""
FORGED_RSS_BYTES = 64 << 20
"""Growth of the process's memory while refusing a forged file (building 20000 blocks on the meta device took
~300 MB, and more blocks take more)."""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad_files")
    checkpoint, upsampler = tiny.save_model_set(folder, num_layers=2)
    return folder, checkpoint, upsampler


def _metadata(path) -> dict:
    with safe_open(str(path), "pt") as handle:
        return dict(handle.metadata() or {})


def _rewrite(src, dst, *, config=None, tensors=None):
    """`src` with its config replaced by `config(old)` and/or its tensors by `tensors(old)`."""
    metadata = _metadata(src)
    if config is not None:
        metadata["config"] = json.dumps(config(json.loads(metadata["config"])))
    weights = load_file(str(src))
    if tensors is not None:
        weights = tensors(weights)
    save_file(weights, str(dst), metadata=metadata)
    return dst


def _forged(section: str, **fields):
    def change(config: dict) -> dict:
        config = copy.deepcopy(config)
        if section:
            config[section].update(fields)
        else:
            config.update(fields)
        return config

    return change


def _rss() -> int:
    """The process's resident memory in bytes (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _refusal(load, path) -> tuple[str, float, int]:
    """The error message of `load(path)`, the seconds it took and how much the process's memory grew meanwhile."""
    rss, start = _rss(), time.perf_counter()
    with pytest.raises(ValueError) as error:
        load(path)
    return str(error.value), time.perf_counter() - start, _rss() - rss


# ------------------------------------------------------------------------------------------------------------------
# Forged configs


def test_forged_num_layers_is_refused_before_anything_is_built(files, tmp_path):
    _, checkpoint, _ = files
    forged = _rewrite(checkpoint, tmp_path / "forged_layers.safetensors",
                      config=_forged("transformer", num_layers=20000))
    message, seconds, grown = _refusal(load_checkpoint, forged)
    assert "forged_layers.safetensors" in message and "num_layers=20000" in message, message
    assert "the file has 2 transformer blocks" in message, message
    assert seconds < FORGED_BUDGET_S and grown < FORGED_RSS_BYTES, (seconds, grown)


def test_num_layers_beyond_the_file_but_within_bounds_is_refused(files, tmp_path):
    _, checkpoint, _ = files
    forged = _rewrite(checkpoint, tmp_path / "more_layers.safetensors", config=_forged("transformer", num_layers=200))
    message, _, grown = _refusal(load_checkpoint, forged)
    assert "num_layers=200 does not match the file" in message and "2 transformer blocks" in message, message
    assert grown < FORGED_RSS_BYTES


@pytest.mark.parametrize("fields, named", [
    ({"attention_head_dim": 1_000_000}, "attention_head_dim=1000000 is not allowed"),
    ({"num_attention_heads": 512, "attention_head_dim": 512}, "512 × 512 = 262144' is not allowed"),
    ({"num_attention_heads": 129, "attention_head_dim": 128}, "129 × 128 = 16512' is not allowed (the inner dim is "
                                                              "at most 16384)"),
    ({"attention_head_dim": 64}, "patchify_proj.weight is 64×128, the config needs 128×128"),
    ({"caption_channels": 4096}, "caption_projection.linear_1.weight is 64×64, the config needs 64×4096"),
    ({"num_layers": "2"}, "num_layers='2' is not allowed"),
])
def test_forged_dims_are_refused_naming_the_field(files, tmp_path, fields, named):
    _, checkpoint, _ = files
    forged = _rewrite(checkpoint, tmp_path / "forged_dims.safetensors", config=_forged("transformer", **fields))
    message, seconds, grown = _refusal(load_checkpoint, forged)
    assert "forged_dims.safetensors" in message and named in message, message
    assert seconds < FORGED_BUDGET_S and grown < FORGED_RSS_BYTES


def test_forged_vae_layers_are_refused(files, tmp_path):
    _, checkpoint, _ = files

    def change(config):
        config = copy.deepcopy(config)
        config["vae"]["decoder_blocks"][0][1]["num_layers"] = 20000
        return config

    forged = _rewrite(checkpoint, tmp_path / "forged_vae.safetensors", config=change)
    message, seconds, grown = _refusal(load_checkpoint, forged)
    assert "VAE config decoder_blocks[0].num_layers=20000" in message, message
    assert "1 residual layers in that block (decoder.up_blocks.6.res_blocks.0)" in message, message
    assert seconds < FORGED_BUDGET_S and grown < FORGED_RSS_BYTES


def test_forged_upsampler_config_is_refused(files, tmp_path):
    _, _, upsampler = files
    forged = _rewrite(upsampler, tmp_path / "forged_up.safetensors", config=_forged("", num_blocks_per_stage=20000))
    message, seconds, grown = _refusal(load_latent_upsampler, forged)
    assert "forged_up.safetensors" in message and "num_blocks_per_stage=20000" in message, message
    assert "the file has 1 residual blocks" in message, message
    assert seconds < FORGED_BUDGET_S and grown < FORGED_RSS_BYTES
    wide = _rewrite(upsampler, tmp_path / "wide_up.safetensors", config=_forged("", mid_channels=8192))
    message, _, _ = _refusal(load_latent_upsampler, wide)
    assert "mid_channels (8192)" in message and "initial_conv.weight is 32×128×3×3×3" in message, message


# ------------------------------------------------------------------------------------------------------------------
# Not safetensors, wrong shapes


@pytest.mark.parametrize("loader", [load_checkpoint, load_latent_upsampler])
def test_pickle_renamed_safetensors_is_named_and_never_loaded(tmp_path, loader):
    path = tmp_path / "renamed_pickle.safetensors"
    torch.save({"model.diffusion_model.patchify_proj.weight": torch.zeros(2, 2)}, str(path))
    with pytest.raises(ValueError) as error:
        loader(path)
    message = str(error.value)
    assert "renamed_pickle.safetensors" in message and "is a pickled PyTorch file" in message, message
    assert "never loaded" in message and "header too large" not in message, message


def test_wrong_shape_tensor_names_the_file_key_and_both_shapes(files, tmp_path):
    _, checkpoint, upsampler = files
    key = "model.diffusion_model.transformer_blocks.1.ff.net.2.weight"

    def narrower(weights):
        weights[key] = weights[key][:, :100].contiguous()
        return weights

    wrong = _rewrite(checkpoint, tmp_path / "wrong_shape.safetensors", tensors=narrower)
    with pytest.raises(ValueError) as error:
        load_checkpoint(wrong)
    message = str(error.value)
    assert "wrong_shape.safetensors" in message and f"{key} is 64×100 in the file, the config needs 64×256" in message
    assert "size mismatch" not in message

    def smaller_conv(weights):
        weights["final_conv.bias"] = weights["final_conv.bias"][:64].contiguous()
        return weights

    wrong_up = _rewrite(upsampler, tmp_path / "wrong_up.safetensors", tensors=smaller_conv)
    with pytest.raises(ValueError, match=r"wrong_up\.safetensors.*final_conv\.bias is 64 in the file, the config "
                                         r"needs 128"):
        load_latent_upsampler(wrong_up)


# ------------------------------------------------------------------------------------------------------------------
# Weights that make the latents NaN


def _prompts():
    g = torch.Generator().manual_seed(0)
    return dict(context=torch.randn(1, 6, 64, generator=g), context_mask=torch.ones(1, 6),
                negative_context=torch.randn(1, 6, 64, generator=g), negative_context_mask=torch.ones(1, 6))


def _generate(checkpoint, upsampler=None, recipe="0.9.6-2b-distilled", **kwargs):
    size = {"width": 64, "height": 64, **kwargs}
    return generate(checkpoint, upsampler=upsampler, **_prompts(), num_frames=9, frame_rate=24.0, seed=1,
                    recipe=recipe, **size)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_nan_weight_in_the_checkpoint_stops_at_the_first_step(files, tmp_path, value):
    _, checkpoint, _ = files
    key = "model.diffusion_model.transformer_blocks.0.ff.net.2.weight"

    def poison(weights):
        weights[key][3, 5] = value
        return weights

    poisoned = load_checkpoint(_rewrite(checkpoint, tmp_path / "poisoned.safetensors", tensors=poison))
    steps = []
    with pytest.raises(NonFiniteLatentsError) as error:
        _generate(poisoned, callback=lambda step, total, latents: steps.append(step))
    message = str(error.value)
    assert "step 1 of 8 (pass 1 of 1" in message and not steps, message
    assert "transformer_blocks.0.ff.net.2.weight" in message and "checkpoint" in message, message


def test_float16_overflow_is_named(files, tmp_path):
    """Weights that are finite in float32 but whose activations overflow float16's 65504."""
    _, checkpoint, _ = files

    def loud(weights):
        for name in ("ff.net.0.proj.weight", "ff.net.2.weight"):
            key = f"model.diffusion_model.transformer_blocks.0.{name}"
            weights[key] = weights[key] * 5000.0  # at most a few hundred: fine in float16
        return weights

    loud_file = _rewrite(checkpoint, tmp_path / "loud.safetensors", tensors=loud)
    _generate(load_checkpoint(loud_file), num_inference_steps=1)  # fine in float32
    with pytest.raises(NonFiniteLatentsError) as error:
        _generate(load_checkpoint(loud_file, dtype=torch.float16), num_inference_steps=1)
    message = str(error.value)
    assert "step 1 of 1" in message and "computes in float16" in message and "float16 overflow" in message
    assert "weights hold NaN" not in message  # the stored weights themselves are finite


def test_nan_in_the_upsampler_stops_between_the_passes(files, tmp_path):
    _, checkpoint, upsampler = files

    def poison(weights):
        weights["final_conv.bias"][0] = float("nan")
        return weights

    with pytest.raises(NonFiniteLatentsError, match=r"latent upsampler's output.* The latent upsampler's weights "
                                                    r"hold NaN/inf values in final_conv\.bias"):
        _generate(load_checkpoint(checkpoint),
                  load_latent_upsampler(_rewrite(upsampler, tmp_path / "nan_up.safetensors", tensors=poison)),
                  recipe="0.9.7-distilled", width=128, height=128)


def test_nan_in_the_vae_stops_the_decode(files, tmp_path):
    _, checkpoint, _ = files

    def poison(weights):
        weights["vae.decoder.conv_out.conv.bias"][0] = float("nan")
        return weights

    with pytest.raises(NonFiniteLatentsError, match=r"the VAE decode .* The VAE's weights hold NaN/inf values in "
                                                    r"decoder\.conv_out\.conv\.bias"):
        _generate(load_checkpoint(_rewrite(checkpoint, tmp_path / "nan_vae.safetensors", tensors=poison)),
                  num_inference_steps=1)


def test_released_architectures_pass_the_config_checks():
    """No false refusals: every released config agrees with the tensors it builds (0.9.0's shared `blocks` list,
    0.9.1 / 0.9.5+ VAEs, both upsamplers, the 13B and 2B transformers)."""
    from ltx_core import LatentUpsampler, Transformer3D
    from ltx_core.loading import known_configs
    from ltx_core.loading.config_checks import check_transformer_config, check_upsampler_config, check_vae_config
    from ltx_core.models.vae import CausalVideoVAE

    def shapes(module) -> dict:
        return {k: tuple(v.shape) for k, v in module.state_dict().items()}

    with torch.device("meta"):
        for config in known_configs.candidate_vae_configs().values():
            check_vae_config("vae", config, shapes(CausalVideoVAE.from_config(config)))
        for config in known_configs.candidate_upsampler_configs().values():
            check_upsampler_config("upsampler", config, shapes(LatentUpsampler(config)))
        for layers, dim in ((48, 4096), (28, 2048)):
            config = known_configs.transformer_config_from_shapes(
                {"patchify_proj.weight": (dim, 128), **{f"transformer_blocks.{i}.x": (1,) for i in range(layers)}})
            check_transformer_config("transformer", config, shapes(Transformer3D(config)))


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_check_finite_stops_on_nan_and_on_either_infinity(value):
    from ltx_core.non_finite import check_finite

    latents = torch.zeros(1, 4, 2, 3, 3)
    check_finite(latents, "step 2 of 8")
    latents[0, 1, 1, 2, 0] = value
    with pytest.raises(NonFiniteLatentsError, match=r"^the latents became NaN or infinite at step 2 of 8; "):
        check_finite(latents, "step 2 of 8")
