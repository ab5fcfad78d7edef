"""The first-block step cache: its rule on constructed sequences, per-branch state, fresh caches per pass, and
equality with the plain path when it never reuses (threshold 0 is the plain path itself)."""

from __future__ import annotations

import pytest
import torch

from ltx_core import generate, load_checkpoint, load_latent_upsampler, sample_video
from ltx_core.acceleration import StepCache
from ltx_core.acceleration import step_cache as step_cache_module
from support import tiny


class _Blocks:
    """Stand-in blocks: the first adds this step's residual, the rest add 10 and record the rows they ran on."""

    def __init__(self):
        self.residual = None
        self.calls = []

    def first(self, x):
        return x + self.residual

    def rest(self, h, rows):
        self.calls.append(None if rows is None else rows.tolist())
        return h + 10.0


def _steps(cache: StepCache, residuals, branches=("cond",), rows=1):
    blocks, outputs = _Blocks(), []
    x = torch.ones(rows * len(branches), 4, 2)
    for step, residual in enumerate(residuals):
        cache.at_step(step)
        blocks.residual = residual
        outputs.append(cache.for_branches(branches, rows).run(x, blocks.first, blocks.rest))
    return blocks, outputs


def test_the_rule_on_a_constructed_sequence():
    """Reuse when the first block moved < 10 % since the last computed step; never on the first and last steps;
    at most 2 reuses in a row."""
    base = torch.full((1, 4, 2), 1.0)
    scales = [1.0, 1.01, 1.02, 1.03, 2.0, 2.05, 1.0, 1.0, 1.0]
    cache = StepCache(threshold=0.1, num_steps=len(scales), max_reuse=2)
    blocks, outputs = _steps(cache, [base * s for s in scales])
    # step: 0 first → compute; 1, 2 reuse (1 %, 2 % from step 0); 3 cap → compute; 4 +94 % → compute;
    # 5 (2.5 % from step 4) reuse; 6 −50 % → compute; 7 reuse (0 %); 8 last → compute
    assert cache.reused == {"cond": 4} and cache.computed == {"cond": 5}
    assert len(blocks.calls) == 5
    # a reused step adds the residual the rest added at the last computed step (10) to this step's first output
    assert torch.equal(outputs[2], 1 + base * 1.02 + 10.0)


def test_threshold_zero_never_reuses_and_is_checked():
    cache = StepCache(threshold=0.0, num_steps=4)
    _steps(cache, [torch.ones(1, 4, 2)] * 4)
    assert cache.reused == {} and cache.computed == {"cond": 4}
    for bad in (-0.1, float("nan")):
        with pytest.raises(ValueError, match="step cache threshold"):
            StepCache(threshold=bad, num_steps=4)


def test_each_branch_has_its_own_cache_and_only_changed_branches_run():
    """uncond stays put and is reused; cond moves and is computed: the deep blocks run on cond's rows only."""
    steady, moving = torch.ones(2, 4, 2), [torch.ones(2, 4, 2) * (1 + step) for step in range(4)]
    residuals = [torch.cat([steady, moving[step]]) for step in range(4)]
    cache = StepCache(threshold=0.05, num_steps=4)
    blocks, _ = _steps(cache, residuals, branches=("uncond", "cond"), rows=2)
    assert cache.reused == {"uncond": 2} and cache.computed == {"uncond": 2, "cond": 4}
    assert blocks.calls == [None, [2, 3], [2, 3], None]


# ------------------------------------------------------------------------------------------------------------------
# On a tiny model


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    ckpt, up = tiny.save_model_set(tmp_path_factory.mktemp("step_cache"))
    return load_checkpoint(ckpt), load_latent_upsampler(up)


def _prompts():
    g = torch.Generator().manual_seed(0)
    return dict(context=torch.randn(1, 6, 64, generator=g), context_mask=torch.ones(1, 6),
                negative_context=torch.randn(1, 6, 64, generator=g), negative_context_mask=torch.ones(1, 6))


def _latents(models, **overrides):
    checkpoint, upsampler = models
    settings = dict(width=96, height=64, num_frames=9, frame_rate=24.0, seed=5, recipe="0.9.6-2b-dev",
                    skip_block_list=[1], num_inference_steps=6, guidance_scale=3, stg_scale=1)
    settings.update(overrides)
    return sample_video(checkpoint, upsampler=upsampler, **_prompts(), **settings).latents


def test_a_cache_that_never_reuses_equals_the_plain_path_bit_for_bit(models):
    plain = _latents(models)
    assert torch.equal(plain, _latents(models, step_cache_threshold=0.0))
    assert torch.equal(plain, _latents(models, step_cache_threshold=1e-12))
    one_by_one = _latents(models, batched_guidance=False)
    assert torch.equal(one_by_one, _latents(models, step_cache_threshold=1e-12, batched_guidance=False))


def test_caches_are_fresh_for_every_pass_and_run(models, monkeypatch):
    made = []

    class Recording(StepCache):
        def __post_init__(self):
            super().__post_init__()
            made.append(self)

    monkeypatch.setattr("ltx_core.sampling.passes.StepCache", Recording)
    checkpoint, upsampler = models
    for _ in range(2):
        generate(checkpoint, upsampler=upsampler, **_prompts(), width=192, height=128, num_frames=9,
                 frame_rate=24.0, seed=1, recipe="0.9.7-dev", step_cache_threshold=0.5,
                 first_pass={"skip_block_list": [[], [0], [1], [2], [2], [2], [2]], "num_inference_steps": 6},
                 second_pass={"skip_block_list": [1], "skip_initial_inference_steps": 3, "num_inference_steps": 6})
    assert len(made) == 4 and len({id(cache) for cache in made}) == 4  # 2 passes × 2 runs, each its own
    for cache in made:
        assert cache.num_steps in (3, 3)  # 6 steps less the 3 the dev first pass skips at the end; 6 - 3
        assert sum(cache.computed.values()) >= 2  # its first and last steps ran in full


def test_a_threshold_skips_forwards_and_stays_close(models, monkeypatch):
    made = []
    original = step_cache_module.StepCache.__post_init__

    def record(self):
        original(self)
        made.append(self)

    monkeypatch.setattr(step_cache_module.StepCache, "__post_init__", record)
    plain = _latents(models, num_inference_steps=10)
    cached = _latents(models, num_inference_steps=10, step_cache_threshold=0.3)
    (cache,) = made
    assert sum(cache.reused.values()) > 0, (cache.reused, cache.computed)
    assert set(cache.computed) == {"uncond", "cond", "perturbed"}
    assert torch.isfinite(cached).all() and not torch.equal(plain, cached)
    assert (cached - plain).abs().mean() < 0.5 * plain.abs().mean()
