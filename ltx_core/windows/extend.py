"""Extending a clip: new frames after it (append) or before it (prepend), as a long video with a video condition.

Append generates `context + N` frames with the clip's last `context` frames pinned at frame 0; prepend generates
`N' + context` frames (N rounded up to a multiple of 8, where a later video may start) with the clip's first
`context` frames pinned at frame N'. The given frames are then kept exactly as they were (no VAE round trip) and
only the N new frames are taken from the generated video: the seam sits where the clip's own frames meet frames
generated to continue their VAE-encoded copy.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch

from ..arguments import is_whole
from ..models.grid import FRAMES_PER_LATENT
from ..sampling.conditioning import Condition

DIRECTIONS = ("append", "prepend")
DEFAULT_CONTEXT_FRAMES = 25


@dataclass(frozen=True)
class Extension:
    """What to generate for an extension, and which of the generated frames are new."""

    direction: str
    clip_frames: int
    new_frames: int
    num_frames: int  # frames to generate
    keep_from: int  # the new frames are generated[keep_from:keep_from + new_frames]
    conditions: tuple[Condition, ...]


def plan_extension(clip: torch.Tensor, new_frames: int, *, direction: str = "append",
                   context_frames: int = DEFAULT_CONTEXT_FRAMES, strength: float = 1.0) -> Extension:
    """Plan `new_frames` more frames for `clip` `[F, H, W, 3]` in [0, 1], continuing its `context_frames` (8k+1)."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction='{direction}' is not allowed (allowed: {', '.join(DIRECTIONS)})")
    if not torch.is_tensor(clip) or clip.ndim != 4 or clip.shape[-1] != 3:
        shape = tuple(clip.shape) if torch.is_tensor(clip) else type(clip).__name__
        raise ValueError(f"clip must be frames [frames, height, width, 3], got {shape}")
    if clip.shape[0] == 0:
        raise ValueError("clip has 0 frames: give a clip of at least 1 frame to extend")
    if not is_whole(new_frames, 1):
        raise ValueError(f"new_frames={new_frames!r} is not allowed (allowed: whole numbers from 1)")
    if not is_whole(context_frames, 1) or (context_frames - 1) % FRAMES_PER_LATENT:
        raise ValueError(f"context_frames={context_frames!r} is not allowed (allowed: 8k+1 frames: 1, 9, 17, 25, "
                         f"...)")
    count = clip.shape[0]
    context = min(context_frames, (count - 1) // FRAMES_PER_LATENT * FRAMES_PER_LATENT + 1)
    if direction == "append":
        media = clip[count - context:]
        return Extension(direction, count, new_frames, context + new_frames, context,
                         (Condition(media, start_frame=0, strength=strength),))
    lead = math.ceil(new_frames / FRAMES_PER_LATENT) * FRAMES_PER_LATENT
    return Extension(direction, count, new_frames, lead + context, lead - new_frames,
                     (Condition(clip[:context], start_frame=lead, strength=strength),))


def extended_frames(clip: torch.Tensor, generated: Iterable[torch.Tensor], extension: Extension
                    ) -> Iterator[torch.Tensor]:
    """The clip and the new frames in playing order, chunk by chunk, from the generated frames' chunks."""
    if extension.direction == "append":
        yield clip
    start, end, seen = extension.keep_from, extension.keep_from + extension.new_frames, 0
    for chunk in generated:
        lo, hi = max(start - seen, 0), min(end - seen, chunk.shape[0])
        if lo < hi:
            yield chunk[lo:hi]
        seen += chunk.shape[0]
    if extension.direction == "prepend":
        yield clip
