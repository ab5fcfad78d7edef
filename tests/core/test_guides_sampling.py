"""Guides through `sample_video` / `sample_long_video` on tiny models: never in the final latents, strength 0 equal
to no guide bit for bit, re-encoded at each pass's size, sliced per window, bad start frames refused."""

import pytest
import torch

from ltx_core import Condition, load_checkpoint, load_latent_upsampler, sample_video
from ltx_core.windows.plan import plan_windows, route_conditions
from support import tiny

BASE = dict(recipe="0.9.6-2b-distilled", width=96, height=64, num_frames=17, frame_rate=25.0, seed=3, steps=2)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    checkpoint, upsampler = tiny.save_model_set(tmp_path_factory.mktemp("guides"))
    return load_checkpoint(checkpoint), load_latent_upsampler(upsampler)


def _prompts():
    g = torch.Generator().manual_seed(1)
    mask = torch.ones(1, 8, dtype=torch.long)
    return dict(context=torch.randn(1, 8, 64, generator=g), context_mask=mask,
                negative_context=torch.randn(1, 8, 64, generator=g), negative_context_mask=mask)


def _video(frames, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(frames, 64, 96, 3, generator=g)


def _sample(models, conditions=(), **changes):
    checkpoint, upsampler = models
    arguments = {**BASE, **changes}
    return sample_video(checkpoint, **_prompts(), conditions=conditions, upsampler=upsampler, **arguments).latents


def test_guide_moves_the_video_but_never_appears_in_it(models):
    plain = _sample(models)
    guided = _sample(models, [Condition(_video(17), guide=True)])
    assert guided.shape == plain.shape == (1, 128, 3, 2, 3)
    assert (guided - plain).abs().max() > 1e-3


def test_strength_0_guide_is_no_guide_bit_for_bit(models):
    image = Condition(_video(1, seed=4), start_frame=0)
    plain = _sample(models, [image])
    with_zero = _sample(models, [image, Condition(_video(17), strength=0.0, guide=True)])
    assert torch.equal(plain, with_zero)


def test_guide_is_encoded_at_each_pass_size(models, monkeypatch):
    checkpoint, _ = models
    sizes = []
    encode = checkpoint.vae.encode

    def recording(video, **kwargs):
        sizes.append(tuple(video.shape[2:]))
        return encode(video, **kwargs)

    monkeypatch.setattr(checkpoint.vae, "encode", recording)
    _sample(models, [Condition(_video(9), guide=True)], recipe="0.9.7-distilled", width=192, height=128,
            num_frames=9, steps=None)
    assert sizes == [(9, 64, 96), (9, 128, 192)]


@pytest.mark.parametrize("start", [3, 8, 2])
def test_guide_video_must_start_on_a_latent_frame(models, start):
    with pytest.raises(ValueError, match=f"guide.*frame {start}"):
        _sample(models, [Condition(_video(9), start_frame=start, guide=True)])


def test_each_window_gets_the_slice_of_the_guide_that_covers_it():
    plan = plan_windows(41, window_frames=17, overlap_frames=8)  # windows from pixel frames 0, 16 and 32
    guide = Condition(torch.arange(33).float().view(33, 1, 1, 1).expand(33, 8, 8, 3), start_frame=9, guide=True)
    routed = route_conditions(plan, [guide])
    firsts = [[(int(item.media[0, 0, 0, 0]), item.start_frame, item.media.shape[0]) for item in items]
              for items in routed]
    # the first window gets the guide from its frame 9; a later one the guide frame of its first pixel frame (a
    # window's first latent frame is read as a first frame), at its frame 0, and the rest of the guide
    assert firsts == [[(0, 9, 33)], [(7, 0, 26)], [(23, 0, 10)]]
