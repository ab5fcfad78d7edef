"""Upsampling finished video latents: the temporal upscaler doubles the frame rate, the spatial one the size.

What the official pack's `LTXVLatentUpsampler` node does between passes (un-normalise, upsample, re-normalise),
applied to a `VideoLatents` with its geometry updated so that decoding gives the new video: the temporal ×2
upsampler (`ltxv-temporal-upscaler-0.9.7`) turns latent frames `F` into `2F - 1` (its first output frame is
dropped, as the causal VAE's first latent frame stands alone), so `N` frames become `2N - 1` at twice the frame
rate; the spatial one doubles width, height and padding.
"""

from __future__ import annotations

import dataclasses

import torch

from .decoding import VideoLatents
from .non_finite import check_finite


def upsample_video(vae, upsampler, video: VideoLatents) -> VideoLatents:
    """`video` with its latents upsampled by `upsampler` (an `ltx_core.LatentUpsampler`) on its device."""
    device = next(upsampler.parameters()).device
    with torch.no_grad():
        denormalized = vae.denormalize(video.latents.to(next(vae.parameters()).device)).to(device)
        upsampled = vae.normalize(upsampler(denormalized).to(video.latents.device))
    check_finite(upsampled, "the latent upsampler's output", upsampler,
                 causes="NaN or infinite weights in the latent upsampler file, or float16 overflow in it",
                 model_name="latent upsampler")
    frames, rows, columns = upsampler.factor
    changes = {"latents": upsampled}
    if frames == 2:
        changes.update(num_frames=2 * video.num_frames - 1, frame_rate=2 * video.frame_rate)
    if rows == 2:
        changes.update(width=2 * video.width, height=2 * video.height,
                       padding=tuple(2 * side for side in video.padding))
    return dataclasses.replace(video, **changes)
