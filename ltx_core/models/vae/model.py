"""`CausalVideoVAE`: encoder, decoder, latent statistics and the official encode/decode conventions."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch import nn

from .config import VAEConfig
from .decoder import Decoder
from .encoder import Encoder
from .streaming import DecodeStream, gaussian_noise

logger = logging.getLogger(__name__)

# Budget for the automatic chunk size when the device's free memory is unknown (CPU, MPS).
DEFAULT_DECODE_BUDGET_BYTES = 2 << 30
# Fraction of free CUDA memory one decode chunk may use, and how many peak-sized activations live at once
# (input, conv output, norm/modulation temporaries, skip queue).
CUDA_BUDGET_FRACTION = 0.5
LIVE_ACTIVATIONS = 6


class PerChannelStatistics(nn.Module):
    """`std-of-means` / `mean-of-means` under their official (hyphenated) names, so the file's keys load as is.

    The files carry three more statistics the official code never uses; they are dropped when loading.
    """

    IGNORED = ("mean-of-stds", "mean-of-stds_over_std-of-means", "channel")

    def __init__(self, channels: int, *, dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None) -> None:
        super().__init__()
        self.register_buffer("std-of-means", torch.ones(channels, dtype=dtype, device=device))
        self.register_buffer("mean-of-means", torch.zeros(channels, dtype=dtype, device=device))

    def _load_from_state_dict(self, state_dict: Mapping[str, Any], prefix: str, *args: Any) -> None:
        ignored = {prefix + name for name in self.IGNORED}
        kept = {key: value for key, value in state_dict.items() if key not in ignored}
        super()._load_from_state_dict(kept, prefix, *args)

    def std(self, like: torch.Tensor) -> torch.Tensor:
        return getattr(self, "std-of-means").to(device=like.device, dtype=like.dtype).view(1, -1, 1, 1, 1)

    def mean(self, like: torch.Tensor) -> torch.Tensor:
        return getattr(self, "mean-of-means").to(device=like.device, dtype=like.dtype).view(1, -1, 1, 1, 1)


def _per_sample(value: float | torch.Tensor, batch: int, device: torch.device) -> torch.Tensor:
    """A float or `[B]` tensor → fp32 `[B]`, as the official pipeline builds `torch.tensor([v] * B)`."""
    value = torch.as_tensor(value, dtype=torch.float32).to(device).reshape(-1)
    return value.expand(batch) if value.numel() == 1 else value


class CausalVideoVAE(nn.Module):
    """LTX-Video's causal video VAE (0.9.x layout). Latents outside this class are always per-channel normalised."""

    def __init__(self, config: VAEConfig, *, dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None, operations=nn) -> None:
        super().__init__()
        self.config = config
        kw = dict(dtype=dtype, device=device, operations=operations)
        self.encoder = Encoder(config, **kw)
        self.decoder = Decoder(config, **kw)
        self.per_channel_statistics = PerChannelStatistics(config.latent_channels, dtype=dtype, device=device)
        if config.use_quant_conv:
            channels = config.latent_channels
            self.quant_conv = operations.Conv3d(2 * channels, 2 * channels, 1, dtype=dtype, device=device)
            self.post_quant_conv = operations.Conv3d(channels, channels, 1, dtype=dtype, device=device)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, dtype: torch.dtype | None = None,
                    device: torch.device | str | None = None, operations=nn) -> CausalVideoVAE:
        """Build from the official `vae` config dict (`json.loads(metadata["config"])["vae"]`)."""
        return cls(VAEConfig.from_dict(config), dtype=dtype, device=device, operations=operations)

    @property
    def spatial_compression(self) -> int:
        return self.config.spatial_compression

    @property
    def temporal_compression(self) -> int:
        return self.config.temporal_compression

    @property
    def latent_channels(self) -> int:
        return self.config.latent_channels

    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        return (z - self.per_channel_statistics.mean(z)) / self.per_channel_statistics.std(z)

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.per_channel_statistics.std(z) + self.per_channel_statistics.mean(z)

    def posterior(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Un-normalised posterior mean and clamped log-variance (None when the config has no variance)."""
        moments = self.encoder(video)
        if self.config.use_quant_conv:
            moments = self.quant_conv(moments)
        channels = self.config.latent_channels
        mean = moments[:, :channels]
        log_var = self.config.latent_log_var
        if log_var == "per_channel":
            logvar = moments[:, channels:]
        elif log_var == "uniform":
            logvar = moments[:, channels:].expand_as(mean)
        elif log_var == "constant":
            logvar = torch.full_like(mean, -30.0)
        else:
            return mean, None
        return mean, torch.clamp(logvar, -30.0, 20.0)

    def encode(self, video: torch.Tensor, *, sample: bool = False,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """`[B, 3, 8k+1, H, W]` in [-1, 1] → normalised latents `[B, C, k+1, H/32, W/32]`.

        `sample=True` draws `mean + exp(logvar / 2) · ε` like the official `latent_dist.sample()`, with ε from
        `generator` (the official code uses the global RNG).
        """
        frames = video.shape[2]
        if (frames - 1) % self.temporal_compression:
            raise ValueError(f"video has {frames} frames; expected {self.temporal_compression}·k + 1")
        if video.shape[3] % self.spatial_compression or video.shape[4] % self.spatial_compression:
            raise ValueError(f"video size {tuple(video.shape[3:])} is not a multiple of {self.spatial_compression}")
        mean, logvar = self.posterior(video)
        z = mean
        if sample and logvar is not None:
            z = mean + torch.exp(0.5 * logvar) * gaussian_noise(tuple(mean.shape), mean, generator)
        return self.normalize(z)

    def decode(self, latents: torch.Tensor, *, timestep: float | torch.Tensor = 0.05,
               noise_scale: float | torch.Tensor = 0.025, generator: torch.Generator | None = None,
               chunk_frames: int | None = None, cancel: Callable[[], None] | None = None,
               dtype: torch.dtype | None = None,
               progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
        """Normalised latents → pixels `[B, 3, F, H, W]` in about [-1, 1] (not clamped).

        As in the official pipeline, a timestep-conditioned decoder first blends noise into the normalised
        latents (`latents·(1−s) + ε·s` with fp32 `s`, ε drawn in the latents' dtype from `generator`; skipped
        when s is 0) and is run at `timestep`; a decoder without conditioning gets neither. The official pipeline
        blends in fp32 and only then casts to the VAE dtype: pass fp32 latents and `dtype=torch.bfloat16` to do the
        same. The decoder runs in `dtype` (default: the latents' dtype).
        Decoding runs over chunks of `chunk_frames` latent frames (default: sized from free memory) and equals
        the one-shot decode up to float rounding (the convolutions see other tensor sizes); after every chunk
        `progress(done, total)` reports latent frames and `cancel()` may raise to abort.
        """
        chunks = self.decode_chunks(latents, timestep=timestep, noise_scale=noise_scale, generator=generator,
                                    chunk_frames=chunk_frames, cancel=cancel, dtype=dtype, progress=progress)
        return self._gather(chunks, self.decoder.output_frames(latents.shape[2]))

    def decode_chunks(self, latents: torch.Tensor, *, timestep: float | torch.Tensor = 0.05,
                      noise_scale: float | torch.Tensor = 0.025, generator: torch.Generator | None = None,
                      chunk_frames: int | None = None, cancel: Callable[[], None] | None = None,
                      dtype: torch.dtype | None = None,
                      progress: Callable[[int, int], None] | None = None) -> Iterator[torch.Tensor]:
        """`decode`, yielding the pixels chunk by chunk (`[B, 3, f, H, W]`), so no full-length tensor is needed."""
        batch = latents.shape[0]
        t = None
        if self.decoder.timestep_conditioning:
            t = _per_sample(timestep, batch, latents.device)
            scale = _per_sample(noise_scale, batch, latents.device)
            if bool((scale != 0).any()):
                scale = scale[:, None, None, None, None]
                noise = gaussian_noise(tuple(latents.shape), latents, generator)
                latents = (latents * (1 - scale) + noise * scale).to(latents.dtype)
        z = self.denormalize(latents.to(dtype or latents.dtype))
        yield from self.decode_unnormalized_chunks(z, t, generator=generator, chunk_frames=chunk_frames,
                                                   cancel=cancel, progress=progress)

    def decode_unnormalized(self, z: torch.Tensor, timestep: torch.Tensor | None, *,
                            generator: torch.Generator | None = None, chunk_frames: int | None = None,
                            cancel: Callable[[], None] | None = None,
                            progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
        """The decoder on un-normalised latents and `[B]` (unscaled) timesteps, chunk by chunk.

        `generator` feeds the decoder's noise injection (global RNG without one).
        """
        chunks = self.decode_unnormalized_chunks(z, timestep, generator=generator, chunk_frames=chunk_frames,
                                                 cancel=cancel, progress=progress)
        return self._gather(chunks, self.decoder.output_frames(z.shape[2]))

    @staticmethod
    def _gather(chunks: Iterator[torch.Tensor], total: int) -> torch.Tensor:
        """Copy chunks into one preallocated tensor (no second full-size copy, as `torch.cat` would make)."""
        out: torch.Tensor | None = None
        written = 0
        for pixels in chunks:
            if out is None:
                out = pixels.new_empty(*pixels.shape[:2], total, *pixels.shape[3:])
            out[:, :, written:written + pixels.shape[2]] = pixels
            written += pixels.shape[2]
            del pixels
        return out

    def decode_unnormalized_chunks(self, z: torch.Tensor, timestep: torch.Tensor | None, *,
                                   generator: torch.Generator | None = None, chunk_frames: int | None = None,
                                   cancel: Callable[[], None] | None = None,
                                   progress: Callable[[int, int], None] | None = None) -> Iterator[torch.Tensor]:
        """`decode_unnormalized`, yielding each chunk's pixels as soon as the decoder gives them."""
        frames = z.shape[2]
        if frames < 1:
            raise ValueError("cannot decode zero latent frames")
        chunk = self._chunk_frames(z, chunk_frames)
        stream = DecodeStream(generator)
        total = self.decoder.output_frames(frames)
        written = 0
        for start in range(0, frames, chunk):
            stream.final = start + chunk >= frames
            part = z[:, :, start:start + chunk]
            if self.config.use_quant_conv:
                part = self.post_quant_conv(part)
            pixels = self.decoder(part, timestep, stream)
            if pixels.shape[2]:
                written += pixels.shape[2]
                yield pixels
            del pixels
            if progress is not None:
                progress(min(start + chunk, frames), frames)
            if cancel is not None:
                cancel()
        if written != total:
            raise RuntimeError(f"streamed decode produced {written} of {total} frames")

    def _chunk_frames(self, z: torch.Tensor, requested: int | None) -> int:
        frames = z.shape[2]
        if self.decoder.mixes_frames:
            if requested is not None:
                logger.warning("GroupNorm decoders mix all frames; decoding %d latent frames in one chunk", frames)
            return frames
        if requested is not None:
            if requested < 1:
                raise ValueError(f"chunk_frames must be >= 1, got {requested}")
            return requested
        per_frame = self.decoder.peak_elements_per_latent_frame(z.shape[3], z.shape[4])
        per_frame *= z.shape[0] * z.element_size() * LIVE_ACTIVATIONS
        if z.device.type == "cuda":
            budget = torch.cuda.mem_get_info(z.device)[0] * CUDA_BUDGET_FRACTION
        else:
            budget = DEFAULT_DECODE_BUDGET_BYTES
        chunk = max(1, min(frames, int(budget // per_frame)))
        logger.debug("decoding %d latent frames in chunks of %d", frames, chunk)
        return chunk
