"""Where the random numbers of a generation come from.

By default every draw comes from one generator seeded by `seed`, so a run is reproducible without touching global
state. The official pipeline draws the sampling noise from its generator but the VAE's posterior sample, the decode
noise and the stochastic-sampling noise from torch's global RNG (seeded by `seed_everething`); `mode="reference"`
copies that so parity tests can compare bit for bit.
"""

from __future__ import annotations

import torch

MODES = ("default", "reference")


class Randomness:
    def __init__(self, seed: int, device: torch.device | str, mode: str = "default"):
        if mode not in MODES:
            raise ValueError(f"rng='{mode}' is not supported (allowed: {', '.join(MODES)})")
        self.device = torch.device(device)
        self.generator = torch.Generator(device=self.device).manual_seed(int(seed))
        self.reference = mode == "reference"
        if self.reference:
            torch.manual_seed(int(seed))
            if torch.cuda.is_available():
                torch.cuda.manual_seed(int(seed))

    def randn(self, shape: tuple, dtype: torch.dtype) -> torch.Tensor:
        """Sampling noise: always from the generator."""
        return torch.randn(shape, generator=self.generator, device=self.device, dtype=dtype)

    def global_randn_like(self, like: torch.Tensor) -> torch.Tensor:
        """Decode and stochastic-sampling noise: the global RNG in reference mode."""
        if self.reference:
            return torch.randn_like(like)
        return torch.randn(like.shape, generator=self.generator, device=like.device, dtype=like.dtype)

    @staticmethod
    def decode_seed(seed: int) -> int:
        """Seed of the decode noise in default mode: derived from the run's seed, independent of the sampling."""
        return (int(seed) * 1_000_003 + 0xDEC0DE) % (2 ** 63)

    @property
    def vae_generator(self) -> torch.Generator | None:
        """Generator for the VAE's posterior sample (None: the global RNG, as the reference)."""
        return None if self.reference else self.generator
