"""The sampler and decode nodes on tiny models, in process: every recipe, equality with `ltx_core.generate`,
progress and previews, interruption (and a clean model afterwards), conditions, and errors as sentences."""

from __future__ import annotations

import dataclasses
import importlib
from types import SimpleNamespace

import pytest
import torch

from support.nodes_kit import NUM_LAYERS, TINY_GUIDANCE, load_models, node_module, write_models

pytest_plugins = ["support.comfy_host"]

WIDTH, HEIGHT, FRAMES = 200, 136, 10  # not multiples of 32 / 8k+1: generated padded, cropped back
STEPS = {"0.9.7 dev multi-scale": 3, "0.9.7 distilled multi-scale": 0, "0.9.8 distilled multi-scale": 0,
         "0.9.7 dev single-scale": 3,
         "0.9.6 2B dev": 3, "0.9.6 2B distilled": 3}


@pytest.fixture(scope="module")
def models(tmp_path_factory, comfy_host, ltx_pack):
    write_models(tmp_path_factory.mktemp("node_models"), comfy_host.folder_paths)
    return load_models()


@pytest.fixture(scope="module")
def prompts(models):
    return node_module("text").LTX097TextEncode.execute(clip=models.clip, prompt="A red fox runs through snow",
                                                        negative_prompt="blurry").result


@pytest.fixture
def progress(monkeypatch, comfy_host):
    """Records what the sampler sends to ComfyUI's progress hook (value, total, preview)."""
    import comfy.utils

    calls = []
    monkeypatch.setattr(comfy.utils, "PROGRESS_BAR_HOOK",
                        lambda value, total, preview, node_id=None: calls.append((value, total, preview)))
    yield calls
    comfy_host.model_management.interrupt_current_processing(False)


def run_sampler(models, prompts, recipe="0.9.6 2B distilled", **kwargs):
    arguments = dict(model=models.model, vae=models.vae, positive=prompts[0], negative=prompts[1], recipe=recipe,
                     width=WIDTH, height=HEIGHT, num_frames=FRAMES, frame_rate=25.0, steps=STEPS.get(recipe), seed=7,
                     upsampler=models.upsampler, guidance=TINY_GUIDANCE.get(recipe))
    arguments.update(kwargs)
    (latent,) = node_module("sampler").LTX097Sampler.execute(**arguments).result
    return latent


def run_decode(models, latent, **kwargs):
    return node_module("decode").LTX097Decode.execute(samples=latent, vae=models.vae, **kwargs).result


def generate_directly(ltx_pack, models, prompts, recipe, conditions=(), **overrides):
    """`ltx_core.generate` on the very modules the nodes loaded, with the node's inputs."""
    sampler_node, text = node_module("sampler"), node_module("text")
    choice = node_module("recipe_choices").recipe_choice(recipe)
    context, mask = text.prompt_context(prompts[0], "positive")
    negative, negative_mask = text.prompt_context(prompts[1], "negative")
    checkpoint = SimpleNamespace(transformer=models.model.transformer, vae=models.vae.vae, config=models.model.config)
    return ltx_pack.ltx_core.generate(
        checkpoint, context=context, context_mask=mask, negative_context=negative, negative_context_mask=negative_mask,
        width=WIDTH, height=HEIGHT, num_frames=FRAMES, frame_rate=25.0, seed=7, recipe=choice.recipe,
        steps=STEPS[recipe] or None, conditions=conditions, upsampler=models.upsampler.upsampler,
        **sampler_node.recipe_overrides(choice, TINY_GUIDANCE[recipe]), **overrides)


@pytest.mark.parametrize("recipe", list(STEPS))
def test_every_recipe_gives_exactly_the_requested_video_and_equals_ltx_core(models, prompts, progress, recipe,
                                                                            ltx_pack):
    latent = run_sampler(models, prompts, recipe)
    video = latent["ltx097"]
    assert latent["samples"] is video.latents and latent["samples"].device == torch.device("cpu")
    assert latent["samples"].shape[:3] == (1, 128, 3)  # 10 frames → generated as 17 → 3 latent frames
    frames, frame_rate = run_decode(models, latent)
    assert frames.shape == (FRAMES, HEIGHT, WIDTH, 3) and frame_rate == 25.0
    assert frames.dtype == torch.float32 and 0 <= frames.min() and frames.max() <= 1
    assert torch.equal(frames, generate_directly(ltx_pack, models, prompts, recipe))
    # one progress bar over every step of every pass
    totals = {total for _, total, _ in progress}
    assert len(totals) == 1 and [value for value, _, _ in progress] == list(range(1, totals.pop() + 1))
    if recipe == "0.9.7 distilled multi-scale":
        assert len(progress) == 7 + 3


def test_previews_use_core_ltxv_latent_colours(models, prompts, progress, monkeypatch):
    from comfy.cli_args import LatentPreviewMethod, args

    monkeypatch.setattr(args, "preview_method", LatentPreviewMethod.Latent2RGB)
    run_sampler(models, prompts)
    previews = [preview for _, _, preview in progress]
    assert previews and all(p is not None and p[0] == "JPEG" for p in previews)
    width, height = previews[-1][1].size
    assert (width, height) == ((WIDTH + 31) // 32, (HEIGHT + 31) // 32)


def test_interrupt_stops_and_the_next_run_is_unchanged(models, prompts, progress, comfy_host):
    """An interrupt mid-run raises ComfyUI's InterruptProcessingException; the model is left clean (also a
    LoRA-style patched clone of it) and the next runs give the uninterrupted results."""
    mm = comfy_host.model_management
    recipe = "0.9.6 2B dev"
    expected = run_sampler(models, prompts, recipe)["samples"]
    key = "transformer_blocks.1.ff.net.2.weight"
    patched = models.model.with_patcher(models.model.patcher.clone())
    weight = models.model.transformer.state_dict()[key]
    delta = torch.randn(weight.shape, generator=torch.Generator().manual_seed(1)) * 0.5
    patched.patcher.add_patches({key: (delta,)}, 1.0)
    expected_patched = run_sampler(models, prompts, recipe, model=patched)["samples"]
    assert (expected_patched - expected).abs().max() > 1e-2  # the patch matters
    original = weight.clone()

    for model in (models.model, patched):
        progress.clear()

        def interrupt_after_two_steps(value, total, preview, node_id=None):
            progress.append(value)
            if value == 2:
                mm.interrupt_current_processing(True)

        import comfy.utils

        comfy.utils.PROGRESS_BAR_HOOK = interrupt_after_two_steps
        with pytest.raises(mm.InterruptProcessingException):
            run_sampler(models, prompts, recipe, model=model)
        assert progress == [1, 2] and not mm.processing_interrupted()
        comfy.utils.PROGRESS_BAR_HOOK = None
        assert torch.equal(run_sampler(models, prompts, recipe)["samples"], expected)
        assert torch.equal(models.model.transformer.state_dict()[key], original)
        assert not models.model.patcher.patches
        assert torch.equal(run_sampler(models, prompts, recipe, model=patched)["samples"], expected_patched)


def test_interrupt_during_decode(models, prompts, progress, comfy_host):
    mm = comfy_host.model_management
    latent = run_sampler(models, prompts)
    mm.interrupt_current_processing(True)
    with pytest.raises(mm.InterruptProcessingException):
        run_decode(models, latent, chunk_frames=1)
    frames, _ = run_decode(models, latent, chunk_frames=1)
    torch.testing.assert_close(frames, run_decode(models, latent)[0], atol=1e-5, rtol=0)  # chunks: same result


def test_decode_settings_and_foreign_latents(models, prompts, progress):
    latent = run_sampler(models, prompts)
    default, _ = run_decode(models, latent)
    same, _ = run_decode(models, latent, decode_timestep=0.05, decode_noise_scale=0.025)
    assert torch.equal(default, same)  # the recipe's values (2B distilled: 0.05 / 0.025)
    other, _ = run_decode(models, latent, decode_noise_scale=0.0)
    assert (other - default).abs().max() > 1e-5
    # a LATENT from elsewhere (no crop information) decodes whole: 3 latent frames → 17 frames, ×32 pixels
    frames, frame_rate = run_decode(models, {"samples": latent["samples"]})
    assert frames.shape == (17, latent["samples"].shape[3] * 32, latent["samples"].shape[4] * 32, 3)
    assert frame_rate == 25.0
    with pytest.raises(ValueError, match="not LTX-Video video latents"):
        run_decode(models, {"samples": torch.zeros(1, 4, 8, 8)})


def test_conditions_reach_ltx_core_unchanged(models, prompts, progress, ltx_pack):
    conditioning = node_module("conditioning")
    image = torch.rand(1, 96, 120, 3, generator=torch.Generator().manual_seed(3))
    (items,) = conditioning.LTX097ImageCondition.execute(image=image, start_frame=0, strength=1.0, crf=33).result
    (items,) = conditioning.LTX097ImageCondition.execute(image=image.flip(2), start_frame=-1, strength=0.7, crf=33,
                                                         conditions=items).result
    recipe = "0.9.6 2B distilled"
    frames, _ = run_decode(models, run_sampler(models, prompts, recipe, conditions=items))
    unconditioned, _ = run_decode(models, run_sampler(models, prompts, recipe))
    assert (frames - unconditioned).abs().max() > 1e-3
    Condition = ltx_pack.ltx_core.Condition
    expected = generate_directly(ltx_pack, models, prompts, recipe, crf=33,
                                 conditions=[Condition(image, 0, 1.0), Condition(image.flip(2), FRAMES - 1, 0.7)])
    assert torch.equal(frames, expected)


def test_core_clip_text_encode_conditioning_samples(models, prompts, progress):
    import nodes as core_nodes

    (core_positive,) = core_nodes.CLIPTextEncode().encode(models.clip, "A red fox runs through snow")
    assert core_positive[0][0].shape[1] == 128  # core pads LTXV prompts to 128 tokens, ours to 256
    latent = run_sampler(models, prompts, positive=core_positive)
    assert latent["samples"].shape[:3] == (1, 128, 3)


def test_memory_estimates_are_given_to_comfyui(models, prompts, progress, monkeypatch):
    memory = node_module("memory")
    calls = []
    original = memory.mm.load_models_gpu

    def record(patchers, memory_required=0, **kwargs):
        calls.append((patchers[0], memory_required))
        return original(patchers, memory_required=memory_required, **kwargs)

    monkeypatch.setattr(memory.mm, "load_models_gpu", record)
    (items,) = node_module("conditioning").LTX097ImageCondition.execute(image=torch.rand(1, 64, 64, 3)).result
    latent = run_sampler(models, prompts, "0.9.7 dev multi-scale", conditions=items)
    run_decode(models, latent)
    used = [patcher for patcher, _ in calls]
    assert models.model.patcher in used and models.vae.patcher in used and models.upsampler.patcher in used
    assert all(required > 0 for _, required in calls)


@pytest.mark.parametrize("kwargs,message", [
    ({"recipe": "0.9.7 dev multi-scale", "upsampler": None},
     "needs the spatial latent upsampler: put ltxv-spatial-upscaler-0.9.7.safetensors in "
     "models/latent_upscale_models and connect an LTX-Video 0.9.7 Latent Upsampler Loader"),
    ({"width": 16}, "16×136 is out of range: width and height must lie in 32–8192"),
    ({"num_frames": 0}, "num_frames=0 is out of range"),
    ({"recipe": "0.9.7 dev multi-scale", "width": 32, "height": 32}, "too small for a multi-scale recipe"),
    ({"recipe": "0.9.6 2B dev", "guidance": None},
     f"STG skips block 19, but this model has {NUM_LAYERS} blocks \\(0–2\\); use the recipe made for this model"),
    ({"recipe": "0.9.7 dev single-scale", "guidance": {"first_pass": {"guidance_scale": [1, 2, 3]}}},
     "guidance_scale has 3 values but guidance_timesteps has 7"),
    ({"vae": None}, "the vae input is empty"),
])
def test_sampler_errors_are_sentences(models, prompts, progress, kwargs, message):
    with pytest.raises(ValueError, match=message):
        run_sampler(models, prompts, **kwargs)


def test_sampler_validation_before_running(ltx_pack):
    sampler = node_module("sampler").LTX097Sampler
    assert sampler.validate_inputs(recipe="0.9.7 dev multi-scale", steps=20) is True
    assert sampler.validate_inputs(recipe="0.9.7 distilled multi-scale", steps=30) is True
    assert sampler.validate_inputs(recipe="0.9.7 dev multi-scale", steps=0) == "steps=0 is out of range (1–200)"
    assert "is not one of" in sampler.validate_inputs(recipe="0.9.8", steps=30)


def test_auto_recipe_runs_the_checkpoints_recipe_and_says_so(models, prompts, progress, caplog, monkeypatch):
    """`auto` (the Sampler's default) takes the recipe the file was released with and names it under the node and in
    the log; a file that says nothing gets the documented default with a warning naming the file."""
    sampler, choices = node_module("sampler"), node_module("recipe_choices")
    shown = []
    monkeypatch.setattr(sampler, "show_text", lambda text, node_id: shown.append(text))
    assert choices.AUTO_RECIPE in choices.RECIPE_OPTIONS
    assert set(importlib.import_module("ltxv097.service.config").RECIPES) == set(choices.RECIPE_OPTIONS)  # the API's
    assert sampler.LTX097Sampler.define_schema().inputs[4].default == choices.AUTO_RECIPE
    with caplog.at_level("WARNING"):
        assert sampler.used_recipe(models.model, choices.AUTO_RECIPE, None).label == "0.9.7 dev multi-scale"
    assert "nodes_tiny_ltxv097.safetensors" in caplog.text and "the default 0.9.7-dev" in caplog.text
    lora = {"path": "/m/loras/ltxv-13b-0.9.7-distilled-lora128.safetensors", "scale": 1.0}
    with_lora = models.model.with_patcher(models.model.patcher)
    with_lora.extra["loras"] = [lora]
    assert sampler.used_recipe(with_lora, choices.AUTO_RECIPE, None).label == "0.9.7 distilled multi-scale"
    official = dataclasses.replace(models.model, path="/m/checkpoints/ltxv-2b-0.9.6-distilled-04-25.safetensors")
    recipe = "0.9.6 2B distilled"
    auto = run_sampler(SimpleNamespace(**{**vars(models), "model": official}), prompts, recipe=choices.AUTO_RECIPE,
                       steps=STEPS[recipe], guidance=TINY_GUIDANCE[recipe])["samples"]
    assert shown[-1].startswith(f"recipe: {recipe} (auto, from the official file name 'ltxv-2b-0.9.6-distilled")
    torch.testing.assert_close(auto, run_sampler(models, prompts, recipe=recipe)["samples"], atol=0, rtol=0)
    assert shown[-1] == f"recipe: {recipe}"


def test_distilled_recipe_does_not_use_the_steps_widget(models, prompts, progress):
    """The distilled recipes run fixed timesteps: any steps value gives the same video."""
    recipe = "0.9.7 distilled multi-scale"
    fixed = run_sampler(models, prompts, recipe=recipe, steps=30)["samples"]
    torch.testing.assert_close(run_sampler(models, prompts, recipe=recipe, steps=5)["samples"], fixed, atol=0, rtol=0)




def test_step_cache_input_reaches_the_recipe(models, prompts, ltx_pack, monkeypatch):
    """0 (the default) is the plain path; a threshold gives ltx_core's cached result, on the node's model."""
    recipe = "0.9.6 2B dev"
    plain = run_sampler(models, prompts, recipe, steps=6)["samples"]
    assert torch.equal(plain, run_sampler(models, prompts, recipe, steps=6, step_cache=0.0)["samples"])
    cached = run_sampler(models, prompts, recipe, steps=6, step_cache=0.3)["samples"]
    assert not torch.equal(plain, cached)
    sampler_node, seen = node_module("sampler"), {}
    original = sampler_node.ltx_core.sample_long_video

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(sampler_node.ltx_core, "sample_long_video", spy)
    assert torch.equal(cached, run_sampler(models, prompts, recipe, steps=6, step_cache=0.3)["samples"])
    assert seen["step_cache_threshold"] == 0.3


def test_model_loader_compiles_blocks_on_request(ltx_pack, comfy_host, models):
    loaders = node_module("loaders")
    name = models.model.path.rsplit("/", 1)[-1]
    plain, _ = loaders.LTX097ModelLoader.execute(ckpt_name=name).result
    compiled, _ = loaders.LTX097ModelLoader.execute(ckpt_name=name, compile_blocks=True).result
    assert not getattr(plain.transformer, "blocks_compiled", False)
    assert compiled.transformer.blocks_compiled
    assert all(block._compiled_call_impl is not None for block in compiled.transformer.transformer_blocks)
