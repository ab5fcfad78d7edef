"""The prompt enhancer's two models and what they do: caption an image, expand a prompt.

The LLM is any causal LM `transformers` loads natively with a chat template in its tokenizer (official pair:
Llama-3.2-3B-Instruct). The captioner is a BLIP captioning model (`BlipForConditionalGeneration`): the official
Florence-2 PromptGen needs code shipped with the model, which this pack never runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import hf
from .images import PREPROCESSOR_FILE, image_config, pixel_values
from .instructions import IMAGE_TO_VIDEO, TEXT_TO_VIDEO, user_message
from .prompts import T5_TOKEN_BUDGET, EnhancePlan, fit_to_budget

logger = logging.getLogger(__name__)

LLM_FILES = ("config.json", "tokenizer_config.json")
CAPTIONER_FILES = ("config.json", "tokenizer_config.json", PREPROCESSOR_FILE)
CAPTIONER_TYPES = ("blip",)
CAPTION_BEAMS = 3
CAPTION_MAX_TOKENS = 60


@dataclass
class TextModel:
    """A causal LM and its tokenizer (which must have a chat template)."""

    model: torch.nn.Module
    tokenizer: Any
    folder: Path


@dataclass
class Captioner:
    model: torch.nn.Module
    tokenizer: Any
    image_config: dict
    folder: Path


def load_text_model(folder: Path, dtype: torch.dtype) -> TextModel:
    from transformers import AutoModelForCausalLM

    hf.load_config(folder, what="the prompt enhancer LLM")
    tokenizer = hf.load_tokenizer(folder)
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(f"the LLM in {folder} has no chat template in tokenizer_config.json: use an instruct "
                         "(chat) model")
    return TextModel(hf.from_pretrained(AutoModelForCausalLM, folder, dtype), tokenizer, folder)


def load_captioner(folder: Path, dtype: torch.dtype) -> Captioner:
    from transformers import BlipForConditionalGeneration

    config = hf.load_config(folder, what="the image captioner")
    if config.model_type not in CAPTIONER_TYPES:
        raise ValueError(f"the image captioner in {folder} is a '{config.model_type}' model; supported: "
                         f"{', '.join(CAPTIONER_TYPES)} (BLIP captioning models, e.g. "
                         "Salesforce/blip-image-captioning-large)")
    model = hf.from_pretrained(BlipForConditionalGeneration, folder, dtype)
    return Captioner(model, hf.load_tokenizer(folder), image_config(folder), folder)


def _device_dtype(model: torch.nn.Module) -> tuple[torch.device, torch.dtype]:
    parameter = next(model.parameters())
    return parameter.device, parameter.dtype


def caption(captioner: Captioner, image: torch.Tensor) -> str:
    """A caption of one `[H, W, 3]` image in [0, 1] (beam search, deterministic)."""
    device, dtype = _device_dtype(captioner.model)
    pixels = pixel_values(image[None], captioner.image_config, device=device, dtype=dtype)
    with torch.inference_mode():
        ids = captioner.model.generate(pixel_values=pixels, max_new_tokens=CAPTION_MAX_TOKENS,
                                       num_beams=CAPTION_BEAMS, do_sample=False)
    return captioner.tokenizer.decode(ids[0], skip_special_tokens=True).strip()


def _generation_settings(text_model: TextModel, max_new_tokens: int, temperature: float) -> dict:
    tokenizer = text_model.tokenizer
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    settings: dict = {"max_new_tokens": int(max_new_tokens), "pad_token_id": pad}
    if temperature > 0:
        return {**settings, "do_sample": True, "temperature": float(temperature), "top_p": 0.9, "top_k": 0}
    # greedy; clear the sampling fields a model's generation_config.json may set
    return {**settings, "do_sample": False, "temperature": None, "top_p": None, "top_k": None}


def write_prompt(text_model: TextModel, prompt: str, caption_text: str | None, *, max_new_tokens: int,
                 temperature: float = 0.0, seed: int = 0) -> str:
    """The LLM's expansion of `prompt` (image-to-video instructions when a caption is given). Greedy when
    `temperature` is 0; sampled from `seed` otherwise."""
    instructions = TEXT_TO_VIDEO if caption_text is None else IMAGE_TO_VIDEO
    messages = [{"role": "system", "content": instructions},
                {"role": "user", "content": user_message(prompt, caption_text)}]
    text = text_model.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    device, _ = _device_dtype(text_model.model)
    inputs = text_model.tokenizer(text, return_tensors="pt", add_special_tokens=False).to(device)
    settings = _generation_settings(text_model, max_new_tokens, temperature)
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.inference_mode():
        torch.manual_seed(seed)
        output = text_model.model.generate(**inputs, **settings)
    new_tokens = output[0, inputs["input_ids"].shape[1]:]
    return text_model.tokenizer.decode(new_tokens, skip_special_tokens=True).strip()


@dataclass(frozen=True)
class Expansion:
    """The prompt to encode, what was done (`plan.mode`: t2v, i2v, keep) and the image caption if any."""

    prompt: str
    plan: EnhancePlan
    caption: str | None = None

    @property
    def note(self) -> str:
        detail = f"; image caption: {self.caption}" if self.caption else ""
        return f"{self.plan.reason}{detail}"


def expand(plan: EnhancePlan, prompt: str, *, text_model: TextModel | None, captioner: Captioner | None,
           count_tokens: Callable[[str], int], max_new_tokens: int = 256, temperature: float = 0.0,
           seed: int = 0, budget: int = T5_TOKEN_BUDGET) -> Expansion:
    """Carry out `plan` (see `plan_enhancement`); the result fits `budget` tokens of `count_tokens`."""
    if plan.mode == "keep":
        logger.info("prompt expansion: %s", plan.reason)
        return Expansion(prompt, plan)
    if text_model is None:
        raise ValueError("prompt expansion needs the LLM, which is not loaded")
    caption_text = None
    if plan.mode == "i2v":
        if captioner is None:
            raise ValueError("image-to-video prompt expansion needs the image captioner, which is not loaded")
        caption_text = caption(captioner, plan.image)
    written = write_prompt(text_model, prompt, caption_text, max_new_tokens=max_new_tokens,
                           temperature=temperature, seed=seed)
    fitted = fit_to_budget(written, count_tokens, budget)
    if not fitted:
        logger.warning("prompt expansion: the LLM wrote nothing usable; the prompt is kept as written")
        return Expansion(prompt, EnhancePlan("keep", "the LLM wrote an empty prompt: kept as written"), caption_text)
    if fitted != " ".join(written.split()):
        logger.info("prompt expansion: cut to %d of T5's tokens", budget)
    logger.info("prompt expansion (%s): %s", plan.mode, fitted)
    return Expansion(fitted, plan, caption_text)
