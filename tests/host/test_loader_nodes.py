"""The loader nodes, run in-process on tiny checkpoints in ComfyUI model folders (host imported in CPU mode)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from support import tiny
from support.comfy_host import MODEL_FOLDERS

pytest_plugins = ["support.comfy_host"]

CKPT = "tiny_ltxv097.safetensors"
CKPT_BF16 = "tiny_ltxv097_bf16.safetensors"
CKPT_FP8 = "tiny_ltxv097_fp8.safetensors"
TRANSFORMER_ONLY = "tiny_ltxv097_transformer_only.safetensors"
VAE_ONLY = "tiny_ltxv097_vae_only.safetensors"
UPSAMPLER = "tiny_spatial_upscaler.safetensors"
NOT_LTX = "some_other_model.safetensors"


@pytest.fixture(scope="module")
def models(tmp_path_factory, comfy_host):
    """Tiny files in temp folders registered with folder_paths; returns the reference configs."""
    root = tmp_path_factory.mktemp("loader_models")
    for key, sub in MODEL_FOLDERS.items():
        (root / sub).mkdir()
        comfy_host.folder_paths.add_model_folder_path(key, str(root / sub))
    tcfg, vcfg, ucfg = tiny.transformer_config(), tiny.vae_config(), tiny.upsampler_config()
    checkpoints, diffusion = root / MODEL_FOLDERS["checkpoints"], root / MODEL_FOLDERS["diffusion_models"]
    tiny.save_single_file(checkpoints / CKPT, transformer=tiny.reference_transformer(tcfg), transformer_config_=tcfg,
                          vae=tiny.reference_vae(vcfg), vae_config_=vcfg)
    tiny.save_single_file(diffusion / CKPT_BF16, transformer=tiny.reference_transformer(tcfg).to(torch.bfloat16),
                          transformer_config_=tcfg, vae=tiny.reference_vae(vcfg).to(torch.bfloat16),
                          vae_config_=vcfg)
    tiny.save_single_file(diffusion / TRANSFORMER_ONLY, transformer=tiny.reference_transformer(tcfg),
                          transformer_config_=tcfg)
    tiny.save_single_file(checkpoints / VAE_ONLY, vae=tiny.reference_vae(vcfg), vae_config_=vcfg)
    # an fp8 file like the official ltxv-13b-0.9.7-*-fp8: block matrices in float8_e4m3fn, the rest as it was
    with safe_open(str(checkpoints / CKPT), framework="pt") as handle:
        metadata = handle.metadata()
    tensors = load_file(str(checkpoints / CKPT))
    tensors = {k: (v.to(torch.float8_e4m3fn) if ".transformer_blocks." in k and v.ndim == 2 else v)
               for k, v in tensors.items()}
    save_file(tensors, str(diffusion / CKPT_FP8), metadata=metadata)
    tiny.save_upsampler(root / MODEL_FOLDERS["latent_upscale_models"] / UPSAMPLER, tiny.reference_upsampler(ucfg),
                        ucfg)
    save_file({"model.layer.weight": torch.zeros(4, 4)}, str(checkpoints / NOT_LTX))
    return {"transformer": tcfg, "vae": vcfg, "upsampler": ucfg}


@pytest.fixture(scope="module")
def loaders(ltx_pack):
    return ltx_pack.nodes.loaders


def load_model(loaders, name, weight_dtype="auto"):
    out = loaders.LTX097ModelLoader.execute(ckpt_name=name, weight_dtype=weight_dtype)
    return out.result


def transformer_inputs(tcfg, seed=21):
    generator = torch.Generator().manual_seed(seed)
    latents = torch.randn(2, 128, 3, 2, 3, generator=generator)
    context = torch.randn(2, 6, tcfg["caption_channels"], generator=generator)
    mask = torch.ones(2, 6, dtype=torch.long)
    mask[0, 3:] = 0
    return latents, context, mask, torch.tensor([0.9, 0.3])


def reference_velocity(tcfg, latents, context, mask, sigma, frame_rate=25.0):
    """The reference transformer on patchified latents, positions as the reference pipeline makes them."""
    from ltx_video.models.autoencoders.vae_encode import latent_to_pixel_coords_from_factors
    from ltx_video.models.transformers.symmetric_patchifier import SymmetricPatchifier

    tokens, latent_coords = SymmetricPatchifier(patch_size=1).patchify(latents)
    positions = latent_to_pixel_coords_from_factors(latent_coords, (8, 32, 32), causal_fix=True).to(torch.float32)
    positions[:, 0] = positions[:, 0] / frame_rate
    with torch.no_grad():
        return tiny.reference_transformer(tcfg)(tokens, indices_grid=positions, encoder_hidden_states=context,
                                                timestep=sigma, encoder_attention_mask=mask, return_dict=False)[0]


def our_velocity(ltx_pack, comfy_host, model, latents, context, mask, sigma, frame_rate=25.0):
    """Run the loaded transformer the way a sampler node will: load through ComfyUI, run on its load device."""
    comfy_host.model_management.load_models_gpu([model.patcher])
    device = model.patcher.load_device
    tokens = latents.flatten(2).transpose(1, 2)  # [B, C, F, H, W] -> [B, F*H*W, C] (patch size 1)
    positions = ltx_pack.ltx_core.latent_positions(latents.shape, frame_rate, device=device)
    with torch.no_grad():
        return model.transformer(tokens.to(device), positions=positions, context=context.to(device),
                                 context_mask=mask.to(device), timestep=sigma.to(device)).float().cpu()


def test_model_loader_wraps_model_patchers(models, loaders, ltx_pack, comfy_host):
    model, vae = load_model(loaders, CKPT)
    patcher_cls, mm = comfy_host.model_patcher.ModelPatcher, comfy_host.model_management
    assert isinstance(model, loaders.LTXModel) and isinstance(vae, loaders.LTXVae)
    assert isinstance(model.patcher, patcher_cls) and isinstance(vae.patcher, patcher_cls)
    assert isinstance(model.transformer, ltx_pack.ltx_core.Transformer3D)
    assert isinstance(vae.vae, ltx_pack.ltx_core.CausalVideoVAE)
    assert model.patcher.load_device == mm.get_torch_device()
    assert model.patcher.offload_device == mm.unet_offload_device()
    assert vae.patcher.load_device == mm.vae_device() and vae.patcher.offload_device == mm.vae_offload_device()
    assert model.path.endswith(CKPT) and vae.path == model.path
    assert model.config["transformer"]["num_layers"] == models["transformer"]["num_layers"]
    assert vae.config["decoder_base_channels"] == models["vae"]["decoder_base_channels"]
    # on the CPU "auto" means float32 storage and compute
    assert model.dtype == model.compute_dtype == torch.float32 and vae.dtype == torch.float32
    # ComfyUI layer ops everywhere (low-VRAM partial loading needs `comfy_cast_weights` on every layer)
    linears = [m for m in model.transformer.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(isinstance(m, comfy_host.ops.disable_weight_init.Linear) for m in linears)
    convs = [m for m in vae.vae.modules() if isinstance(m, torch.nn.Conv3d)]
    assert convs and all(hasattr(m, "comfy_cast_weights") for m in convs)
    assert model.patcher.model_size() > 0


def test_transformer_forward_matches_reference(models, loaders, ltx_pack, comfy_host):
    model, _ = load_model(loaders, CKPT)
    tcfg = models["transformer"]
    latents, context, mask, sigma = transformer_inputs(tcfg)
    expected = reference_velocity(tcfg, latents, context, mask, sigma)
    actual = our_velocity(ltx_pack, comfy_host, model, latents, context, mask, sigma)
    assert expected.abs().max() > 0.1
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)


def test_comfy_attention_adapter_matches_sdpa(ltx_pack, comfy_host):
    common = ltx_pack.nodes.common
    generator = torch.Generator().manual_seed(5)
    q, k, v = (torch.randn(2, 3, n, 16, generator=generator) for n in (10, 7, 7))
    bias = torch.zeros(2, 1, 1, 7)
    bias[1, ..., 5:] = -10000.0
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    actual = common.comfy_attention(q, k, v, attn_mask=bias)
    assert actual.shape == (2, 3, 10, 16)
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(common.comfy_attention(q, k, v),
                               torch.nn.functional.scaled_dot_product_attention(q, k, v), atol=1e-5, rtol=1e-5)


def test_weight_dtype_fp8_gives_fp8_storage(models, loaders, ltx_pack, comfy_host):
    model, vae = load_model(loaders, CKPT, "fp8_e4m3fn")
    assert model.dtype == torch.float8_e4m3fn and model.compute_dtype == torch.bfloat16
    block_linears = [m for m in model.transformer.transformer_blocks.modules() if isinstance(m, torch.nn.Linear)]
    assert block_linears and {m.weight.dtype for m in block_linears} == {torch.float8_e4m3fn}
    assert all(isinstance(m, comfy_host.ops.manual_cast.Linear) for m in block_linears)
    assert vae.dtype == torch.bfloat16  # never fp8
    # it still runs (bf16 compute) and stays close to the fp32 reference
    tcfg = models["transformer"]
    latents, context, mask, sigma = transformer_inputs(tcfg)
    expected = reference_velocity(tcfg, latents, context, mask, sigma)
    actual = our_velocity(ltx_pack, comfy_host, model, latents, context, mask, sigma)
    assert torch.isfinite(actual).all()
    relative = ((actual - expected).norm() / expected.norm()).item()
    assert relative < 0.06, f"fp8 transformer is too far from the reference (relative error {relative:.3f})"


def test_auto_keeps_fp8_files_in_fp8(models, loaders):
    model, _ = load_model(loaders, CKPT_FP8)
    assert model.dtype == torch.float8_e4m3fn
    assert model.transformer.transformer_blocks[0].attn1.to_q.weight.dtype == torch.float8_e4m3fn


def test_auto_on_cpu_upcasts_bf16_files(models, loaders):
    model, vae = load_model(loaders, CKPT_BF16)
    assert model.dtype == torch.float32 and vae.dtype == torch.float32
    model, vae = load_model(loaders, CKPT_BF16, "bf16")
    assert model.dtype == torch.bfloat16 and vae.dtype == torch.bfloat16
    assert model.transformer.transformer_blocks[0].ff.net[2].weight.dtype == torch.bfloat16


def test_transformer_only_file_gives_no_vae(models, loaders):
    model, vae = load_model(loaders, TRANSFORMER_ONLY)
    assert model.transformer is not None and vae is None


def test_vae_only_file_is_refused_with_a_sentence(models, loaders):
    with pytest.raises(ValueError, match=rf"'{VAE_ONLY}' holds an LTX-Video VAE but no transformer"):
        load_model(loaders, VAE_ONLY)


def test_not_an_ltx_checkpoint_gives_a_clear_error(models, loaders):
    with pytest.raises(ValueError, match="is not an LTX-Video checkpoint") as error:
        load_model(loaders, NOT_LTX)
    assert NOT_LTX in str(error.value)


def test_missing_file_gives_a_clear_error(models, loaders):
    with pytest.raises(FileNotFoundError, match="'nope.safetensors' was not found in the ComfyUI model folders"):
        load_model(loaders, "nope.safetensors")


def test_bad_weight_dtype_gives_a_clear_error(models, loaders):
    with pytest.raises(ValueError, match="weight_dtype 'int8' is not one of"):
        load_model(loaders, CKPT, "int8")


def test_model_list_has_only_safetensors_from_both_folders(models, loaders, comfy_host, tmp_path):
    options = loaders.LTX097ModelLoader.GET_SCHEMA().inputs[0].options
    assert {CKPT, CKPT_BF16, CKPT_FP8, NOT_LTX} <= set(options)
    assert UPSAMPLER not in options
    (tmp_path / "old.ckpt").write_bytes(b"not a safetensors file")
    comfy_host.folder_paths.add_model_folder_path("checkpoints", str(tmp_path))
    assert "old.ckpt" in comfy_host.folder_paths.get_filename_list("checkpoints")
    assert "old.ckpt" not in loaders.LTX097ModelLoader.GET_SCHEMA().inputs[0].options


def test_upsampler_loader_matches_reference(models, loaders, ltx_pack, comfy_host):
    (upsampler,) = loaders.LTX097UpsamplerLoader.execute(upscale_model_name=UPSAMPLER, dtype="auto").result
    assert isinstance(upsampler, loaders.LTXUpsampler)
    assert isinstance(upsampler.patcher, comfy_host.model_patcher.ModelPatcher)
    assert isinstance(upsampler.upsampler, ltx_pack.ltx_core.LatentUpsampler)
    assert upsampler.dtype == torch.float32
    assert upsampler.patcher.load_device == comfy_host.model_management.vae_device()
    latents = torch.randn(1, 128, 2, 3, 4, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        expected = tiny.reference_upsampler(models["upsampler"])(latents)
        comfy_host.model_management.load_models_gpu([upsampler.patcher])
        actual = upsampler.upsampler(latents.to(upsampler.patcher.load_device)).float().cpu()
    assert actual.shape == (1, 128, 2, 6, 8)
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)


def test_upsampler_loader_refuses_a_checkpoint(models, loaders, comfy_host, tmp_path):
    folder = tmp_path / "upscale_models"
    folder.mkdir()
    save_file({"model.diffusion_model.proj_out.weight": torch.zeros(2, 2)}, str(folder / "wrong.safetensors"),
              metadata={"config": json.dumps({"transformer": {}})})
    comfy_host.folder_paths.add_model_folder_path("upscale_models", str(folder))
    with pytest.raises(ValueError, match="is not an LTX-Video latent upsampler"):
        loaders.LTX097UpsamplerLoader.execute(upscale_model_name="wrong.safetensors", dtype="auto")
