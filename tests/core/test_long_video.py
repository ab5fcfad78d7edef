"""Long videos in overlapping windows (ltx_core.windows) on tiny random models."""

import pytest
import torch

from ltx_core import (
    Condition,
    VideoLatents,
    decode_video,
    iter_decode_video,
    load_checkpoint,
    load_latent_upsampler,
    sample_video,
)
from ltx_core.sampling.passes import PassRunner, adain
from ltx_core.windows import extended_frames, plan_extension, plan_windows, sample_long_video
from support import tiny

DISTILLED = dict(width=96, height=64, frame_rate=24.0, seed=7, recipe="0.9.7-distilled")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    ckpt, up = tiny.save_model_set(tmp_path_factory.mktemp("long_video"))
    return load_checkpoint(ckpt), load_latent_upsampler(up)


def _prompt(seed):
    return torch.randn(1, 6, 64, generator=torch.Generator().manual_seed(seed)), torch.ones(1, 6)


def _negative():
    context, mask = _prompt(99)
    return dict(negative_context=context, negative_context_mask=mask)


class Recorder:
    """Wraps PassRunner.run_pass: records each pass's carried latent items and its output, per window."""

    def __init__(self, monkeypatch):
        self.calls, self.window = [], -1
        original = PassRunner.run_pass

        def run_pass(runner, settings, shape, media_items, init_latents=None, latent_items=(), guide_items=()):
            out = original(runner, settings, shape, media_items, init_latents=init_latents,
                           latent_items=latent_items, guide_items=guide_items)
            self.calls.append((self.window, [t.clone() for t, _, _ in latent_items], media_items, out.clone()))
            return out

        monkeypatch.setattr(PassRunner, "run_pass", run_pass)

    def on_window(self, index, count):
        self.window = index

    def passes(self, window):
        return [call for call in self.calls if call[0] == window]


@pytest.mark.parametrize("recipe", ["0.9.7-distilled", "0.9.6-2b-dev"])
def test_one_window_equals_the_plain_sampler_bit_for_bit(models, recipe):
    checkpoint, upsampler = models
    context, mask = _prompt(1)
    image = torch.rand(1, 64, 96, 3, generator=torch.Generator().manual_seed(3))
    extra = {"num_inference_steps": 2, "skip_block_list": [1]} if recipe.startswith("0.9.6") else {}
    common = dict(DISTILLED, recipe=recipe, num_frames=17, conditions=[Condition(image, 8, 0.9)], upsampler=upsampler,
                  **_negative(), **extra)
    plain = sample_video(checkpoint, context=context, context_mask=mask, **common)
    long = sample_long_video(checkpoint, context=[context], context_mask=[mask], window_frames=17, overlap_frames=8,
                             **common)
    assert long.latents.shape == plain.latents.shape
    assert torch.equal(long.latents, plain.latents.cpu())


def test_each_window_continues_the_previous_ones_latents_and_frame_counts_are_exact(models, monkeypatch):
    checkpoint, upsampler = models
    recorder = Recorder(monkeypatch)
    context, mask = _prompt(1)
    video = sample_long_video(checkpoint, context=context, context_mask=mask, **_negative(), **DISTILLED,
                              num_frames=47, window_frames=25, overlap_frames=16, upsampler=upsampler,
                              temporal_adain_factor=0.0, image_cond_noise_scale=0.0,
                              on_window=recorder.on_window)
    plan = plan_windows(47, 25, 16)
    assert [(w.start, w.length, w.overlap) for w in plan.windows] == [(0, 4, 0), (2, 4, 2), (4, 3, 2)]
    assert video.latents.shape[2] == plan.latent_frames == 7 and video.latents.device.type == "cpu"
    for window in plan.windows[1:]:
        before, now = recorder.passes(window.index - 1), recorder.passes(window.index)
        assert len(now) == 2  # multi-scale: both passes carry the previous window's end at their own size
        for (_, _, _, previous_out), (_, carried, _, out) in zip(before, now):
            assert len(carried) == 1 and torch.equal(carried[0].cpu(), previous_out[:, :, -2:].cpu())
            assert torch.equal(out[:, :, :2], carried[0])  # hard-conditioned frames come out as they went in
    # the video is the windows' last-pass latents, overlaps cross-faded
    outs = [recorder.passes(w.index)[-1][3].cpu() for w in plan.windows]
    assert torch.equal(video.latents[:, :, :4], outs[0])
    assert torch.equal(video.latents[:, :, 4:6], outs[1][:, :, 2:])
    assert torch.equal(video.latents[:, :, 6:], outs[2][:, :, 2:])


def test_later_windows_take_the_first_windows_statistics(models, monkeypatch):
    checkpoint, upsampler = models
    recorder = Recorder(monkeypatch)
    context, mask = _prompt(1)
    video = sample_long_video(checkpoint, context=context, context_mask=mask, **_negative(), **DISTILLED,
                              num_frames=25, window_frames=17, overlap_frames=8, upsampler=upsampler,
                              temporal_adain_factor=0.5, on_window=recorder.on_window)
    first, second = recorder.passes(0)[-1][3].cpu(), recorder.passes(1)[-1][3].cpu()
    settled = adain(second, first, 0.5)
    assert not torch.equal(settled, second)
    assert torch.equal(video.latents[:, :, 3:], settled[:, :, 1:])
    # and the next window was carried from the settled first pass of this one
    carried = recorder.passes(1)[0][1][0].cpu()
    assert torch.equal(carried, recorder.passes(0)[0][3][:, :, -1:].cpu())
    fade = torch.lerp(first[:, :, 2:].float(), settled[:, :, :1].float(), 0.5)
    assert torch.allclose(video.latents[:, :, 2:3].float(), fade)


def test_each_window_reads_its_own_prompt(models):
    checkpoint, _ = models
    prompts = [_prompt(1), _prompt(2)]
    seen, window = [], [-1]
    transformer = checkpoint.transformer
    original = transformer.forward

    def forward(*args, **kwargs):
        seen.append((window[0], kwargs["context"][0, :6].clone()))
        return original(*args, **kwargs)

    transformer.forward = forward
    try:
        sample_long_video(checkpoint, context=[p[0] for p in prompts], context_mask=[p[1] for p in prompts],
                          **_negative(), width=96, height=64, num_frames=41, frame_rate=24.0, seed=1,
                          recipe="0.9.6-2b-distilled", num_inference_steps=2, window_frames=17, overlap_frames=8,
                          on_window=lambda index, count: window.__setitem__(0, index))
    finally:
        del transformer.forward
    assert sorted({w for w, _ in seen}) == [0, 1, 2]
    expected = {0: prompts[0][0][0], 1: prompts[1][0][0], 2: prompts[1][0][0]}  # the last prompt repeats
    assert all(torch.equal(context, expected[w]) for w, context in seen)


def test_conditions_land_in_their_window(models, monkeypatch):
    checkpoint, _ = models
    recorder = Recorder(monkeypatch)
    image = torch.rand(1, 64, 96, 3, generator=torch.Generator().manual_seed(4))
    clip = torch.rand(25, 64, 96, 3, generator=torch.Generator().manual_seed(5))
    context, mask = _prompt(1)
    sample_long_video(checkpoint, context=context, context_mask=mask, **_negative(), width=96, height=64,
                      num_frames=41, frame_rate=24.0, seed=1, recipe="0.9.6-2b-distilled", num_inference_steps=1,
                      window_frames=17, overlap_frames=8, on_window=recorder.on_window,
                      conditions=[Condition(image, 30, 1.0, crf=0), Condition(clip, 8, 1.0, crf=0)])
    # windows: pixel frames 0-16, 16-32, 32-40; the image at 30 is window 1's frame 14; the clip (frames 8-32)
    # gives window 0 its frames 8-16 and window 1 frames 16-32 from its frame 0
    starts = {w: sorted((start, media.shape[2]) for media, start, _ in recorder.passes(w)[0][2]) for w in range(3)}
    assert starts == {0: [(8, 9)], 1: [(0, 17), (14, 1)], 2: []}


def test_streamed_decode_gives_the_decoded_frames(models):
    checkpoint, _ = models
    latents = torch.randn(1, 128, 10, 1, 1, generator=torch.Generator().manual_seed(2))
    video = VideoLatents(latents=latents, width=30, height=28, num_frames=70, frame_rate=24.0, padding=(1, 1, 2, 2),
                         decode_timestep=0.05, decode_noise_scale=0.025, tone_map_compression_ratio=0.0, seed=3)
    chunks = list(iter_decode_video(checkpoint.vae, video, chunk_frames=1))
    assert len(chunks) > 2 and sum(c.shape[0] for c in chunks) == 70
    assert torch.equal(torch.cat(chunks), decode_video(checkpoint.vae, video, chunk_frames=1))


@pytest.mark.parametrize("kwargs,message", [
    ({"window_frames": 25, "overlap_frames": 32}, "overlap_frames=32 must be smaller than window_frames=25"),
    ({"window_frames": 25, "overlap_frames": 25}, "overlap_frames=25 is not allowed"),
    ({"window_frames": 1, "overlap_frames": 0}, "window_frames=1 is not allowed .*at least 9"),
    ({"window_frames": 20}, "window_frames=20 is not allowed"),
    ({"context": [_prompt(i)[0] for i in range(4)], "context_mask": [torch.ones(1, 6)] * 4},
     "4 prompts for 3 window"),
    ({"temporal_adain_factor": 1.5}, "temporal_adain_factor=1.5"),
    ({"conditions": [Condition(torch.rand(9, 64, 96, 3), 20, 1.0)]}, "multiple of 8, not 20"),
])
def test_bad_settings_are_refused_by_name(models, kwargs, message):
    checkpoint, _ = models
    context, mask = _prompt(1)
    arguments = dict(context=context, context_mask=mask, **_negative(), width=96, height=64, num_frames=41,
                     frame_rate=24.0, seed=1, recipe="0.9.6-2b-distilled", window_frames=17, overlap_frames=8)
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        sample_long_video(checkpoint, **arguments)


def test_extension_plans_and_joins_exactly_n_new_frames():
    clip = torch.rand(20, 8, 8, 3)
    append = plan_extension(clip, 11, context_frames=25)  # the clip has 20 frames: its last 17 are the context
    assert (append.num_frames, append.keep_from) == (17 + 11, 17)
    (condition,) = append.conditions
    assert condition.start_frame == 0 and torch.equal(condition.media, clip[-17:])
    prepend = plan_extension(clip, 11, direction="prepend", context_frames=9)
    assert (prepend.num_frames, prepend.keep_from) == (16 + 9, 5)  # 11 new frames, the condition at frame 16
    (condition,) = prepend.conditions
    assert condition.start_frame == 16 and torch.equal(condition.media, clip[:9])
    generated = torch.arange(25.0).view(25, 1, 1, 1).expand(25, 8, 8, 3)
    joined = torch.cat(list(extended_frames(clip, generated.split(4), prepend)))
    assert joined.shape[0] == 31 and torch.equal(joined[:11, 0, 0, 0], torch.arange(5.0, 16.0))
    assert torch.equal(joined[11:], clip)
    for kwargs, message in (({"clip": clip[:0]}, "clip has 0 frames"), ({"new_frames": 0}, "new_frames=0"),
                            ({"direction": "sideways"}, "direction='sideways'"),
                            ({"context_frames": 8}, "context_frames=8 is not allowed")):
        arguments = {"clip": clip, "new_frames": 5, **kwargs}
        with pytest.raises(ValueError, match=message):
            plan_extension(arguments.pop("clip"), arguments.pop("new_frames"), **arguments)


def test_the_cross_fade_goes_from_the_previous_window_to_the_new_one():
    from ltx_core.windows.long_video import cross_fade
    from ltx_core.windows.plan import Window

    video = torch.zeros(1, 1, 8, 1, 1)
    cross_fade(video, Window(index=1, start=2, length=5, overlap=3, num_frames=33), torch.ones(1, 1, 5, 1, 1))
    # the overlap's first frame is mostly the previous window's, its last mostly the new one's
    assert video.flatten().tolist() == [0.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 0.0]


def test_every_later_window_takes_the_first_windows_statistics(models, monkeypatch):
    checkpoint, upsampler = models
    recorder = Recorder(monkeypatch)
    context, mask = _prompt(1)
    video = sample_long_video(checkpoint, context=context, context_mask=mask, **_negative(), **DISTILLED,
                              num_frames=41, window_frames=17, overlap_frames=8, upsampler=upsampler,
                              temporal_adain_factor=1.0, on_window=recorder.on_window)
    plan = plan_windows(41, 17, 8)
    assert len(plan.windows) == 3
    first = recorder.passes(0)[-1][3].cpu()
    for window, following in zip(plan.windows[1:], plan.windows[2:] + (None,)):
        out = recorder.passes(window.index)[-1][3].cpu()
        settled = adain(out, first, 1.0)
        assert not torch.equal(settled, out)
        own = slice(window.start + window.overlap, following.start if following else plan.latent_frames)
        assert torch.equal(video.latents[:, :, own], settled[:, :, own.start - window.start:own.stop - window.start])
