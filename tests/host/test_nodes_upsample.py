"""The Latent Upsample node on tiny models, in process: the temporal upscaler after the Sampler gives 2N - 1 frames
at twice the frame rate through Decode, equal to `ltx_core.upsample_video` on the same latents; a second Sampler
refines them (its `latent` input), equal to `ltx_core.refine_video`."""

from __future__ import annotations

import pytest
import torch

from support import tiny
from support.comfy_host import MODEL_FOLDERS
from support.nodes_kit import load_models, node_module, write_models

pytest_plugins = ["support.comfy_host"]

TEMPORAL = "nodes_tiny_temporal_upscaler.safetensors"


@pytest.fixture(scope="module")
def models(tmp_path_factory, comfy_host, ltx_pack):
    root = tmp_path_factory.mktemp("upsample_models")
    write_models(root, comfy_host.folder_paths)
    config = tiny.upsampler_config(spatial_upsample=False, temporal_upsample=True)
    tiny.save_upsampler(root / MODEL_FOLDERS["latent_upscale_models"] / TEMPORAL, tiny.reference_upsampler(config),
                        config)
    models = load_models()
    (models.temporal,) = node_module("loaders").LTX097UpsamplerLoader.execute(upscale_model_name=TEMPORAL).result
    return models


def test_temporal_upsample_doubles_the_frame_rate_and_the_sampler_refines_it(models, ltx_pack):
    positive, negative = node_module("text").LTX097TextEncode.execute(clip=models.clip, prompt="A fox in the snow",
                                                                      negative_prompt="blurry").result
    (latent,) = node_module("sampler").LTX097Sampler.execute(
        model=models.model, vae=models.vae, positive=positive, negative=negative, recipe="0.9.6 2B distilled",
        width=96, height=64, num_frames=17, frame_rate=24.0, steps=1, seed=3).result
    (upsampled,) = node_module("upsample").LTX097LatentUpsample.execute(samples=latent, upsampler=models.temporal,
                                                                       vae=models.vae).result
    expected = ltx_pack.ltx_core.upsample_video(models.vae.vae, models.temporal.upsampler, latent["ltx097"])
    assert upsampled["samples"].shape == (1, 128, 5, 2, 3)
    assert torch.equal(upsampled["samples"], expected.latents.to(upsampled["samples"].device))
    frames, frame_rate = node_module("decode").LTX097Decode.execute(samples=upsampled, vae=models.vae).result
    assert frames.shape == (33, 64, 96, 3) and frame_rate == 48.0

    # Sampler → Latent Upsample (temporal) → Sampler (refine) → Decode
    def refine(denoise):
        (refined,) = node_module("sampler").LTX097Sampler.execute(
            model=models.model, vae=models.vae, positive=positive, negative=negative,
            recipe="0.9.7 distilled multi-scale", width=768, height=512, num_frames=97, frame_rate=25.0, steps=30,
            seed=4, latent=upsampled, denoise=denoise).result
        return refined

    refined = refine(1.0)
    text = node_module("text")
    context, mask = text.prompt_context(positive, "positive")
    negative_context, negative_mask = text.prompt_context(negative, "negative")
    direct = ltx_pack.ltx_core.refine_video(
        node_module("sampler").checkpoint_of(models.model, models.vae), expected, context=context, context_mask=mask,
        negative_context=negative_context, negative_context_mask=negative_mask, seed=4, recipe="0.9.7-distilled")
    assert torch.equal(refined["samples"], direct.latents.to(refined["samples"].device))
    assert (refined["samples"] - upsampled["samples"]).abs().max() > 1e-3
    assert (refine(0.8)["samples"] - refined["samples"]).abs().max() > 1e-3  # the strength reaches ltx_core
    frames, frame_rate = node_module("decode").LTX097Decode.execute(samples=refined, vae=models.vae).result
    assert frames.shape == (33, 64, 96, 3) and frame_rate == 48.0


def test_upsample_refuses_latents_not_from_the_sampler(models):
    with pytest.raises(ValueError, match="not the LATENT of an LTX-Video 0.9.7 Sampler"):
        node_module("upsample").LTX097LatentUpsample.execute(samples={"samples": torch.zeros(1, 128, 2, 2, 2)},
                                                             upsampler=models.temporal, vae=models.vae)
