"""`upsample_video` with the temporal upscaler equals the official `LatentUpsampler` (temporal config) on
un-normalised latents, re-normalised (fp32, ≤ 1e-5), and decodes to 2N - 1 frames at twice the frame rate."""

import pytest
import torch

from ltx_core import VideoLatents, decode_video, load_checkpoint, load_latent_upsampler, upsample_video
from support import tiny

TOL = 1e-5


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("temporal")
    vconfig = tiny.vae_config()
    statistics = tiny.latent_statistics()
    checkpoint = tiny.save_single_file(folder / "vae.safetensors", vae=tiny.reference_vae(vconfig),
                                       vae_config_=vconfig, statistics=statistics)
    uconfig = tiny.upsampler_config(spatial_upsample=False, temporal_upsample=True)
    reference = tiny.reference_upsampler(uconfig)
    path = tiny.save_upsampler(folder / "temporal.safetensors", reference, uconfig)
    return load_checkpoint(checkpoint).vae, load_latent_upsampler(path), reference, statistics


def _video(latents):
    return VideoLatents(latents=latents, width=64, height=64, num_frames=17, frame_rate=24.0, padding=(0, 0, 0, 0),
                        decode_timestep=0.05, decode_noise_scale=0.025, tone_map_compression_ratio=0.0, seed=1)


def test_temporal_upsampler_matches_the_official_one(models):
    vae, upsampler, reference, statistics = models
    latents = torch.randn(1, 128, 3, 2, 2, generator=torch.Generator().manual_seed(4))
    video = upsample_video(vae, upsampler, _video(latents))
    mean, std = statistics["mean-of-means"].view(1, -1, 1, 1, 1), statistics["std-of-means"].view(1, -1, 1, 1, 1)
    with torch.no_grad():
        expected = (reference(latents * std + mean) - mean) / std
    assert video.latents.shape == expected.shape == (1, 128, 5, 2, 2)
    assert (video.latents - expected).abs().max() <= TOL
    repeated = latents.repeat_interleave(2, dim=2)[:, :, 1:]
    assert (video.latents - repeated).abs().max() >= 10 * TOL, "the upsampler must do more than repeat frames"
    assert (video.num_frames, video.frame_rate, video.width, video.height) == (33, 48.0, 64, 64)
    frames = decode_video(vae, video)
    assert frames.shape == (33, 64, 64, 3)


def test_multi_scale_recipes_refuse_the_temporal_upsampler(models):
    from ltx_core.sampling.preparation import checked_settings

    vae, upsampler, _, _ = models
    checkpoint = type("Checkpoint", (), {"transformer": object(), "vae": vae})()
    with pytest.raises(ValueError, match=r"needs the spatial latent upsampler.*\(2, 1, 1\)"):
        checked_settings(checkpoint, "0.9.7-distilled", {}, None, upsampler)
