"""Parity of `ltx_core.models.vae.CausalVideoVAE` with the official `ltx_video` CausalVideoAutoencoder (fp32, ≤ 1e-5).

Both sides load the same official-layout single-file checkpoint with random weights (see `tiny.py`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from ltx_core.models.vae import CausalVideoVAE
from support.tiny import latent_statistics, reference_vae, save_single_file, vae_config

ATOL = 1e-5


def load_ours(path: Path) -> CausalVideoVAE:
    with safe_open(str(path), framework="pt") as f:
        config = json.loads(f.metadata()["config"])["vae"]
        state = {key[len("vae."):]: f.get_tensor(key) for key in f.keys() if key.startswith("vae.")}
    model = CausalVideoVAE.from_config(config)
    model.load_state_dict(state, strict=True)
    return model.eval()


def build_pair(directory: Path, config: dict, seed: int = 1):
    from ltx_video.models.autoencoders.causal_video_autoencoder import CausalVideoAutoencoder

    path = save_single_file(directory / "vae.safetensors", vae=reference_vae(config, seed), vae_config_=config,
                            statistics=latent_statistics(config["latent_channels"]))
    return CausalVideoAutoencoder.from_pretrained(path).eval(), load_ours(path), path


def variant_config(**overrides) -> dict:
    """Blocks and options the 0.9.7 layout does not use: widening res blocks, plain strided convs, quant convs."""
    config = vae_config(
        base_channels=32, latent_channels=32, patch_size=2, timestep_conditioning=False,
        encoder_blocks=[["res_x_y", {"multiplier": 2}], ["compress_time", {}], ["compress_space", {}],
                        ["compress_all_x_y", {"multiplier": 1}], ["compress_all", {}], ["res_x", 1]],
        decoder_blocks=[["res_x_y", {"multiplier": 2}], ["compress_time", {}], ["compress_space", {}],
                        ["compress_all", {"residual": False}], ["res_x", {"num_layers": 1, "inject_noise": True}]])
    config.update(overrides)
    return config


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> dict:
    return {name: build_pair(tmp_path_factory.mktemp(name), vae_config(timestep_conditioning=conditioned))
            for name, conditioned in (("timestep", True), ("no_timestep", False))}


@pytest.fixture(params=["timestep", "no_timestep"])
def pair(request, pairs):
    """Decoder tests run with and without timestep conditioning; the encoders of both are alike."""
    return pairs[request.param]


@pytest.fixture
def encoder_pair(pairs):
    return pairs["timestep"]


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()


def video(frames: int, height: int = 64, width: int = 96, seed: int = 0) -> torch.Tensor:
    return torch.rand(1, 3, frames, height, width, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def latents(batch: int = 2, channels: int = 128, frames: int = 4, seed: int = 4) -> torch.Tensor:
    return torch.randn(batch, channels, frames, 2, 3, generator=torch.Generator().manual_seed(seed))


def reference_decode(ref, z: torch.Tensor, timestep) -> torch.Tensor:
    from ltx_video.models.autoencoders.vae_encode import vae_decode

    return vae_decode(z, ref, is_video=True, vae_per_channel_normalize=True, timestep=timestep)


@pytest.mark.parametrize("frames", [9, 17])
@torch.no_grad()
def test_encode_mean(encoder_pair, frames):
    from ltx_video.models.autoencoders.vae_encode import normalize_latents

    ref, ours, _ = encoder_pair
    x = video(frames)
    expected = normalize_latents(ref.encode(x).latent_dist.mode(), ref, vae_per_channel_normalize=True)
    got = ours.encode(x)
    assert got.shape == (1, 128, (frames - 1) // 8 + 1, 2, 3)
    assert max_diff(got, expected) <= ATOL


@torch.no_grad()
def test_encode_sample_uses_generator(encoder_pair):
    from ltx_video.models.autoencoders.vae_encode import normalize_latents, vae_encode

    ref, ours, _ = encoder_pair
    x = video(9, seed=1)
    posterior = ref.encode(x).latent_dist
    expected = normalize_latents(posterior.sample(generator=torch.Generator().manual_seed(5)), ref, True)
    got = ours.encode(x, sample=True, generator=torch.Generator().manual_seed(5))
    assert max_diff(got, expected) <= ATOL
    assert max_diff(got, ours.encode(x)) > 1e-3  # the sample really differs from the mean
    # Without a generator both sides draw from the global RNG, so the official `vae_encode` path is reproduced.
    torch.manual_seed(11)
    expected = vae_encode(x, ref, vae_per_channel_normalize=True)
    torch.manual_seed(11)
    assert max_diff(ours.encode(x, sample=True), expected) <= ATOL


@torch.no_grad()
def test_decode(pair):
    ref, ours, _ = pair
    z = latents()
    timestep = torch.tensor([0.05, 0.4])
    conditioned = ours.decoder.timestep_conditioning
    expected = reference_decode(ref, z, timestep if conditioned else None)
    got = ours.decode(z, timestep=timestep, noise_scale=0.0)
    assert got.shape == (2, 3, 25, 64, 96)
    assert max_diff(got, expected) <= ATOL
    if conditioned:  # the timestep matters, per sample
        assert max_diff(ours.decode(z, timestep=0.05, noise_scale=0.0), got) > 1e-4


@torch.no_grad()
def test_decode_noise(pair):
    ref, ours, _ = pair
    z = latents(seed=6)
    got = ours.decode(z, timestep=0.05, noise_scale=0.025, generator=torch.Generator().manual_seed(9))
    if not ours.decoder.timestep_conditioning:  # the official pipeline only adds noise for conditioned decoders
        assert max_diff(got, reference_decode(ref, z, None)) <= ATOL
        return
    noise = torch.randn(z.shape, generator=torch.Generator().manual_seed(9))
    scale = torch.tensor([0.025] * z.shape[0])[:, None, None, None, None]
    expected = reference_decode(ref, z * (1 - scale) + noise * scale, torch.tensor([0.05] * z.shape[0]))
    assert max_diff(got, expected) <= ATOL
    assert max_diff(got, ours.decode(z, timestep=0.05, noise_scale=0.0)) > 1e-4


@pytest.mark.parametrize("chunk", [1, 2])
@torch.no_grad()
def test_chunked_decode_equals_one_shot(pair, chunk):
    _, ours, _ = pair
    z = latents(batch=1, frames=5, seed=8)
    one_shot = ours.decode(z, noise_scale=0.0, chunk_frames=5)
    calls = []
    chunked = ours.decode(z, noise_scale=0.0, chunk_frames=chunk, cancel=lambda: calls.append(1))
    assert len(calls) == math.ceil(5 / chunk)
    assert max_diff(chunked, one_shot) <= ATOL


@torch.no_grad()
def test_cancel_stops_decoding(pair):
    _, ours, _ = pair
    calls = []

    def cancel():
        calls.append(1)
        raise InterruptedError

    with pytest.raises(InterruptedError):
        ours.decode(latents(frames=3), chunk_frames=1, cancel=cancel)
    assert len(calls) == 1


@torch.no_grad()
def test_spatial_padding_mode_from_config(tmp_path):
    config = vae_config(spatial_padding_mode="reflect")
    ref, ours, _ = build_pair(tmp_path, config)
    assert ours.encoder.conv_in.conv.padding_mode == "reflect"
    x, z, timestep = video(9), latents(batch=1, frames=3), torch.tensor([0.05])
    from ltx_video.models.autoencoders.vae_encode import normalize_latents

    assert max_diff(ours.encode(x), normalize_latents(ref.encode(x).latent_dist.mode(), ref, True)) <= ATOL
    decoded = ours.decode(z, timestep=timestep, noise_scale=0.0)
    assert max_diff(decoded, reference_decode(ref, z, timestep)) <= ATOL
    zeros = CausalVideoVAE.from_config(vae_config())
    zeros.load_state_dict(ours.state_dict())
    assert max_diff(zeros.eval().decode(z, timestep=timestep, noise_scale=0.0), decoded) > 1e-4


@pytest.mark.parametrize("overrides", [
    dict(norm_layer="group_norm", latent_log_var="per_channel", use_quant_conv=True, causal_decoder=True),
    dict(norm_layer="layer_norm", latent_log_var="constant", spatial_padding_mode="replicate"),
], ids=["group_norm-quant_conv-causal", "layer_norm-constant-replicate"])
@torch.no_grad()
def test_variant_blocks(tmp_path, overrides):
    from ltx_video.models.autoencoders.vae_encode import normalize_latents

    ref, ours, _ = build_pair(tmp_path, variant_config(**overrides))
    x = video(9, 32, 48)
    posterior = ref.encode(x).latent_dist
    assert max_diff(ours.encode(x), normalize_latents(posterior.mode(), ref, True)) <= ATOL
    expected = normalize_latents(posterior.sample(generator=torch.Generator().manual_seed(2)), ref, True)
    assert max_diff(ours.encode(x, sample=True, generator=torch.Generator().manual_seed(2)), expected) <= ATOL
    z = latents(batch=1, channels=32, frames=3)
    torch.manual_seed(3)  # decoder noise injection draws from the global RNG on both sides
    expected = reference_decode(ref, z, None)
    torch.manual_seed(3)
    got = ours.decode(z)
    assert got.shape == (1, 3, 9, 16, 24)  # this variant upsamples less than it downsamples
    assert max_diff(got, expected) <= ATOL
    chunked = ours.decode(z, chunk_frames=1, generator=torch.Generator().manual_seed(4))
    assert max_diff(chunked, ours.decode(z, generator=torch.Generator().manual_seed(4))) <= ATOL


def test_meta_construction_and_assign(pair):
    _, ours, _ = pair
    config = vae_config(timestep_conditioning=ours.decoder.timestep_conditioning)
    with torch.device("meta"):
        model = CausalVideoVAE.from_config(config)
    assert next(model.parameters()).is_meta
    model.load_state_dict(ours.state_dict(), assign=True)
    z = latents(frames=2)
    with torch.no_grad():
        assert max_diff(model.eval().decode(z, noise_scale=0.0), ours.decode(z, noise_scale=0.0)) == 0.0


def test_properties(pair):
    _, ours, _ = pair
    assert (ours.spatial_compression, ours.temporal_compression, ours.latent_channels) == (32, 8, 128)


def _official_state(path: Path) -> dict[str, torch.Tensor]:
    with safe_open(str(path), framework="pt") as f:
        return {key[len("vae."):]: f.get_tensor(key) for key in f.keys()}


def test_strict_loading(pair):
    _, ours, path = pair
    state = _official_state(path)
    model = CausalVideoVAE.from_config(vae_config(timestep_conditioning=ours.decoder.timestep_conditioning))
    missing = dict(state)
    del missing["decoder.conv_out.conv.bias"]
    with pytest.raises(RuntimeError, match=r"decoder\.conv_out\.conv\.bias"):
        model.load_state_dict(missing)
    with pytest.raises(RuntimeError, match=r"encoder\.bogus\.weight"):
        model.load_state_dict({**state, "encoder.bogus.weight": torch.zeros(1)})
    with pytest.raises(RuntimeError, match=r"per_channel_statistics\.std-of-means"):
        model.load_state_dict({k: v for k, v in state.items() if k != "per_channel_statistics.std-of-means"})
    stats = {k for k in state if k.startswith("per_channel_statistics.")}
    assert set(model.state_dict()) == set(state) - stats | {"per_channel_statistics.std-of-means",
                                                             "per_channel_statistics.mean-of-means"}


@pytest.mark.parametrize("key, value, named", [
    ("encoder_blocks", [["res_x", {"num_layers": 1}], ["compress_sideways", {}]], "compress_sideways"),
    ("decoder_blocks", [["compress_all_res", {"multiplier": 2}]], "compress_all_res"),
    ("decoder_blocks", [["res_x", {"num_layers": 1, "attention_head_dim": 8}]], "attention_head_dim"),
    ("norm_layer", "batch_norm", "batch_norm"),
    ("latent_log_var", "per_pixel", "per_pixel"),
    ("spatial_padding_mode", "mirror", "mirror"),
    ("dims", 2, "2"),
])
def test_unsupported_config_values_raise(key, value, named):
    with pytest.raises(ValueError, match=key) as error:
        CausalVideoVAE.from_config(vae_config(**{key: value}))
    assert named in str(error.value)
