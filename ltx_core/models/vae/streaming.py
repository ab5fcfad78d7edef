"""State that lets the decoder run on temporal chunks of latents and still equal the one-shot decode
(up to float rounding).

The decoder's convolutions are not causal in time (one replicated frame of padding on each side), so a frame's
output needs the next input frame. Streaming therefore works with a delay: every temporal conv keeps its last
`kernel - 1` input frames (`ConvCache`) and emits an output only once the look-ahead frame has arrived; the last
chunk flushes with the replicated last frame, exactly like the one-shot padding. Residual skips wait in a
`FrameQueue` until the delayed main path catches up, and the "drop the first upsampled frame" rule of
DepthToSpace applies only to the very first frame of the stream (`FirstFrameDrop`). Because each layer only sees
its own input in order, the frames, and therefore the results, are the same for every chunking.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch
from torch import nn

T = TypeVar("T")


class DecodeStream:
    """One decode call: per-module states plus whether the chunk being processed is the last one."""

    def __init__(self, generator: torch.Generator | None = None) -> None:
        self.final = False
        self.generator = generator
        self._states: dict[int, object] = {}

    def state(self, module: nn.Module, factory: Callable[[], T]) -> T:
        """The state `module` keeps between chunks, created on first use."""
        key = id(module)
        if key not in self._states:
            self._states[key] = factory()
        return self._states[key]  # type: ignore[return-value]


class ConvCache:
    """The last `context` input frames of one temporal conv, so a chunk sees the same neighbours as one shot."""

    def __init__(self) -> None:
        self.started = False
        self.frames: torch.Tensor | None = None

    def window(self, x: torch.Tensor, *, context: int, front: int, back: int, final: bool) -> torch.Tensor:
        """The frames the conv must run on now: cached context (or the replicated first frame) + `x` (+ flush).

        One concatenation per call, and no cached copy after the last chunk, so a one-shot decode holds no more
        activations than the reference's padding does.
        """
        if not self.started and x.shape[2] == 0:
            return x
        parts = []
        if not self.started:
            self.started = True
            parts.append(x[:, :, :1].expand(-1, -1, front, -1, -1))
        elif self.frames is not None:
            parts.append(self.frames)
        parts.append(x)
        if final:
            last = next(p for p in reversed(parts) if p.shape[2])[:, :, -1:]
            parts.append(last.expand(-1, -1, back, -1, -1))
        window = torch.cat(parts, dim=2) if len(parts) > 1 else x
        if final or not context:
            self.frames = None
        else:
            self.frames = window[:, :, window.shape[2] - context:].clone()
        return window


class FrameQueue:
    """Skip-path frames waiting for the main path, which each temporal conv delays by its look-ahead."""

    def __init__(self) -> None:
        self.frames: torch.Tensor | None = None

    def align(self, skip: torch.Tensor, count: int) -> torch.Tensor:
        """Queue `skip` and return the oldest `count` frames (as many as the main path just produced)."""
        frames = skip if self.frames is None else torch.cat([self.frames, skip], dim=2)
        self.frames = frames[:, :, count:].clone()
        return frames[:, :, :count]


class FirstFrameDrop:
    """Drops the first frame of a stream once (temporal DepthToSpace discards its first output frame)."""

    def __init__(self) -> None:
        self.done = False

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.done or x.shape[2] == 0:
            return x
        self.done = True
        return x[:, :, 1:]


def gaussian_noise(shape: tuple[int, ...], like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """`randn` in `like`'s dtype from `generator` (on its device, then moved) or, without one, the global RNG."""
    device = generator.device if generator is not None else like.device
    return torch.randn(shape, generator=generator, device=device, dtype=like.dtype).to(like.device)
