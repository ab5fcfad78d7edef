"""Decoding sampled latents to frames chunk by chunk, so a long video never needs a full-length frame tensor.

`VideoLatents` is what sampling hands over; `iter_decode_video` yields the final frames (decode noise, tone map,
VAE, resize to the padded size, crop) a few at a time and `decode_video` gathers them. The latents themselves
are small (1/1000 of the frames' size) and go to the device whole, so the decode noise is drawn exactly as in a
one-shot decode.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .non_finite import check_finite
from .randomness import Randomness


@dataclass
class VideoLatents:
    """Sampled latents and what decoding needs to turn them into exactly the requested frames."""

    latents: torch.Tensor  # normalised [B, C, F, H, W] at the last pass's size
    width: int
    height: int
    num_frames: int
    frame_rate: float
    padding: tuple[int, int, int, int]  # (left, right, top, bottom) around the requested size
    decode_timestep: float
    decode_noise_scale: float
    tone_map_compression_ratio: float
    seed: int
    rng: str = "default"

    @property
    def padded_size(self) -> tuple[int, int]:
        left, right, top, bottom = self.padding
        return self.height + top + bottom, self.width + left + right


def tone_map(latents: torch.Tensor, compression: float) -> torch.Tensor:
    """Sigmoid compression of large latent values (0 = identity), applied before decoding."""
    if not 0 <= compression <= 1:
        raise ValueError(f"tone_map_compression_ratio={compression} must lie in [0, 1]")
    scale = compression * 0.75
    return latents * (1.0 - 0.8 * scale * torch.sigmoid(4.0 * scale * (latents.abs() - 1.0)))


def iter_decode_video(vae, video: VideoLatents, *, cancel: Callable[[], None] | None = None,
                      chunk_frames: int | None = None, device: torch.device | None = None,
                      progress: Callable[[int, int], None] | None = None) -> Iterator[torch.Tensor]:
    """Yield frames `[f, height, width, 3]` float in [0, 1] on the CPU, in order, `video.num_frames` in all."""
    latents = video.latents
    if device is not None:
        latents = latents.to(device)
    dtype = next(vae.parameters()).dtype
    padded_h, padded_w = video.padded_size
    left, right, top, bottom = video.padding
    remaining = video.num_frames
    with torch.no_grad():
        if vae.decoder.timestep_conditioning and video.decode_noise_scale:
            noise = _decode_noise(latents, video)
            scale = torch.tensor([video.decode_noise_scale] * latents.shape[0], device=latents.device)
            latents = latents * (1 - scale[:, None, None, None, None]) + noise * scale[:, None, None, None, None]
            del noise
        latents = tone_map(latents, video.tone_map_compression_ratio)
        timestep = torch.tensor([video.decode_timestep] * latents.shape[0])
        for pixels in vae.decode_chunks(latents, timestep=timestep, noise_scale=0.0, dtype=dtype, cancel=cancel,
                                        chunk_frames=chunk_frames, progress=progress):
            if remaining <= 0:
                continue
            check_finite(pixels, "the VAE decode (the decoded frames)", vae, model_name="VAE",
                         causes="NaN or infinite weights in the VAE (the checkpoint's vae.* tensors), or float16 "
                                "overflow in it")
            frames = (pixels / 2 + 0.5).clamp(0, 1)
            del pixels
            if tuple(frames.shape[3:]) != (padded_h, padded_w):
                count = frames.shape[2]
                flat = F.interpolate(frames.transpose(1, 2).flatten(0, 1), size=(padded_h, padded_w),
                                     mode="bilinear", align_corners=False)
                frames = flat.unflatten(0, (frames.shape[0], count)).transpose(1, 2)
            frames = frames[0, :, :remaining, top:padded_h - bottom, left:padded_w - right]
            remaining -= frames.shape[1]
            yield frames.permute(1, 2, 3, 0).float().cpu()


def _decode_noise(latents: torch.Tensor, video: VideoLatents) -> torch.Tensor:
    if video.rng == "reference":
        return torch.randn_like(latents)
    generator = torch.Generator(device=latents.device).manual_seed(Randomness.decode_seed(video.seed))
    return torch.randn(latents.shape, generator=generator, device=latents.device, dtype=latents.dtype)


def decode_video(vae, video: VideoLatents, *, cancel: Callable[[], None] | None = None,
                 chunk_frames: int | None = None, device: torch.device | None = None,
                 progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """Decode sampled latents to frames `[num_frames, height, width, 3]` float in [0, 1] on the CPU.

    Adds the recipe's decode noise (from a generator seeded by the video's seed, or the global RNG in reference
    mode), decodes in chunks of latent frames (`progress(done, total)` in latent frames and `cancel()` run after
    each), resizes to the padded size when the last pass ran larger (multi-scale), and crops the padding and extra
    frames. `iter_decode_video` gives the same frames chunk by chunk.
    """
    chunks = list(iter_decode_video(vae, video, cancel=cancel, chunk_frames=chunk_frames, device=device,
                                    progress=progress))
    return torch.cat(chunks) if len(chunks) > 1 else chunks[0]
