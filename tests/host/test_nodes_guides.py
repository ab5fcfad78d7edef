"""The Guide node on tiny models, in process: a guide from an IMAGE batch or a core VIDEO reaches `ltx_core`
unchanged and moves the video, bad start frames are refused as sentences, and an IC-LoRA run without a guide logs
a warning naming its file."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
import torch

from support import tiny, tiny_lora
from support.comfy_host import MODEL_FOLDERS
from support.nodes_kit import load_models, node_module, write_models

pytest_plugins = ["support.comfy_host"]

IC_LORA = "ltxv-097-ic-lora-canny-control-comfyui.safetensors"
SIZE = dict(width=96, height=64, num_frames=17, frame_rate=25.0, seed=7)


@pytest.fixture(scope="module")
def models(tmp_path_factory, comfy_host, ltx_pack):
    root = tmp_path_factory.mktemp("guide_models")
    configs = write_models(root, comfy_host.folder_paths)
    loras = root / MODEL_FOLDERS["loras"]
    transformer = tiny.reference_transformer(configs["transformer"])
    tiny_lora.write_lora(loras / IC_LORA, tiny_lora.random_lora(tiny_lora.linear_modules(transformer), seed=3),
                         "comfyui_trainer")
    return load_models()


@pytest.fixture(scope="module")
def prompts(models):
    return node_module("text").LTX097TextEncode.execute(clip=models.clip, prompt="A knight walks in the fog",
                                                        negative_prompt="blurry").result


def _frames(count: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(count, 64, 96, 3, generator=torch.Generator().manual_seed(seed))


def _sample(models, prompts, model=None, conditions=None):
    (latent,) = node_module("sampler").LTX097Sampler.execute(
        model=model or models.model, vae=models.vae, positive=prompts[0], negative=prompts[1],
        recipe="0.9.6 2B distilled", steps=2, conditions=conditions, **SIZE).result
    return latent["samples"]


def test_guide_reaches_ltx_core_unchanged(models, prompts, ltx_pack):
    conditioning = node_module("conditioning")
    guide_frames = _frames(20)
    (items,) = conditioning.LTX097Guide.execute(images=guide_frames, start_frame=0, strength=1.0).result
    (item,) = items
    assert item.guide and item.media.shape[0] == 17 and item.crf == 0  # the first 8k+1 frames, not compressed
    guided = _sample(models, prompts, conditions=items)
    plain = _sample(models, prompts)
    assert guided.shape == plain.shape
    assert (guided - plain).abs().max() > 1e-3

    text = node_module("text")
    context, mask = text.prompt_context(prompts[0], "positive")
    negative, negative_mask = text.prompt_context(prompts[1], "negative")
    checkpoint = SimpleNamespace(transformer=models.model.transformer, vae=models.vae.vae, config=models.model.config)
    core = ltx_pack.ltx_core
    direct = core.sample_video(checkpoint, context=context, context_mask=mask, negative_context=negative,
                               negative_context_mask=negative_mask, recipe=node_module("recipe_choices").recipe_choice(
                                   "0.9.6 2B distilled").recipe, steps=2,
                               conditions=[core.Condition(guide_frames[:17], 0, 1.0, guide=True)], **SIZE)
    assert torch.equal(guided, direct.latents.to(guided.device))


def test_guide_from_a_core_video(models):
    from comfy_api.input_impl import VideoFromComponents
    from comfy_api.util import VideoComponents

    video = VideoFromComponents(VideoComponents(images=_frames(9), frame_rate=25))
    (items,) = node_module("conditioning").LTX097Guide.execute(video=video, start_frame=9, strength=0.5).result
    assert items[0].guide and items[0].start_frame == 9 and items[0].media.shape[0] == 9


@pytest.mark.parametrize("start", [4, 8])
def test_guide_video_start_frames_are_checked(start):
    with pytest.raises(ValueError, match=f"guide at frame {start}: a guide video starts at frame 0 or .*8k\\+1"):
        node_module("conditioning").LTX097Guide.execute(images=_frames(9), start_frame=start)


def test_ic_lora_without_a_guide_warns_naming_the_file(models, prompts, caplog):
    (model,) = node_module("lora").LTX097LoraLoader.execute(model=models.model, lora_name=IC_LORA,
                                                            strength=1.0).result
    with caplog.at_level(logging.WARNING):
        _sample(models, prompts, model=model)
    assert [r for r in caplog.records if IC_LORA in r.getMessage() and "no guide" in r.getMessage()]
    caplog.clear()
    (items,) = node_module("conditioning").LTX097Guide.execute(images=_frames(9)).result
    with caplog.at_level(logging.WARNING):
        _sample(models, prompts, model=model, conditions=items)
    assert not [r for r in caplog.records if "no guide" in r.getMessage()]
