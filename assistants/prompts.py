"""What prompt expansion does with a given prompt and conditioning, and fitting its result into T5's budget.

The official 0.9.7 pipeline expands a prompt only when it is short (fewer words than a threshold, 120), writes a
text-to-video prompt when there is no conditioning, captions the image and writes an image-to-video prompt when
the only condition is an image at frame 0, and keeps the prompt for any other conditioning.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

T5_TOKEN_BUDGET = 256
"""Tokens LTX-Video's text encoder reads, end token included."""
OFFICIAL_WORD_THRESHOLD = 120

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class EnhancePlan:
    """`mode` is "t2v", "i2v" (then `image` is the `[H, W, 3]` frame in [0, 1] to caption) or "keep"; `reason`
    says why in a sentence (shown in the log and the node's output)."""

    mode: str
    reason: str
    image: torch.Tensor | None = None


def word_count(text: str) -> int:
    return len(text.split())


def plan_enhancement(prompt: str, conditions: Sequence[Any] | None = None,
                     keep_prompts_from_words: int = OFFICIAL_WORD_THRESHOLD) -> EnhancePlan:
    """Decide what to do with `prompt` given the conditions (objects with `media` `[F, H, W, 3]` and
    `start_frame`); `keep_prompts_from_words` > 0 keeps prompts of at least that many words as written."""
    words = word_count(prompt)
    if not prompt.strip():
        return EnhancePlan("keep", "the prompt is empty: nothing to expand")
    if keep_prompts_from_words > 0 and words >= keep_prompts_from_words:
        return EnhancePlan("keep", f"the prompt has {words} words (at least {keep_prompts_from_words}): "
                                   "kept as written")
    items = list(conditions or ())
    if not items:
        return EnhancePlan("t2v", "no conditions: text-to-video expansion")
    if len(items) == 1 and items[0].media.shape[0] == 1 and int(items[0].start_frame) == 0:
        return EnhancePlan("i2v", "one image at frame 0: image-to-video expansion from its caption",
                           image=items[0].media[0])
    described = ", ".join(f"{'image' if c.media.shape[0] == 1 else 'video'} at frame {int(c.start_frame)}"
                          for c in items)
    return EnhancePlan("keep", f"prompt expansion covers text to video and one image at frame 0, not these "
                               f"conditions ({described}): the prompt is kept as written")


def fit_to_budget(text: str, count_tokens: Callable[[str], int], budget: int = T5_TOKEN_BUDGET) -> str:
    """`text` cut so that `count_tokens(text)` ≤ `budget`: whole sentences while they fit, else whole words."""
    text = " ".join(text.split())
    if count_tokens(text) <= budget:
        return text
    sentences = _SENTENCE_END.split(text)
    kept = ""
    for sentence in sentences:
        candidate = f"{kept} {sentence}".strip()
        if count_tokens(candidate) > budget:
            break
        kept = candidate
    if kept:
        return kept
    words = text.split()
    low, high = 0, len(words)  # the largest word count that fits
    while low < high:
        middle = (low + high + 1) // 2
        if count_tokens(" ".join(words[:middle])) <= budget:
            low = middle
        else:
            high = middle - 1
    return " ".join(words[:low])
