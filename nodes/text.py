"""Prompt encoding with the host's T5-XXL (core `CLIPLoader`, type `ltxv`), the way the reference does it.

The reference tokenises with `truncation=True, max_length=256` and pads to 256: at most 255 prompt tokens, then
the end token, then padding, with a 0/1 mask over them. The conditioning this produces is core's own format
(`[[cond [1, 256, 4096], {"pooled_output": None, "attention_mask": [1, 256] 0/1}]]`), so it also feeds core
nodes, and the sampler takes core `CLIPTextEncode` output as well (`prompt_context`).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from comfy_api.latest import io

from ..hosted import DEFAULT_NEGATIVE_PROMPT, TEXT_ENCODER_FILE
from ..ltx_core.models.grid import TEXT_TOKENS
from .inputs import CATEGORY, clip_input, negative_prompt_input, prompt_input

logger = logging.getLogger(__name__)

T5_KEY = "t5xxl"
T5_END, T5_PAD = 1, 0
NOT_T5 = (f"this CLIP is not a T5-XXL text encoder; load {TEXT_ENCODER_FILE} (or another T5-XXL file) from "
          "models/text_encoders with the core Load CLIP node, type ltxv")


WINDOW_SEPARATOR = "---"


def reference_tokens(clip, text: str, max_tokens: int = TEXT_TOKENS) -> dict[str, list]:
    """The host tokenizer's tokens for `text`, cut and padded like the reference (`max_length=256`).

    The prompt goes to T5 as written (`strip()` only, as the reference does): ComfyUI's `(word:1.2)` weighting
    is not applied. Returns `{"t5xxl": [[(token, 1.0), ...]]}` of exactly `max_tokens` entries, end token last
    among the real ones.
    """
    tokens = clip.tokenize(text.strip(), disable_weights=True)
    if set(tokens) != {T5_KEY}:
        raise ValueError(NOT_T5)
    content = []
    for batch in tokens[T5_KEY]:
        for token, _weight in batch:
            if isinstance(token, int) and token in (T5_END, T5_PAD):
                break
            content.append(token)
    if len(content) > max_tokens - 1:
        logger.warning("the prompt has %d tokens; LTX-Video reads the first %d (and the end token)", len(content),
                       max_tokens - 1)
        content = content[:max_tokens - 1]
    content.append(T5_END)
    content += [T5_PAD] * (max_tokens - len(content))
    return {T5_KEY: [[(token, 1.0) for token in content]]}


def token_mask(tokens: dict[str, list]) -> torch.Tensor:
    """`[1, L]` int64 0/1 mask: 1 up to and including the first end token (what ComfyUI's T5 computes)."""
    mask, ended = [], False
    for token, _weight in tokens[T5_KEY][0]:
        mask.append(0 if ended else 1)
        ended = ended or (isinstance(token, int) and token == T5_END)
    return torch.tensor([mask], dtype=torch.long)


def encode_prompt(clip, text: str) -> list:
    """Core CONDITIONING `[[cond [1, 256, D], {"pooled_output": None, "attention_mask": [1, 256]}]]`."""
    if clip is None:
        raise ValueError("no text encoder is connected; load a T5-XXL file with the core Load CLIP node, type ltxv")
    tokens = reference_tokens(clip, text)
    conditioning = clip.encode_from_tokens_scheduled(tokens)
    mask = token_mask(tokens)
    for cond, extra in conditioning:
        # ComfyUI's T5 (type ltxv) returns the same mask; other T5 wrappers may not return one
        own = extra.get("attention_mask")
        if own is None or own.shape[-1] != cond.shape[1]:
            extra["attention_mask"] = mask if mask.shape[-1] == cond.shape[1] else \
                torch.ones(cond.shape[:2], dtype=torch.long)
    return conditioning


def split_prompts(text: str) -> list[str]:
    """One prompt per window: the text split at lines that hold only `---` (a text without one is one prompt)."""
    parts, current = [], []
    for line in text.splitlines():
        if line.strip() == WINDOW_SEPARATOR:
            parts.append("\n".join(current).strip())
            current = []
        else:
            current.append(line)
    parts.append("\n".join(current).strip())
    if len(parts) > 1 and not all(parts):
        empty = [index + 1 for index, part in enumerate(parts) if not part]
        raise ValueError(f"prompt: window prompt(s) {empty} of {len(parts)} are empty; write a prompt between each "
                         f"'{WINDOW_SEPARATOR}' line")
    return parts


def encode_prompts(clip, text: str, split: bool = True) -> list:
    """CONDITIONING with one entry per window prompt (`---` lines separate them; `split=False`: the text as is)."""
    return [entry for part in (split_prompts(text) if split else [text]) for entry in encode_prompt(clip, part)]


def prompt_contexts(conditioning: Any, which: str, caption_channels: int | None = None
                    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Every entry of a CONDITIONING as (context, mask): the prompts of successive windows of a long video."""
    if not conditioning or not isinstance(conditioning, (list, tuple)):
        return [prompt_context(conditioning, which, caption_channels)]  # its error names what is wrong
    return [prompt_context([entry], which, caption_channels) for entry in conditioning]


def prompt_context(conditioning: Any, which: str, caption_channels: int | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """(context `[1, L, D]`, 0/1 mask `[1, L]`) from core CONDITIONING (ours or core `CLIPTextEncode`'s).

    A conditioning without an `attention_mask` gets an all-ones mask. When several entries were combined, the
    first is used (LTX-Video takes one prompt).
    """
    if not conditioning:
        raise ValueError(f"the {which} conditioning is empty; connect a LTX-Video 0.9.7 Text Encode (or CLIP Text "
                         "Encode) output")
    try:
        cond, extra = conditioning[0][0], conditioning[0][1]
    except (TypeError, IndexError, KeyError) as error:
        raise ValueError(f"the {which} input is not a CONDITIONING from a text encode node") from error
    if len(conditioning) > 1:
        logger.warning("the %s conditioning has %d entries; LTX-Video uses the first", which, len(conditioning))
    if not torch.is_tensor(cond) or cond.ndim != 3:
        raise ValueError(f"the {which} conditioning holds no [batch, tokens, channels] text embedding")
    if cond.shape[0] != 1:
        logger.warning("the %s conditioning has a batch of %d; LTX-Video uses the first", which, cond.shape[0])
        cond = cond[:1]
    if caption_channels is not None and cond.shape[-1] != caption_channels:
        raise ValueError(f"the {which} conditioning has {cond.shape[-1]} channels but this model reads "
                         f"{caption_channels} (a T5-XXL has 4096); {NOT_T5}")
    mask = extra.get("attention_mask") if isinstance(extra, dict) else None
    if mask is None:
        mask = torch.ones(cond.shape[:2], dtype=torch.long)
    else:
        mask = mask.reshape(mask.shape[0], -1)[:1, :cond.shape[1]]
        if mask.is_floating_point():
            mask = (mask > 0.5).long()
    return cond, mask.to(device=cond.device, dtype=torch.long)


class LTX097TextEncode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LTX097TextEncode",
            display_name="LTX-Video 0.9.7 Text Encode",
            category=f"{CATEGORY}/conditioning",
            description=(
                "Encodes the prompt and the negative prompt with a T5-XXL text encoder exactly as the reference "
                "LTX-Video pipeline does: the text as written (no (word:1.2) weighting), cut to 256 tokens with "
                "the end token kept, padded to 256, with a 0/1 attention mask. Outputs core CONDITIONING."
            ),
            inputs=[
                clip_input(),
                prompt_input(),
                negative_prompt_input(DEFAULT_NEGATIVE_PROMPT),
            ],
            outputs=[
                io.Conditioning.Output(display_name="positive", tooltip="The encoded prompt with its mask."),
                io.Conditioning.Output(display_name="negative", tooltip="The encoded negative prompt with its mask."),
            ],
        )

    @classmethod
    def execute(cls, clip, prompt: str, negative_prompt: str = DEFAULT_NEGATIVE_PROMPT) -> io.NodeOutput:
        return io.NodeOutput(encode_prompts(clip, prompt), encode_prompt(clip, negative_prompt))


NODES = [LTX097TextEncode]
