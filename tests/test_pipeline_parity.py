"""`ltx_core.generate` equals the official pipelines (fp32, tiny models, same seed, final frames ≤ 1e-4)."""

import pytest
import torch

import pipeline_reference
import tiny
from ltx_core import Condition, generate, load_checkpoint, load_latent_upsampler
from ltx_core.media import padding_for, prepare_media

TOL = 1e-4
# The dev recipe's skip blocks rescaled to a 3-block model; every guidance phase still runs.
DEV_TINY = {"first_pass": {"skip_block_list": [[], [0, 1], [1, 2], [2], [2], [2], [2]]},
            "second_pass": {"skip_block_list": [1]}}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return tiny.save_model_set(tmp_path_factory.mktemp("pipeline"))


@pytest.fixture(scope="module")
def ours(files):
    return load_checkpoint(files[0]), load_latent_upsampler(files[1])


@pytest.fixture(scope="module")
def prompts():
    g = torch.Generator().manual_seed(7)
    context, negative = torch.randn(1, 12, 64, generator=g), torch.randn(1, 12, 64, generator=g)
    mask, negative_mask = torch.ones(1, 12, dtype=torch.long), torch.ones(1, 12, dtype=torch.long)
    mask[:, 9:] = 0
    negative_mask[:, 5:] = 0
    return context, mask, negative, negative_mask


def _media(frames, height, width, seed):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, height // 8, width // 8, 3, generator=g)
    video = torch.nn.functional.interpolate(base.permute(0, 3, 1, 2), size=(height, width), mode="bilinear")
    video = video.permute(0, 2, 3, 1).repeat(frames, 1, 1, 1)
    return (video + 0.05 * torch.arange(frames).view(-1, 1, 1, 1) / frames).clamp(0, 1)


def _compare(files, ours, prompts, *, recipe, width, height, num_frames, conditions=(), seed=42, frame_rate=25.0,
             **overrides):
    multi = recipe in ("0.9.7-dev", "0.9.7-distilled")
    checkpoint, upsampler = ours
    got = generate(checkpoint, context=prompts[0], context_mask=prompts[1], negative_context=prompts[2],
                   negative_context_mask=prompts[3], width=width, height=height, num_frames=num_frames,
                   frame_rate=frame_rate, seed=seed, recipe=recipe, conditions=conditions,
                   upsampler=upsampler if multi else None, rng="reference", **overrides)
    _, padding = padding_for(height, width)
    prepared = [(prepare_media(c.media, width=width, height=height, padding=padding), c.start_frame, c.strength)
                for c in conditions]
    reference = pipeline_reference.build(files[0], files[1] if multi else None)
    expected = pipeline_reference.run(reference, recipe=recipe, prompts=prompts, width=width, height=height,
                                      num_frames=num_frames, frame_rate=frame_rate, seed=seed, conditions=prepared,
                                      **overrides)
    assert got.shape == (num_frames, height, width, 3)
    assert got.shape == expected.shape
    difference = (got - expected).abs().max().item()
    assert difference <= TOL, difference
    return got


def test_single_scale_cfg_stg(files, ours, prompts):
    _compare(files, ours, prompts, recipe="0.9.6-2b-dev", width=96, height=64, num_frames=17,
             skip_block_list=[1], num_inference_steps=6)


def test_multi_scale_dev_recipe(files, ours, prompts):
    _compare(files, ours, prompts, recipe="0.9.7-dev", width=192, height=128, num_frames=9, **DEV_TINY)


def test_distilled_recipe(files, ours, prompts):
    _compare(files, ours, prompts, recipe="0.9.7-distilled", width=192, height=128, num_frames=9)


def test_padding_and_cropping(files, ours, prompts):
    """20 frames at 100×70 px are generated at 128×96 and 25 frames, then cropped back."""
    _compare(files, ours, prompts, recipe="0.9.6-2b-dev", width=100, height=70, num_frames=20,
             skip_block_list=[2], num_inference_steps=4)


def test_image_at_frame_0_strength_08(files, ours, prompts):
    image = _media(1, 64, 96, seed=1)
    _compare(files, ours, prompts, recipe="0.9.6-2b-dev", width=96, height=64, num_frames=17,
             conditions=[Condition(image, 0, 0.8)], skip_block_list=[1], num_inference_steps=5)


def test_keyframe_at_frame_16(files, ours, prompts):
    first, last = _media(1, 64, 96, seed=2), _media(1, 64, 96, seed=3)
    _compare(files, ours, prompts, recipe="0.9.6-2b-dev", width=96, height=64, num_frames=25,
             conditions=[Condition(first, 0, 1.0), Condition(last, 16, 1.0)], skip_block_list=[0],
             num_inference_steps=5)


def test_video_at_frame_8(files, ours, prompts):
    video = _media(17, 64, 96, seed=4)
    _compare(files, ours, prompts, recipe="0.9.6-2b-dev", width=96, height=64, num_frames=33,
             conditions=[Condition(video, 8, 0.9)], skip_block_list=[1], num_inference_steps=4)


def test_multi_scale_with_image_condition(files, ours, prompts):
    _compare(files, ours, prompts, recipe="0.9.7-distilled", width=192, height=128, num_frames=17,
             conditions=[Condition(_media(1, 128, 192, seed=5), 0, 1.0)])


def test_stochastic_sampling_recipe(files, ours, prompts):
    _compare(files, ours, prompts, recipe="0.9.6-2b-distilled", width=96, height=64, num_frames=9)
