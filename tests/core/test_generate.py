"""`generate` beyond parity: determinism, batched vs one-by-one guidance, hooks and input errors."""

import pytest
import torch

from ltx_core import Condition, generate, load_checkpoint, load_latent_upsampler
from support import tiny


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    ckpt, up = tiny.save_model_set(tmp_path_factory.mktemp("generate"))
    return load_checkpoint(ckpt), load_latent_upsampler(up)


def _prompts():
    g = torch.Generator().manual_seed(0)
    return dict(context=torch.randn(1, 6, 64, generator=g), context_mask=torch.ones(1, 6),
                negative_context=torch.randn(1, 6, 64, generator=g), negative_context_mask=torch.ones(1, 6))


def _run(models, **kwargs):
    checkpoint, upsampler = models
    base = dict(width=96, height=64, num_frames=9, frame_rate=24.0, seed=5, recipe="0.9.6-2b-dev")
    base.update(kwargs)
    if base["recipe"].startswith("0.9.6"):
        base = {"skip_block_list": [1], "num_inference_steps": 3, **base}
    return generate(checkpoint, upsampler=upsampler, **_prompts(), **base)


def test_same_seed_same_video_other_seed_other_video(models):
    a, b, c = _run(models), _run(models), _run(models, seed=6)
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 1e-3
    assert a.shape == (9, 64, 96, 3) and 0 <= a.min() and a.max() <= 1


def test_default_rng_leaves_global_state_alone(models):
    state = torch.get_rng_state()
    _run(models, recipe="0.9.6-2b-distilled", num_inference_steps=2)
    assert torch.equal(state, torch.get_rng_state())


def test_batched_and_one_by_one_guidance_agree(models):
    """CFG + STG with three branches: one batch of 3 forwards or 3 forwards of 1 give the same video."""
    batched = _run(models, guidance_scale=3, stg_scale=1, rescaling_scale=0.7, batched_guidance=True)
    sequential = _run(models, guidance_scale=3, stg_scale=1, rescaling_scale=0.7, batched_guidance=False)
    assert (batched - sequential).abs().max().item() <= 1e-5


def test_callback_sees_every_step_of_both_passes_and_cancel_stops(models):
    seen = []
    _run(models, recipe="0.9.7-distilled", width=192, height=128,
         callback=lambda step, total, latents: seen.append((step, total, tuple(latents.shape))))
    assert [s[0] for s in seen] == list(range(10)) and {s[1] for s in seen} == {10}
    assert seen[0][2] == (1, 128, 2, 2, 3) and seen[-1][2] == (1, 128, 2, 4, 6)

    class Stop(Exception):
        pass

    calls = []

    def cancel():
        calls.append(1)
        if len(calls) == 3:
            raise Stop

    with pytest.raises(Stop):
        _run(models, cancel=cancel)
    assert len(calls) == 3


def test_steps_argument(models):
    seen = []
    _run(models, recipe="0.9.7-dev", width=192, height=128, steps=6,
         first_pass={"skip_block_list": [[], [0], [1], [2], [2], [2], [2]]}, second_pass={"skip_block_list": [1]},
         callback=lambda step, total, latents: seen.append(total))
    assert seen and seen[0] == len(seen) == 5 + 3  # 6 steps less 1 skipped at the end; 6 less 3 skipped at start
    with pytest.raises(ValueError, match="fixed timesteps"):
        _run(models, recipe="0.9.7-distilled", steps=4)


@pytest.mark.parametrize("kwargs,message", [
    ({"width": 16}, "width=16 is out of range"),
    ({"num_frames": 0}, "num_frames=0 is out of range"),
    ({"frame_rate": 0}, "frame_rate=0"),
    ({"conditions": [Condition(torch.rand(1, 64, 96, 3), 12, 1.5)]}, "strength=1.5"),
    ({"conditions": [Condition(torch.rand(1, 64, 96, 3), 17, 1.0)]}, "start_frame=17"),
    ({"conditions": [Condition(torch.rand(9, 64, 96, 3), 3, 1.0)]}, "multiple of 8"),
    ({"conditions": [Condition(torch.rand(64, 96, 3), 0, 1.0)]}, "frames, height, width, 3"),
    ({"recipe": "0.9.7-dev", "upsampler": None}, "needs the latent upsampler"),
    ({"recipe": "0.9.7-dev", "width": 32, "height": 32}, "too small for a multi-scale recipe"),
    ({"rng": "cosmic"}, "rng='cosmic'"),
])
def test_bad_input_is_a_sentence(models, kwargs, message):
    checkpoint, upsampler = models
    arguments = dict(width=96, height=64, num_frames=17, frame_rate=24.0, seed=5, recipe="0.9.6-2b-dev",
                     upsampler=upsampler)
    arguments.update(kwargs)
    if arguments["recipe"] == "0.9.6-2b-dev":
        arguments.update(num_inference_steps=2, skip_block_list=[1])
    with pytest.raises(ValueError, match=message):
        generate(checkpoint, **_prompts(), **arguments)


def test_named_single_scale_recipe_uses_no_upsampler(models):
    checkpoint, _ = models
    seen = []
    generate(checkpoint, **_prompts(), width=96, height=64, num_frames=9, frame_rate=24.0, seed=1,
             recipe="0.9.7-dev-single-scale", steps=4, skip_block_list=[[], [0], [1], [2], [2], [2], [2]],
             callback=lambda step, total, latents: seen.append(total))
    assert seen == [4] * 4


def test_prompts_of_different_lengths_and_per_condition_crf(models):
    checkpoint, upsampler = models
    prompts = _prompts()
    prompts["negative_context"], prompts["negative_context_mask"] = torch.randn(1, 3, 64), torch.ones(1, 3)
    image = torch.rand(1, 64, 96, 3, generator=torch.Generator().manual_seed(0))
    base = dict(width=96, height=64, num_frames=9, frame_rate=24.0, seed=5, recipe="0.9.6-2b-dev",
                skip_block_list=[1], num_inference_steps=2)
    frames = generate(checkpoint, **prompts, conditions=[Condition(image, 0, 1.0, crf=0)], **base)
    assert frames.shape == (9, 64, 96, 3)
    from ltx_core.sampling.preparation import prepare_conditions

    items = [Condition(image, 0, 1.0, crf=0), Condition(image, 8, 1.0)]
    (plain, _, _), (compressed, _, _) = prepare_conditions(items, 96, 64, 9, (0, 0, 0, 0), crf=29).conditions
    from ltx_core.sampling.condition_media import gaussian_blur

    blurred = gaussian_blur(image.permute(0, 3, 1, 2))[0] * 2 - 1
    assert torch.allclose(plain[0, :, 0], blurred, atol=1e-5)  # crf 0: blurred, not compressed
    assert (plain - compressed).abs().max() > 0.05


def test_decode_progress_reports_latent_frames(models):
    from ltx_core import decode_video, sample_video

    checkpoint, _ = models
    video = sample_video(checkpoint, **_prompts(), width=96, height=64, num_frames=17, frame_rate=24.0, seed=5,
                         recipe="0.9.6-2b-distilled", num_inference_steps=2)
    steps = []
    frames = decode_video(checkpoint.vae, video, chunk_frames=1,
                          progress=lambda done, total: steps.append((done, total)))
    assert steps == [(1, 3), (2, 3), (3, 3)] and frames.shape == (17, 64, 96, 3)
