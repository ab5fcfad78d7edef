"""A guided denoising step equals the official transformer run by hand on the concatenated sequence (fp32).

The official `Transformer3DModel` has no guides: the test builds what ComfyUI core's `LTXVAddGuide` feeds it (the
video's tokens, then the guide's, with the guide's pixel coordinates: causal fix only at frame 0, plus the start
frame) and per-token timesteps `min(σ, 1 - strength)`, and compares one step of ours against it. Removing the guide
or moving it by one latent frame must move the result by at least 10× the tolerance.
"""

import pytest
import torch

from ltx_core import load_checkpoint
from ltx_core.sampling.conditioning import apply_conditions
from ltx_core.sampling.denoise import PassSettings, Prompts, denoise
from ltx_core.sampling.guidance import resolve_guidance
from ltx_core.sampling.guides import append_guides
from support import tiny

TOL = 1e-5
SIGMA = 0.8
FRAME_RATE = 24.0
COND_NOISE = 0.15


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    config = tiny.transformer_config(num_layers=2)
    reference = tiny.reference_transformer(config, responsive=True)
    path = tiny.save_single_file(tmp_path_factory.mktemp("guides") / "ltxv-tiny.safetensors", transformer=reference,
                                 transformer_config_=config)
    return load_checkpoint(path).transformer, reference


def _inputs():
    g = torch.Generator().manual_seed(5)
    latents = torch.randn(1, 128, 3, 2, 3, generator=g)
    image = torch.randn(1, 128, 1, 2, 3, generator=g)
    guide = torch.randn(1, 128, 2, 2, 3, generator=g)
    context = torch.randn(1, 6, 64, generator=g)
    mask = torch.ones(1, 6, dtype=torch.long)
    mask[:, 4:] = 0
    return latents, image, guide, context, mask


def _official_coords(latents, start_frame, causal_fix):
    from ltx_video.models.autoencoders.vae_encode import latent_to_pixel_coords_from_factors
    from ltx_video.models.transformers.symmetric_patchifier import SymmetricPatchifier

    tokens, latent_coords = SymmetricPatchifier(patch_size=1).patchify(latents)
    pixel = latent_to_pixel_coords_from_factors(latent_coords, (8, 32, 32), causal_fix=causal_fix)
    pixel[:, 0] += start_frame
    return tokens, pixel


def _official_step(reference, tokens_in, pixel, strengths, context, mask):
    """One Euler step of the official transformer from σ to 0 on the given sequence: per-token σ is
    `min(σ, 1 - strength)`, and only tokens with `σ < 1 - strength` move (the official pipeline's rule)."""
    positions = pixel.to(torch.float32)
    positions[:, 0] = positions[:, 0] * (1.0 / FRAME_RATE)
    sigma = torch.clamp(1.0 - strengths, max=SIGMA)
    velocity = reference(tokens_in, indices_grid=positions, encoder_hidden_states=context,
                         timestep=sigma, encoder_attention_mask=mask, return_dict=False)[0]
    moves = (SIGMA - 1e-6 < 1.0 - strengths).unsqueeze(-1)
    return torch.where(moves, tokens_in - sigma.unsqueeze(-1) * velocity, tokens_in)


def _expected(reference, latents, image, guide, context, mask, noise, *, guide_frame, strength,
              with_guide=True):
    """The sequence ComfyUI builds: [video (image written in place at frame 0), guide]; conditioning noise on the
    image's tokens only; the guide starts at `lerp(0, guide, strength)` (the test's noise is 0)."""
    main = latents.clone()
    main[:, :, :1] = image
    main_tokens, main_pixel = _official_coords(main, 0, True)
    strengths = torch.zeros(main_tokens.shape[:2])
    strengths[:, :6] = 1.0
    main_tokens = main_tokens.clone()
    main_tokens[:, :6] += COND_NOISE * noise[:, :6] * SIGMA ** 2
    if not with_guide:
        return _official_step(reference, main_tokens, main_pixel, strengths, context, mask)
    guide_tokens, guide_pixel = _official_coords(guide, guide_frame, guide_frame == 0)
    tokens = torch.cat([main_tokens, strength * guide_tokens], dim=1)
    pixel = torch.cat([main_pixel, guide_pixel], dim=2)
    strengths = torch.cat([strengths, torch.full(guide_tokens.shape[:2], strength)], dim=1)
    return _official_step(reference, tokens, pixel, strengths, context, mask)


@pytest.mark.parametrize("guide_frame, strength, moved_frame", [(0, 1.0, 9), (9, 0.6, 17)])
def test_guided_step_matches_the_official_transformer(models, guide_frame, strength, moved_frame):
    """A first-frame image condition plus a guide (at frame 0, or at 8k+1 with strength < 1)."""
    ours, reference = models
    latents, image, guide, context, mask = _inputs()
    noise = torch.randn(1, 18 + 12, 128, generator=torch.Generator().manual_seed(9))
    conditioned = apply_conditions(latents, [(image, 0, 1.0)], causal_fix=True, noise=None)
    conditioned = append_guides(conditioned, [(guide, guide_frame, strength)], causal_fix=True,
                                noise=lambda shape, dtype, device: torch.zeros(shape))
    timesteps = torch.tensor([SIGMA])
    settings = PassSettings(timesteps=timesteps, guidance=resolve_guidance(timesteps, guidance_scale=1, stg_scale=0,
                                                                           rescaling_scale=1),
                            cfg_star_rescale=False, skip_strategy="attention_values", frame_rate=FRAME_RATE,
                            image_cond_noise_scale=COND_NOISE, stochastic=False, batched_guidance=True)
    prompts = Prompts(context, mask, context, mask)
    with torch.no_grad():
        got = denoise(ours, conditioned, prompts, settings, randn=lambda shape, dtype: noise[:, :shape[1]],
                      global_randn=torch.randn_like)
        expected = _expected(reference, latents, image, guide, context, mask, noise, guide_frame=guide_frame,
                             strength=strength)
        unguided = _expected(reference, latents, image, guide, context, mask, noise, guide_frame=guide_frame,
                             strength=strength, with_guide=False)
        moved = _expected(reference, latents, image, guide, context, mask, noise, guide_frame=moved_frame,
                          strength=strength)
    assert got.shape == expected.shape == (1, 18 + 12, 128)
    difference = (got - expected).abs().max().item()
    assert difference <= TOL, difference
    assert torch.equal(got[:, 18:], conditioned.tokens[:, 18:]), "the guide is neither noised nor stepped at σ 0.8"
    video = conditioned.video_tokens(got)
    assert video.shape == (1, 18, 128)
    assert (video - unguided).abs().max() >= 10 * TOL, "removing the guide must show"
    assert (video - moved[:, :18]).abs().max() >= 10 * TOL, "moving the guide one latent frame must show"
