"""Schedules, guidance, media preparation and pipeline hooks, each against the reference where it has one."""

import numpy as np
import pytest
import torch
from PIL import Image

from ltx_core.decoding import tone_map
from ltx_core.models.grid import padded_frame_count
from ltx_core.sampling.condition_media import padding_for, prepare_media, trim_frames
from ltx_core.sampling.guidance import GuidanceStep, combine, resolve_guidance
from ltx_core.sampling.passes import adain
from ltx_core.sampling.recipes import RECIPES, resolve_recipe
from ltx_core.sampling.schedules import euler_step, linear_quadratic, make_timesteps


@pytest.mark.parametrize("config,kwargs", [
    ({"sampler": "LinearQuadratic"}, {"num_steps": 30, "skip_final": 3}),
    ({"sampler": "LinearQuadratic"}, {"num_steps": 30, "skip_initial": 17}),
    ({"sampler": "LinearQuadratic"}, {"num_steps": 8}),
    ({"sampler": "Uniform"}, {"num_steps": 40}),
    ({"sampler": "Uniform", "shifting": "SD3", "target_shift_terminal": 0.1}, {"num_steps": 20}),
    ({"sampler": "Uniform", "shifting": "SD3"}, {"num_steps": 12, "skip_initial": 2}),
    ({"sampler": "Uniform", "shifting": "SimpleDiffusion", "base_resolution": 1024}, {"num_steps": 10}),
], ids=["lq30-final3", "lq30-initial17", "lq8", "uniform40", "sd3-terminal", "sd3-skip", "simple-diffusion"])
def test_schedules_match_reference(config, kwargs):
    from ltx_video.pipelines.pipeline_ltx_video import retrieve_timesteps
    from ltx_video.schedulers.rf import RectifiedFlowScheduler

    shape = (1, 128, 4, 12, 20)
    scheduler = RectifiedFlowScheduler(**config)
    expected, _ = retrieve_timesteps(scheduler, kwargs["num_steps"], "cpu", None, samples_shape=shape,
                                     skip_initial_inference_steps=kwargs.get("skip_initial", 0),
                                     skip_final_inference_steps=kwargs.get("skip_final", 0))
    got = make_timesteps(config, latent_shape=shape, **kwargs)
    assert torch.equal(got, expected.float())


def test_spec_values_of_linear_quadratic():
    assert linear_quadratic(30)[17].item() == pytest.approx(0.9547778, abs=1e-7)
    assert [round(x, 6) for x in linear_quadratic(8).tolist()] == [1.0, 0.99375, 0.9875, 0.98125, 0.975, 0.909375,
                                                                    0.725, 0.421875]


def test_explicit_timesteps_and_bad_skips():
    assert make_timesteps({}, timesteps=[0.9094, 0.725, 0.4219]).tolist() == pytest.approx([0.9094, 0.725, 0.4219])
    with pytest.raises(ValueError, match="skip_initial_inference_steps=5"):
        make_timesteps({"sampler": "Uniform"}, num_steps=5, skip_initial=5)


@pytest.mark.parametrize("stochastic", [False, True])
def test_euler_step_matches_reference(stochastic):
    from ltx_video.schedulers.rf import RectifiedFlowScheduler

    scheduler = RectifiedFlowScheduler(sampler="LinearQuadratic")
    scheduler.set_timesteps(10)
    g = torch.Generator().manual_seed(0)
    latents, velocity = torch.randn(1, 6, 4, generator=g), torch.randn(1, 6, 4, generator=g)
    sigma = torch.tensor([[0.9875, 0.9875, 0.0, 0.5, 0.9875, 0.3]])
    torch.manual_seed(3)
    expected = scheduler.step(velocity, sigma, latents, return_dict=False, stochastic_sampling=stochastic)[0]
    torch.manual_seed(3)
    noise = torch.randn_like(latents) if stochastic else None
    assert torch.equal(euler_step(latents, velocity, sigma, scheduler.timesteps, noise), expected)


def test_dev_recipe_guidance_table():
    """The resolved first-pass schedule of 0.9.7-dev: the official recipe's per-timestep guidance, step by step."""
    first = RECIPES["0.9.7-dev"]["first_pass"]
    timesteps = make_timesteps({"sampler": "LinearQuadratic"}, num_steps=30, skip_final=3)
    steps = resolve_guidance(timesteps, **{k: first[k] for k in ("guidance_scale", "stg_scale", "rescaling_scale",
                                                                 "skip_block_list", "guidance_timesteps")})
    table = [(s.cfg_scale, s.stg_scale, s.rescale, s.skip_blocks, len(s.branches)) for s in steps]
    assert len(table) == 27
    assert table[0] == (1, 0, 1, (), 1)
    assert table[1:3] == [(1, 0, 1, (11, 25, 35, 39), 1)] * 2
    assert table[3:5] == [(6, 4, 0.5, (22, 35, 39), 3)] * 2
    assert table[5:10] == [(8, 4, 0.5, (28,), 3)] * 5
    assert table[10:14] == [(6, 4, 1, (28,), 3)] * 4
    assert table[14:19] == [(1, 2, 1, (28,), 2)] * 5
    assert table[19:27] == [(1, 1, 1, (28,), 2)] * 8


class _Branches(torch.nn.Module):
    """Stands in for the official transformer: returns a fixed prediction per guidance branch, recognised by its
    text (the negative prompt: unconditional) and its skip-layer mask (a zero: perturbed)."""

    def __init__(self, transformer, negative, predictions):
        super().__init__()
        self.inner, self.negative, self.predictions, self.inputs = transformer, negative, predictions, []

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.inner, name)

    def forward(self, latents, indices_grid, encoder_hidden_states, encoder_attention_mask, timestep,
                skip_layer_mask=None, skip_layer_strategy=None, return_dict=False):
        self.inputs.append(latents[:1].clone())
        names = ["uncond" if torch.equal(text, self.negative[0])
                 else "perturbed" if skip_layer_mask is not None and (skip_layer_mask[:, i] == 0).any() else "cond"
                 for i, text in enumerate(encoder_hidden_states)]
        return (torch.cat([self.predictions[name] for name in names]),)


@pytest.fixture(scope="module")
def reference_loop():
    """The official `LTXVideoPipeline` on one latent token (128 channels) with a `_Branches` transformer."""
    from ltx_video.models.autoencoders.causal_video_autoencoder import CausalVideoAutoencoder
    from ltx_video.models.transformers.symmetric_patchifier import SymmetricPatchifier
    from ltx_video.models.transformers.transformer3d import Transformer3DModel
    from ltx_video.pipelines.pipeline_ltx_video import LTXVideoPipeline
    from ltx_video.schedulers.rf import RectifiedFlowScheduler

    from support import tiny

    g = torch.Generator().manual_seed(4)
    positive, negative = torch.randn(1, 4, 64, generator=g), torch.randn(1, 4, 64, generator=g)
    branches = _Branches(Transformer3DModel.from_config(tiny.transformer_config()), negative, {})
    pipeline = LTXVideoPipeline(
        tokenizer=None, text_encoder=None, vae=CausalVideoAutoencoder.from_config(tiny.vae_config()),
        transformer=branches, scheduler=RectifiedFlowScheduler(sampler="LinearQuadratic"),
        patchifier=SymmetricPatchifier(patch_size=1), prompt_enhancer_image_caption_model=None,
        prompt_enhancer_image_caption_processor=None, prompt_enhancer_llm_model=None,
        prompt_enhancer_llm_tokenizer=None)
    mask = torch.ones(1, 4, dtype=torch.long)
    prompts = dict(prompt_embeds=positive, prompt_attention_mask=mask, negative_prompt_embeds=negative,
                   negative_prompt_attention_mask=mask)
    return pipeline, branches, prompts


def _reference_guided_step(reference_loop, step, cfg_star, predictions, sigma):
    """One step of the official denoising loop whose transformer returns `predictions`; returns (the latents it
    was given, the stepped latents)."""
    pipeline, branches, prompts = reference_loop
    branches.predictions, branches.inputs = predictions, []
    with torch.no_grad():
        stepped = pipeline(
            timesteps=[sigma], guidance_scale=step.cfg_scale, stg_scale=step.stg_scale,
            rescaling_scale=step.rescale, skip_block_list=list(step.skip_blocks), cfg_star_rescale=cfg_star,
            generator=torch.Generator().manual_seed(0), output_type="latent", height=32, width=32, num_frames=1,
            frame_rate=25, prompt=None, negative_prompt=None, **prompts, is_video=True,
            vae_per_channel_normalize=True, mixed_precision=False, offload_to_cpu=False,
            enhance_prompt=False).images
    return branches.inputs[0], stepped.flatten(2).transpose(1, 2)


@pytest.mark.parametrize("step", [GuidanceStep(6, 4, 0.5, (1,)), GuidanceStep(8, 0, 1, ()), GuidanceStep(1, 2, 1, (1,)),
                                  GuidanceStep(1, 1, 0.7, (1,)), GuidanceStep(1, 0, 1, ())])
@pytest.mark.parametrize("cfg_star", [False, True])
def test_guidance_arithmetic_matches_the_reference_loop(reference_loop, step, cfg_star):
    """`combine` + `euler_step` give what one step of the official loop gives for the same branch predictions."""
    g = torch.Generator().manual_seed(1)
    predictions = {name: torch.randn(1, 1, 128, generator=g) for name in ("uncond", "cond", "perturbed")}
    latents, expected = _reference_guided_step(reference_loop, step, cfg_star, predictions, sigma=0.9)
    got = euler_step(latents, combine(predictions, step, cfg_star), torch.tensor([[0.9]]), torch.tensor([0.9]))
    assert torch.allclose(got, expected, atol=1e-6, rtol=0), (got - expected).abs().max()


def test_guidance_is_per_batch_entry():
    """CFG-star and rescaling use each entry's own statistics (the reference is only right for batch 1)."""
    g = torch.Generator().manual_seed(2)
    preds = {name: torch.randn(2, 10, 8, generator=g) for name in ("uncond", "cond", "perturbed")}
    step = GuidanceStep(6, 4, 0.5, (1,))
    both = combine(preds, step, True)
    for i in range(2):
        single = combine({k: v[i:i + 1] for k, v in preds.items()}, step, True)
        assert torch.allclose(both[i:i + 1], single, atol=1e-6)


def test_adain_and_tone_map_match_reference():
    from ltx_video.pipelines.pipeline_ltx_video import LTXVideoPipeline, adain_filter_latent

    g = torch.Generator().manual_seed(3)
    latents, reference = torch.randn(1, 4, 3, 5, 6, generator=g) * 2, torch.randn(1, 4, 3, 5, 6, generator=g)
    for factor in (1.0, 0.5):
        assert torch.allclose(adain(latents, reference, factor), adain_filter_latent(latents, reference, factor),
                              atol=1e-6)
    for ratio in (0.0, 0.6):
        assert torch.equal(tone_map(latents, ratio), LTXVideoPipeline.tone_map_latents(latents, ratio))


@pytest.mark.parametrize("size,target", [((70, 100), (70, 100)), ((90, 160), (64, 96)), ((100, 60), (64, 96))])
def test_media_preparation_matches_reference(size, target):
    """Crop to aspect, blur, CRF-29 round trip and padding, against `inference.load_image_to_tensor_...`."""
    from ltx_video.inference import load_image_to_tensor_with_resize_and_crop

    height, width = target
    (padded_h, padded_w), padding = padding_for(height, width)
    rng = np.random.default_rng(0)
    pixels = (rng.random((size[0] // 10 + 1, size[1] // 10 + 1, 3)) * 255).astype(np.uint8)
    image = Image.fromarray(pixels).resize((size[1], size[0]), Image.BILINEAR)
    expected = torch.nn.functional.pad(
        load_image_to_tensor_with_resize_and_crop(image, height, width, just_crop=True), padding)
    frames = torch.from_numpy(np.asarray(image)).float().div(255)[None]
    got = prepare_media(frames, width=width, height=height, padding=padding)
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() <= 1e-6


def test_frame_geometry():
    assert [padded_frame_count(n) for n in (1, 9, 20, 89, 90, 121)] == [1, 9, 25, 89, 97, 121]
    assert padding_for(70, 100) == ((96, 128), (14, 14, 13, 13))
    assert trim_frames(30, 8, 33) == 25 and trim_frames(5, 0, 89) == 1


def test_recipe_overrides_and_errors():
    recipe = resolve_recipe("0.9.7-dev", {"first_pass": {"num_inference_steps": 12}, "decode_noise_scale": 0.0})
    assert recipe["first_pass"]["num_inference_steps"] == 12
    assert recipe["first_pass"]["skip_final_inference_steps"] == 3 and recipe["decode_noise_scale"] == 0.0
    assert RECIPES["0.9.7-dev"]["first_pass"]["num_inference_steps"] == 30
    with pytest.raises(ValueError, match="recipe 'nope'"):
        resolve_recipe("nope", {})
    with pytest.raises(ValueError, match="unknown key"):
        resolve_recipe("0.9.7-dev", {"first_pass": {"guidance": 3}})
    official_yaml = {"pipeline_type": "base", "checkpoint_path": "x.safetensors", "precision": "bfloat16",
                     "guidance_scale": 3, "stg_scale": 1, "rescaling_scale": 0.7, "num_inference_steps": 40}
    assert resolve_recipe(official_yaml, {})["guidance_scale"] == 3


def test_recipe_checks_and_pass_shapes():
    from ltx_core.sampling import pass_shapes
    from ltx_core.sampling.recipes import check_recipe, max_branches, recipe_passes

    dev = resolve_recipe("0.9.7-dev", {})
    check_recipe(dev, 48)
    with pytest.raises(ValueError, match="STG skips block 28, but this model has 28 blocks"):
        check_recipe(dev, 28)
    with pytest.raises(ValueError, match="stg_scale has 2 values but guidance_timesteps has 7"):
        check_recipe(resolve_recipe("0.9.7-dev", {"first_pass": {"stg_scale": [1, 2]}}))
    with pytest.raises(ValueError, match="no guidance_timesteps"):
        check_recipe(resolve_recipe("0.9.6-2b-dev", {"guidance_scale": [1, 3]}))
    assert [max_branches(p) for _, p in recipe_passes(dev)] == [3, 2]
    assert [max_branches(p, batched=False) for _, p in recipe_passes(dev)] == [1, 1]
    assert [max_branches(p) for _, p in recipe_passes(resolve_recipe("0.9.7-distilled", {}))] == [1, 1]
    assert pass_shapes(dev, width=1216, height=704, num_frames=121) == [(1, 128, 16, 14, 25), (1, 128, 16, 28, 50)]
    single = resolve_recipe("0.9.7-dev-single-scale", {})
    assert pass_shapes(single, width=1280, height=720, num_frames=89) == [(1, 128, 12, 23, 40)]
    assert single["num_inference_steps"] == 30 and "skip_final_inference_steps" not in single


def test_official_098_distilled_yaml_is_the_named_recipe():
    """The 13B 0.9.8 distilled yaml gives its tone mapping in the second pass: it becomes the recipe's (the pass
    that is decoded); the first pass's would never act."""
    official = {"pipeline_type": "multi-scale", "checkpoint_path": "ltxv-13b-0.9.8-distilled.safetensors",
                "downscale_factor": 0.6666666, "spatial_upscaler_model_path": "ltxv-spatial-upscaler-0.9.8.safetensors",
                "stg_mode": "attention_values", "decode_timestep": 0.05, "decode_noise_scale": 0.025,
                "precision": "bfloat16", "sampler": "from_checkpoint", "stochastic_sampling": False,
                "first_pass": {"timesteps": [1.0000, 0.9937, 0.9875, 0.9812, 0.9750, 0.9094, 0.7250],
                               "guidance_scale": 1, "stg_scale": 0, "rescaling_scale": 1, "skip_block_list": [42],
                               "tone_map_compression_ratio": 0.3},
                "second_pass": {"timesteps": [0.9094, 0.7250, 0.4219], "guidance_scale": 1, "stg_scale": 0,
                                "rescaling_scale": 1, "skip_block_list": [42], "tone_map_compression_ratio": 0.6}}
    assert resolve_recipe(official, {}) == resolve_recipe("0.9.8-distilled", {})
    assert resolve_recipe("0.9.8-distilled", {})["tone_map_compression_ratio"] == 0.6
    assert resolve_recipe("0.9.8-2b-distilled", {})["tone_map_compression_ratio"] == 0.0
