"""`refine_video`: the recipe's refining pass (a multi-scale recipe's second pass) over given latents, noised to
the pass's first σ with the seed's noise as the official second pass does, from σ ≤ `denoise`."""

import dataclasses

import pytest
import torch

from ltx_core import load_checkpoint, refine_video, sample_video
from support import tiny


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path, _ = tiny.save_model_set(tmp_path_factory.mktemp("refine"))
    return load_checkpoint(path)


@pytest.fixture(scope="module")
def prompts():
    g = torch.Generator().manual_seed(0)
    return dict(context=torch.randn(1, 6, 64, generator=g), context_mask=torch.ones(1, 6),
                negative_context=torch.randn(1, 6, 64, generator=g), negative_context_mask=torch.ones(1, 6))


@pytest.fixture(scope="module")
def video(checkpoint, prompts):
    return sample_video(checkpoint, **prompts, width=96, height=64, num_frames=9, frame_rate=24.0, seed=5,
                        recipe="0.9.6-2b-dev", skip_block_list=[1], num_inference_steps=3)


def _refine(checkpoint, prompts, video, **kwargs):
    steps = []
    refined = refine_video(checkpoint, video, **prompts, seed=kwargs.pop("seed", 7),
                           callback=lambda step, total, _: steps.append(total), **kwargs)
    return refined, steps


def test_the_distilled_second_pass_refines_the_given_latents(checkpoint, prompts, video):
    full, steps = _refine(checkpoint, prompts, video, recipe="0.9.7-distilled")
    assert steps == [3] * 3  # the second pass's 0.9094, 0.725, 0.4219
    assert full.latents.shape == video.latents.shape
    assert (full.width, full.height, full.num_frames, full.frame_rate, full.padding, full.seed) == (
        video.width, video.height, video.num_frames, video.frame_rate, video.padding, 7)
    capped, steps = _refine(checkpoint, prompts, video, recipe="0.9.7-distilled", denoise=0.8)
    assert steps == [2] * 2  # from 0.725: the strength decides where the pass starts
    assert (capped.latents - full.latents).abs().max() > 1e-3
    # less noise keeps more of the given latents
    assert (capped.latents - video.latents).abs().mean() < (full.latents - video.latents).abs().mean()
    other = dataclasses.replace(video, latents=-video.latents)
    assert (_refine(checkpoint, prompts, other, recipe="0.9.7-distilled")[0].latents - full.latents).abs().max() > 1e-2
    assert not torch.equal(_refine(checkpoint, prompts, video, recipe="0.9.7-distilled", seed=8)[0].latents,
                           full.latents)
    toned, _ = _refine(checkpoint, prompts, video, recipe="0.9.8-distilled")
    assert (toned.tone_map_compression_ratio, full.tone_map_compression_ratio) == (0.6, 0.0)


def test_from_sigma_1_the_given_latents_are_pure_noise(checkpoint, prompts, video):
    """σ0 = 1 noises the latents away entirely (t0·noise + (1 − t0)·latents), so what they held does not matter."""
    settings = dict(recipe="0.9.6-2b-dev", skip_block_list=[1], num_inference_steps=2)
    refined, steps = _refine(checkpoint, prompts, video, **settings)
    zeros = dataclasses.replace(video, latents=torch.zeros_like(video.latents))
    assert steps == [2] * 2
    assert torch.equal(refined.latents, _refine(checkpoint, prompts, zeros, **settings)[0].latents)
    assert not torch.equal(refined.latents, _refine(checkpoint, prompts, zeros, denoise=0.99, **settings)[0].latents)


@pytest.mark.parametrize("denoise, message", [(0.0, "denoise=0.0 is out of range"),
                                              (0.3, "denoise=0.3 is below every σ of the refining pass")])
def test_denoise_out_of_range_is_named(checkpoint, prompts, video, denoise, message):
    with pytest.raises(ValueError, match=message):
        _refine(checkpoint, prompts, video, recipe="0.9.7-distilled", denoise=denoise)
