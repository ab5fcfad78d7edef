"""`ltx_core` equals the official pipelines (fp32, tiny models, same seed): final latents and frames ≤ 1e-4.

Every case also names the knobs it covers (a prompt, a guidance field, a condition's frame, a decode setting) and
checks that changing each moves the official output by at least 10× the tolerance: a case that could not tell a
knob's value from another's would pass with that knob ignored.
"""

import logging

import pytest
import torch

from ltx_core import Condition, decode_video, load_checkpoint, load_latent_upsampler, sample_video
from ltx_core.sampling.condition_media import padding_for, prepare_media
from support import pipeline_reference, tiny

TOL = 1e-4
SENSITIVITY = 10 * TOL
# The dev recipe's skip blocks rescaled to a 3-block model; every guidance phase still runs.
DEV_TINY = {"first_pass": {"skip_block_list": [[], [0, 1], [1, 2], [2], [2], [2], [2]]},
            "second_pass": {"skip_block_list": [1]}}
MULTI_SCALE = ("0.9.7-dev", "0.9.7-distilled", "0.9.8-dev", "0.9.8-distilled", "0.9.8-2b-distilled")

logger = logging.getLogger(__name__)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return tiny.save_model_set(tmp_path_factory.mktemp("pipeline"))


@pytest.fixture(scope="module")
def ours(files):
    return load_checkpoint(files[0]), load_latent_upsampler(files[1])


@pytest.fixture(scope="module")
def references(files):
    return {"base": pipeline_reference.build(files[0]), "multi-scale": pipeline_reference.build(*files)}


def _text(seed, length, used):
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(1, length, dtype=torch.long)
    mask[:, used:] = 0
    return torch.randn(1, length, 64, generator=g), mask


@pytest.fixture(scope="module")
def prompts():
    return (*_text(7, 12, 9), *_text(8, 12, 5))


@pytest.fixture(scope="module")
def other_negative(prompts):
    """The same prompt with another negative prompt (what CFG pushes away from)."""
    return (*prompts[:2], *_text(9, 12, 10))


@pytest.fixture(scope="module")
def other_prompt(prompts):
    return (*_text(10, 12, 12), *prompts[2:])


def _media(frames, height, width, seed):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, height // 8, width // 8, 3, generator=g)
    video = torch.nn.functional.interpolate(base.permute(0, 3, 1, 2), size=(height, width), mode="bilinear")
    video = video.permute(0, 2, 3, 1).repeat(frames, 1, 1, 1)
    return (video + 0.05 * torch.arange(frames).view(-1, 1, 1, 1) / frames).clamp(0, 1)


def _reference(references, arguments):
    arguments = dict(arguments)
    conditions = arguments.pop("conditions")
    _, padding = padding_for(arguments["height"], arguments["width"])
    prepared = [(prepare_media(c.media, width=arguments["width"], height=arguments["height"], padding=padding),
                 c.start_frame, c.strength) for c in conditions]
    pipeline = references["multi-scale" if arguments["recipe"] in MULTI_SCALE else "base"]
    return pipeline_reference.run(pipeline, conditions=prepared, **arguments)


def _compare(ours, references, prompts, *, knobs, recipe, width, height, num_frames, conditions=(), seed=42,
             frame_rate=25.0, **overrides):
    """Ours against the reference; then each knob (replaced arguments of the reference run) must move it."""
    checkpoint, upsampler = ours
    arguments = dict(recipe=recipe, prompts=prompts, width=width, height=height, num_frames=num_frames,
                     frame_rate=frame_rate, seed=seed, conditions=conditions, **overrides)
    context, mask, negative, negative_mask = prompts
    video = sample_video(checkpoint, context=context, context_mask=mask, negative_context=negative,
                         negative_context_mask=negative_mask, width=width, height=height, num_frames=num_frames,
                         frame_rate=frame_rate, seed=seed, recipe=recipe, conditions=conditions,
                         upsampler=upsampler if recipe in MULTI_SCALE else None, rng="reference", **overrides)
    got = decode_video(checkpoint.vae, video)
    expected = _reference(references, arguments)
    assert got.shape == expected.frames.shape == (num_frames, height, width, 3)
    assert video.latents.shape == expected.latents.shape
    latent_difference = (video.latents - expected.latents).abs().max().item()
    frame_difference = (got - expected.frames).abs().max().item()
    assert latent_difference <= TOL and frame_difference <= TOL, (latent_difference, frame_difference)
    assert knobs, "a parity case names the knobs it covers"
    for name, change in knobs.items():
        changed = _reference(references, {**arguments, **change})
        effect = max((changed.frames - expected.frames).abs().max().item(),
                     (changed.latents - expected.latents).abs().max().item())
        logger.info("%s: %s moves the reference by %.3g (%.0f× the tolerance)", recipe, name, effect, effect / TOL)
        assert effect >= SENSITIVITY, f"{name} moves the reference by only {effect:.2g}: this case cannot see it"


def test_single_scale_cfg_stg(ours, references, prompts, other_negative):
    _compare(ours, references, prompts, recipe="0.9.6-2b-dev", width=96, height=64, num_frames=17,
             skip_block_list=[1], num_inference_steps=6,
             knobs={"CFG off": {"guidance_scale": 1}, "another negative prompt": {"prompts": other_negative},
                    "STG off": {"stg_scale": 0}, "no STG rescaling": {"rescaling_scale": 1}})


@pytest.mark.parametrize("strategy", ["attention_skip", "residual", "transformer_block"])
def test_stg_strategies(ours, references, prompts, strategy):
    _compare(ours, references, prompts, recipe="0.9.6-2b-dev", width=96, height=64, num_frames=9,
             skip_block_list=[0, 2], num_inference_steps=4, stg_mode=strategy, stg_scale=2,
             knobs={"STG on attention values": {"stg_mode": "attention_values"}})


def test_multi_scale_dev_recipe(ours, references, prompts, other_negative):
    no_cfg_star = {**DEV_TINY, "first_pass": {**DEV_TINY["first_pass"], "cfg_star_rescale": False}}
    _compare(ours, references, prompts, recipe="0.9.7-dev", width=192, height=128, num_frames=9, **DEV_TINY,
             knobs={"another negative prompt": {"prompts": other_negative}, "no CFG-star": no_cfg_star})


def test_distilled_recipe(ours, references, prompts, other_prompt):
    _compare(ours, references, prompts, recipe="0.9.7-distilled", width=192, height=128, num_frames=9,
             knobs={"another prompt": {"prompts": other_prompt}, "frame rate 50": {"frame_rate": 50.0}})


def test_098_dev_recipe(ours, references, prompts, other_negative):
    _compare(ours, references, prompts, recipe="0.9.8-dev", width=192, height=128, num_frames=9, **DEV_TINY,
             knobs={"another negative prompt": {"prompts": other_negative}})


@pytest.mark.parametrize("recipe", ["0.9.8-distilled", "0.9.8-2b-distilled"])
def test_098_distilled_recipes(ours, references, prompts, other_prompt, recipe):
    """The 13B one tone-maps the decoded pass (0.6, from the yaml's second pass); the 2B one does not."""
    knobs = {"another prompt": {"prompts": other_prompt}}
    if recipe == "0.9.8-distilled":
        knobs["no tone mapping"] = {"tone_map_compression_ratio": 0.0}
    _compare(ours, references, prompts, recipe=recipe, width=192, height=128, num_frames=9, knobs=knobs)


def test_multi_scale_adain_factor(ours, references, prompts):
    """The recipe's AdaIN factor (the official pipeline always blends fully, factor 1)."""
    _compare(ours, references, prompts, recipe="0.9.7-distilled", width=192, height=128, num_frames=9,
             adain_factor=0.25, knobs={"AdaIN factor 1": {"adain_factor": 1.0}})


def test_decode_timestep_noise_and_tone_map(ours, references, prompts):
    _compare(ours, references, prompts, recipe="0.9.6-2b-distilled", width=96, height=64, num_frames=9,
             num_inference_steps=4, stochastic_sampling=False, decode_timestep=0.4, decode_noise_scale=0.1,
             tone_map_compression_ratio=0.6,
             knobs={"decode timestep 0.05": {"decode_timestep": 0.05},
                    "decode noise 0.025": {"decode_noise_scale": 0.025},
                    "no tone map": {"tone_map_compression_ratio": 0.0}})


def test_padding_and_cropping(ours, references, prompts):
    """20 frames at 100×70 px are generated at 128×96 and 25 frames, then cropped back; 12 fps."""
    _compare(ours, references, prompts, recipe="0.9.6-2b-dev", width=100, height=70, num_frames=20,
             skip_block_list=[2], num_inference_steps=4, frame_rate=12.0,
             knobs={"frame rate 25": {"frame_rate": 25.0}})


def test_image_at_frame_0_strength_08(ours, references, prompts):
    image = _media(1, 64, 96, seed=1)
    _compare(ours, references, prompts, recipe="0.9.6-2b-dev", width=96, height=64, num_frames=17,
             conditions=[Condition(image, 0, 0.8)], skip_block_list=[1], num_inference_steps=5,
             knobs={"strength 0.5": {"conditions": [Condition(image, 0, 0.5)]}})


def test_keyframe_at_frame_16(ours, references, prompts):
    first, last = _media(1, 64, 96, seed=2), _media(1, 64, 96, seed=3)
    _compare(ours, references, prompts, recipe="0.9.6-2b-dev", width=96, height=64, num_frames=25,
             conditions=[Condition(first, 0, 1.0), Condition(last, 16, 1.0)], skip_block_list=[0],
             num_inference_steps=5,
             knobs={"keyframe at frame 8": {"conditions": [Condition(first, 0, 1.0), Condition(last, 8, 1.0)]}})


def test_video_at_frame_8(ours, references, prompts):
    video = _media(17, 64, 96, seed=4)
    _compare(ours, references, prompts, recipe="0.9.6-2b-dev", width=96, height=64, num_frames=33,
             conditions=[Condition(video, 8, 0.9)], skip_block_list=[1], num_inference_steps=4,
             knobs={"video at frame 16": {"conditions": [Condition(video, 16, 0.9)]}})


def test_multi_scale_with_image_condition(ours, references, prompts):
    _compare(ours, references, prompts, recipe="0.9.7-distilled", width=192, height=128, num_frames=17,
             conditions=[Condition(_media(1, 128, 192, seed=5), 0, 1.0)],
             knobs={"another image": {"conditions": [Condition(_media(1, 128, 192, seed=6), 0, 1.0)]}})


def test_stochastic_sampling_recipe(ours, references, prompts):
    _compare(ours, references, prompts, recipe="0.9.6-2b-distilled", width=96, height=64, num_frames=9,
             knobs={"deterministic sampling": {"stochastic_sampling": False}})
