"""The same tiny checkpoint loads in ComfyUI's own LTXV classes; this records where ComfyUI and the reference agree.

ComfyUI 0.3.75 ships its own LTX-Video model (`comfy/ldm/lightricks`). These tests load one official-layout tiny
checkpoint into ComfyUI's `LTXVModel` (config detected the way ComfyUI detects it) and `VideoVAE`, and into the
reference `ltx_video` modules, and assert the facts this pack relies on, so that a ComfyUI change shows up here:

1. transformer: ComfyUI and the reference agree to float32 rounding (max |Δ| ≤ 1e-5 on outputs of size ~1;
   typically ~1e-6);
2. VAE decoder: when the config has no `spatial_padding_mode`, ComfyUI pads spatially with "reflect" and the
   reference with "zeros", so their decodes differ; with `spatial_padding_mode: "zeros"` they agree (≤ 1e-5);
3. ComfyUI's `VideoVAE` ignores `encoder_base_channels` / `decoder_base_channels` (always 128), which is why the
   VAE here is built with 128 base channels and a short block list.
"""

from __future__ import annotations

import copy
import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from support import tiny
from support.comfy_host import import_host

TRANSFORMER_TOLERANCE = 1e-5
VAE_TOLERANCE = 1e-5
PADDING_DIFFERENCE = 1e-3  # reflect vs zeros padding moves the border pixels by far more than this


def native_vae_config(**overrides) -> dict:
    """A 0.9.7-style VAE small enough for CPU tests that ComfyUI's VideoVAE can also build (128 base channels)."""
    config = tiny.vae_config(
        base_channels=128,
        encoder_blocks=[["res_x", {"num_layers": 1}]],
        decoder_blocks=[["res_x", {"num_layers": 1, "inject_noise": False}],
                        ["compress_all", {"residual": True, "multiplier": 2}],
                        ["res_x", {"num_layers": 1, "inject_noise": False}]],
    )
    config.update(overrides)
    return config


@pytest.fixture(scope="module")
def host():
    host = import_host()
    import comfy.ldm.lightricks.model
    import comfy.ldm.lightricks.vae.causal_video_autoencoder
    import comfy.model_detection

    host.lightricks = comfy.ldm.lightricks
    host.model_detection = comfy.model_detection
    return host


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """One tiny official-layout single file: (path, state dict, metadata, transformer config, vae config)."""
    tcfg, vcfg = tiny.transformer_config(), native_vae_config()
    assert "spatial_padding_mode" not in vcfg
    path = tmp_path_factory.mktemp("native") / "ltxv_tiny_native.safetensors"
    tiny.save_single_file(path, transformer=tiny.reference_transformer(tcfg), transformer_config_=tcfg,
                          vae=tiny.reference_vae(vcfg), vae_config_=vcfg)
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    return path, load_file(str(path)), metadata, tcfg, vcfg


def strip(state_dict: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}


def comfy_transformer(host, state_dict: dict, metadata: dict):
    """ComfyUI's LTXVModel, configured by ComfyUI's own detection (shapes + the file's metadata config)."""
    prefix = "model.diffusion_model."
    unet_config = host.model_detection.detect_unet_config(state_dict, prefix, metadata=metadata)
    assert unet_config is not None and unet_config["image_model"] == "ltxv"
    model = host.lightricks.model.LTXVModel(**unet_config, dtype=torch.float32, device="cpu",
                                            operations=host.ops.disable_weight_init)
    model.load_state_dict(strip(state_dict, prefix), strict=True)
    return model.eval()


def comfy_vae(host, state_dict: dict, config: dict):
    vae = host.lightricks.vae.causal_video_autoencoder.VideoVAE(config=copy.deepcopy(config))
    vae.load_state_dict(strip(state_dict, "vae."), strict=True)
    return vae.eval()


def reference_transformer_output(transformer, latents, sigma, context, mask, frame_rate):
    """The reference pipeline's transformer call: patchify, causal pixel coordinates, time in seconds."""
    from ltx_video.models.autoencoders.vae_encode import latent_to_pixel_coords_from_factors
    from ltx_video.models.transformers.symmetric_patchifier import SymmetricPatchifier

    patchifier = SymmetricPatchifier(patch_size=1)
    tokens, latent_coords = patchifier.patchify(latents)
    pixel_coords = latent_to_pixel_coords_from_factors(latent_coords, (8, 32, 32), causal_fix=True)
    positions = pixel_coords.to(torch.float32)
    positions[:, 0] = positions[:, 0] * (1.0 / frame_rate)
    out = transformer(tokens, indices_grid=positions, encoder_hidden_states=context, timestep=sigma,
                      encoder_attention_mask=mask, return_dict=False)[0]
    _, _, frames, height, width = latents.shape
    return patchifier.unpatchify(out, output_height=height, output_width=width, out_channels=latents.shape[1]
                                 ).reshape(latents.shape)


def test_transformer_matches_reference(host, checkpoint, record_property):
    _, state_dict, metadata, tcfg, _ = checkpoint
    comfy_model = comfy_transformer(host, state_dict, metadata)
    reference = tiny.reference_transformer(tcfg)

    generator = torch.Generator().manual_seed(11)
    latents = torch.randn(2, 128, 3, 2, 3, generator=generator)
    context = torch.randn(2, 7, tcfg["caption_channels"], generator=generator)
    mask = torch.ones(2, 7, dtype=torch.long)
    mask[1, 4:] = 0  # padded prompt tokens in the second sample
    sigma = torch.tensor([0.7, 0.25])
    frame_rate = 24.0

    with torch.no_grad():
        expected = reference_transformer_output(reference, latents, sigma, context, mask, frame_rate)
        actual = comfy_model(latents.clone(), sigma, context, mask, frame_rate=frame_rate)
    diff = (actual - expected).abs().max().item()
    record_property("transformer_max_abs_diff", diff)
    assert actual.shape == latents.shape
    assert expected.abs().max() > 0.1  # a real signal, not two zero tensors agreeing
    assert diff <= TRANSFORMER_TOLERANCE, (
        f"ComfyUI's LTXVModel and the reference transformer no longer agree: max |Δ| = {diff:.3g} "
        f"(tolerance {TRANSFORMER_TOLERANCE})")


def _decode_both(host, state_dict, comfy_config, reference_config):
    reference = tiny.reference_vae(reference_config)
    native = comfy_vae(host, state_dict, comfy_config)
    generator = torch.Generator().manual_seed(12)
    latents = torch.randn(1, 128, 2, 3, 4, generator=generator)  # un-normalised latents
    timestep = torch.tensor([0.05])
    with torch.no_grad():
        expected = reference.decoder(latents, target_shape=(1, 3, 9, 96, 128), timestep=timestep)
        actual = native.decoder(latents, timestep=timestep)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    return native, (actual - expected).abs().max().item()


def test_vae_decoder_padding_defaults_differ(host, checkpoint, record_property):
    """No `spatial_padding_mode` in the config: ComfyUI's decoder reflects, the reference pads with zeros."""
    _, state_dict, metadata, _, vcfg = checkpoint
    file_vae_config = json.loads(metadata["config"])["vae"]
    assert "spatial_padding_mode" not in file_vae_config
    native, diff = _decode_both(host, state_dict, file_vae_config, vcfg)
    record_property("vae_decoder_max_abs_diff_default_padding", diff)
    padding_modes = {m.padding_mode for m in native.decoder.modules() if isinstance(m, torch.nn.Conv3d)}
    assert padding_modes == {"reflect"}, f"ComfyUI's decoder convolutions now pad with {padding_modes}"
    assert diff > PADDING_DIFFERENCE, (
        f"ComfyUI's VAE decoder now matches the reference without spatial_padding_mode (max |Δ| = {diff:.3g}); "
        "its default padding changed")


def test_vae_decoder_agrees_with_explicit_zeros_padding(host, checkpoint, record_property):
    """With `spatial_padding_mode: "zeros"` in the config, ComfyUI's decoder equals the reference."""
    _, state_dict, _, _, vcfg = checkpoint
    native, diff = _decode_both(host, state_dict, {**vcfg, "spatial_padding_mode": "zeros"}, vcfg)
    record_property("vae_decoder_max_abs_diff_zeros_padding", diff)
    assert {m.padding_mode for m in native.decoder.modules() if isinstance(m, torch.nn.Conv3d)} == {"zeros"}
    assert diff <= VAE_TOLERANCE, (
        f"ComfyUI's VAE decoder with zeros padding no longer matches the reference: max |Δ| = {diff:.3g}")


def test_comfy_vae_ignores_base_channels(host):
    """ComfyUI builds LTX VAEs with 128 base channels whatever the config says (the reference honours it)."""
    config = tiny.vae_config(base_channels=8)
    from ltx_video.models.autoencoders.causal_video_autoencoder import CausalVideoAutoencoder

    with torch.device("meta"):
        native = host.lightricks.vae.causal_video_autoencoder.VideoVAE(config=copy.deepcopy(config))
        reference = CausalVideoAutoencoder.from_config(copy.deepcopy(config))
    # three 2× channel steps in the decoder: 8·8 = 64 channels in the reference, 128·8 = 1024 in ComfyUI
    assert reference.decoder.conv_in.conv.out_channels == 64
    assert native.decoder.conv_in.conv.out_channels == 1024
