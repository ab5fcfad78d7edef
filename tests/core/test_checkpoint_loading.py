"""Checkpoint layouts, configs, dtypes and the errors users see when a file is not what we expect."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from ltx_core import latent_positions, load_checkpoint
from ltx_core.loading import known_configs
from ltx_core.loading.checkpoint import matching_config
from ltx_core.models.transformer import Transformer3D
from ltx_core.models.vae import CausalVideoVAE
from support import tiny


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    tconfig, vconfig = tiny.transformer_config(), tiny.vae_config()
    path = tmp_path_factory.mktemp("official") / "ltxv-tiny.safetensors"
    tiny.save_single_file(path, transformer=tiny.reference_transformer(tconfig), transformer_config_=tconfig,
                          vae=tiny.reference_vae(vconfig), vae_config_=vconfig)
    return path, tconfig, vconfig


def _velocity(transformer, dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    tokens = torch.randn(1, 12, 128, generator=g)
    context = torch.randn(1, 5, 64, generator=g)
    with torch.no_grad():
        return transformer(tokens.to(dtype), positions=latent_positions((1, 128, 2, 2, 3), 25.0),
                           context=context.to(dtype), context_mask=torch.ones(1, 5), timestep=torch.tensor([0.6]))


def _rewrite(src, dst, rename=lambda k: k, keep=lambda k: True, metadata=True, extra=None):
    tensors = load_file(str(src))
    from safetensors import safe_open

    with safe_open(str(src), "pt") as f:
        meta = f.metadata()
    out = {rename(k): v for k, v in tensors.items() if keep(k)}
    out.update(extra or {})
    save_file(out, str(dst), metadata=meta if metadata else None)
    return dst


def test_official_single_file(official):
    path, tconfig, vconfig = official
    ckpt = load_checkpoint(path)
    assert isinstance(ckpt.transformer, Transformer3D) and isinstance(ckpt.vae, CausalVideoVAE)
    assert ckpt.config["transformer"]["num_layers"] == tconfig["num_layers"]
    assert ckpt.config["vae"]["latent_channels"] == 128 and "scheduler" in ckpt.config
    assert all(p.dtype == torch.float32 and p.device.type == "cpu" for p in ckpt.transformer.parameters())


def test_comfyui_layouts_load_the_same_weights(official, tmp_path):
    path, _, _ = official
    expected = load_checkpoint(path).transformer.state_dict()
    bare = _rewrite(path, tmp_path / "bare.safetensors", rename=lambda k: k.replace("model.diffusion_model.", ""),
                    keep=lambda k: k.startswith("model.diffusion_model."))
    prefixed = _rewrite(path, tmp_path / "dm.safetensors", rename=lambda k: k.replace("model.", "", 1),
                        keep=lambda k: k.startswith("model.diffusion_model."))
    with_te = _rewrite(path, tmp_path / "te.safetensors", extra={"text_encoders.t5xxl.x.weight": torch.zeros(2)})
    for file in (bare, prefixed, with_te):
        weights = load_checkpoint(file).transformer.state_dict()
        assert weights.keys() == expected.keys(), file.name
        assert all(torch.equal(weights[k], expected[k]) for k in expected), file.name
    assert load_checkpoint(bare).vae is None and load_checkpoint(with_te).vae is not None


def test_separate_vae_file(official, tmp_path):
    path, _, _ = official
    vae_only = _rewrite(path, tmp_path / "vae.safetensors", rename=lambda k: k[len("vae."):],
                        keep=lambda k: k.startswith("vae."))
    ckpt = load_checkpoint(vae_only)
    assert ckpt.transformer is None
    full = load_checkpoint(path).vae
    for (name, a), (_, b) in zip(sorted(ckpt.vae.state_dict().items()), sorted(full.state_dict().items())):
        assert torch.equal(a, b), name


def test_diffusers_names(official, tmp_path):
    """Files renamed by diffusers' own converters load to the same weights."""
    from diffusers.loaders.single_file_utils import (
        convert_ltx_transformer_checkpoint_to_diffusers,
        convert_ltx_vae_checkpoint_to_diffusers,
    )

    path, _, _ = official
    tensors = load_file(str(path))
    transformer_sd = convert_ltx_transformer_checkpoint_to_diffusers(
        {k: v for k, v in tensors.items() if k.startswith("model.diffusion_model.")})
    vae_tensors = {k: v for k, v in tensors.items() if k.startswith("vae.")}
    # diffusers picks its 0.9.5+ rename table by the real encoder width (2048); show it that width, then put the
    # tiny tensor back (conv_out keeps its name in that table).
    conv_out = vae_tensors["vae.encoder.conv_out.conv.weight"]
    vae_tensors["vae.encoder.conv_out.conv.weight"] = torch.empty(1, 2048, 1, 1, 1)
    vae_sd = convert_ltx_vae_checkpoint_to_diffusers(vae_tensors)
    vae_sd["encoder.conv_out.conv.weight"] = conv_out
    assert "proj_in.weight" in transformer_sd and "latents_mean" in vae_sd
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    save_file(transformer_sd, str(tmp_path / "t.safetensors"), metadata=meta)
    save_file(vae_sd, str(tmp_path / "v.safetensors"), metadata=meta)
    reference = load_checkpoint(path)
    ours_t = load_checkpoint(tmp_path / "t.safetensors").transformer.state_dict()
    assert all(torch.equal(ours_t[k], v) for k, v in reference.transformer.state_dict().items())
    ours = load_checkpoint(tmp_path / "v.safetensors").vae.state_dict()
    for name, value in reference.vae.state_dict().items():
        assert torch.equal(ours[name], value), name


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_dtypes(official, dtype):
    ckpt = load_checkpoint(official[0], dtype=dtype)
    assert {p.dtype for p in ckpt.transformer.parameters()} == {dtype}
    assert {p.dtype for p in ckpt.vae.parameters()} == {dtype}
    assert _velocity(ckpt.transformer, dtype).dtype == dtype


def test_separate_vae_dtype_and_sft_suffix(official, tmp_path):
    sft = tmp_path / "model.sft"
    sft.write_bytes(official[0].read_bytes())
    ckpt = load_checkpoint(sft, dtype=torch.bfloat16, vae_dtype=torch.float32)
    assert {p.dtype for p in ckpt.transformer.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in ckpt.vae.parameters()} == {torch.float32}
    with pytest.raises(ValueError, match="vae_dtype"):
        load_checkpoint(official[0], vae_dtype=torch.float8_e4m3fn)


@pytest.mark.parametrize("dtype", [torch.float8_e4m3fn, torch.float8_e5m2])
def test_fp8_storage_bf16_compute(official, dtype):
    ckpt = load_checkpoint(official[0], dtype=dtype)
    linear_weights = [m.weight for m in ckpt.transformer.modules() if isinstance(m, torch.nn.Linear)]
    assert linear_weights and all(w.dtype == dtype for w in linear_weights)
    others = [p for n, p in ckpt.transformer.named_parameters() if p.dtype != dtype]
    assert others and all(p.dtype == torch.bfloat16 for p in others)
    assert {p.dtype for p in ckpt.vae.parameters()} == {torch.bfloat16}
    out = _velocity(ckpt.transformer, torch.bfloat16)
    assert out.dtype == torch.bfloat16
    full = _velocity(load_checkpoint(official[0]).transformer)
    relative = (out.float() - full).norm() / full.norm()
    assert relative < (0.1 if dtype == torch.float8_e4m3fn else 0.2)


def test_missing_and_unexpected_keys_are_named(official, tmp_path):
    path, _, _ = official
    victim = "model.diffusion_model.transformer_blocks.1.attn2.to_k.weight"
    missing = _rewrite(path, tmp_path / "missing.safetensors", keep=lambda k: k != victim)
    with pytest.raises(ValueError, match=r"missing .*transformer_blocks\.1\.attn2\.to_k\.weight"):
        load_checkpoint(missing)
    extra = _rewrite(path, tmp_path / "extra.safetensors",
                     extra={"model.diffusion_model.transformer_blocks.7.attn1.to_q.weight": torch.zeros(64, 64)})
    with pytest.raises(ValueError, match=r"unexpected .*transformer_blocks\.7\.attn1\.to_q\.weight"):
        load_checkpoint(extra)


def test_not_a_checkpoint(tmp_path):
    other = tmp_path / "sdxl.safetensors"
    save_file({"conditioner.embedders.0.weight": torch.zeros(2), "unet.conv_in.weight": torch.zeros(2)}, str(other))
    with pytest.raises(ValueError, match="not an LTX-Video checkpoint"):
        load_checkpoint(other)
    pickle = tmp_path / "model.ckpt"
    pickle.write_bytes(b"\x80\x04")
    with pytest.raises(ValueError, match="only safetensors"):
        load_checkpoint(pickle)
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"<html>404</html>")
    with pytest.raises(ValueError, match=r"broken\.safetensors' is a web page \(HTML\), not a safetensors file"):
        load_checkpoint(broken)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "absent.safetensors")


def test_unknown_architecture_without_config(official, tmp_path):
    no_config = _rewrite(official[0], tmp_path / "nometa.safetensors", metadata=False)
    with pytest.raises(ValueError, match="no transformer config"):
        load_checkpoint(no_config)


def test_bad_config_value_is_named(official, tmp_path):
    path, tconfig, vconfig = official
    bad = dict(tconfig, adaptive_norm="mystery")
    tensors = load_file(str(path))
    save_file(tensors, str(tmp_path / "bad.safetensors"),
              metadata={"config": json.dumps({"transformer": bad, "vae": vconfig})})
    with pytest.raises(ValueError, match="adaptive_norm"):
        load_checkpoint(tmp_path / "bad.safetensors")


def test_released_architectures_are_recognised_from_shapes():
    """Files without metadata (ComfyUI saves, diffusers single files) map to the released configs by shape."""
    for name, config in known_configs.candidate_vae_configs().items():
        with torch.device("meta"):
            shapes = {k: tuple(v.shape) for k, v in CausalVideoVAE.from_config(config).state_dict().items()}
        match = matching_config(known_configs.candidate_vae_configs(), CausalVideoVAE.from_config, shapes)
        assert match == config, name
    for layers, dim in ((48, 4096), (28, 2048)):
        config = known_configs.transformer_config_from_shapes(
            {"patchify_proj.weight": (dim, 128), **{f"transformer_blocks.{i}.x": (1,) for i in range(layers)}})
        assert config["num_layers"] == layers and config["attention_head_dim"] * 32 == dim
