"""Prompt expansion nodes: a loader for the LLM and image captioner (models/LLM/), and the enhancer, which
rewrites a short prompt into the long literal description LTX-Video follows (the hosted service's
`expand_prompt`). The work itself is in `assistants/`; here are the ComfyUI side and memory management."""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from typing import Any

import comfy.model_management as mm
import comfy.text_encoders.t5
from comfy_api.latest import io

from ..assistants import catalog
from ..assistants import enhancer as llm
from ..assistants.prompts import OFFICIAL_WORD_THRESHOLD, T5_TOKEN_BUDGET, EnhancePlan, plan_enhancement
from .assistant_models import (
    ModelKind,
    folder_choices,
    hf_model,
    load_for_use,
    managed,
    missing_folder,
    register_folder,
    resolve_dtype,
)
from .inputs import CATEGORY, conditions_input, download_input, dtype_input, prompt_input, seed_input
from .sockets import LTXPromptEnhancerType

logger = logging.getLogger(__name__)

LLM_FOLDER = "LLM"
NO_CAPTIONER = "none"
DEFAULT_LLM = "Llama-3.2-3B-Instruct"
DEFAULT_CAPTIONER = "blip-image-captioning-large"
LLMS = ModelKind(LLM_FOLDER, llm.LLM_FILES, "prompt enhancer LLM",
                 "a Hugging Face instruct model, e.g. https://huggingface.co/meta-llama/Llama-3.2-3B-Instruct",
                 catalog.LLMS)
CAPTIONERS = ModelKind(LLM_FOLDER, llm.CAPTIONER_FILES, "image captioner",
                       "https://huggingface.co/Salesforce/blip-image-captioning-large", catalog.LLMS)
DEFAULT_MAX_NEW_TOKENS = 256
KV_BYTES_PER_TOKEN_LAYER = 2  # key and value

register_folder(LLM_FOLDER)


@dataclass
class PromptEnhancerModels:
    """`LTX097_PROMPT_ENHANCER`: ModelPatchers around the LLM and the captioner (None: no image-to-video)."""

    llm: Any
    tokenizer: Any
    captioner: Any | None
    caption_tokenizer: Any
    caption_image_config: dict | None
    names: tuple[str, str]


@functools.lru_cache(maxsize=1)
def _t5_tokenizer():
    from transformers import AutoTokenizer

    folder = os.path.join(os.path.dirname(comfy.text_encoders.t5.__file__), "t5_tokenizer")
    return AutoTokenizer.from_pretrained(folder, local_files_only=True)


def t5_token_count(text: str) -> int:
    """Tokens of `text` for LTX-Video's T5 (the host's T5 tokenizer), end token included."""
    return len(_t5_tokenizer()(text).input_ids)


def load_enhancer(llm_name: str, captioner_name: str = NO_CAPTIONER, dtype: str = "auto",
                  download: bool = False) -> PromptEnhancerModels:
    llm_folder = LLMS.locate(llm_name, download)
    torch_dtype = resolve_dtype(dtype, mm.text_encoder_device())
    text_model = llm.load_text_model(llm_folder, torch_dtype)
    captioner, caption_tokenizer, caption_config = None, None, None
    if captioner_name != NO_CAPTIONER:
        folder = CAPTIONERS.locate(captioner_name, download)
        loaded = llm.load_captioner(folder, torch_dtype)
        captioner, caption_tokenizer, caption_config = managed(loaded.model), loaded.tokenizer, loaded.image_config
    return PromptEnhancerModels(managed(text_model.model), text_model.tokenizer, captioner, caption_tokenizer,
                                caption_config, (llm_name, captioner_name))


def generation_bytes(model, prompt_tokens: int, max_new_tokens: int) -> int:
    """Working memory of one generation: the key/value cache plus float32 logits over the sequence."""
    config = model.config
    tokens = prompt_tokens + max_new_tokens
    heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    element = next(model.parameters()).element_size()
    cache = config.num_hidden_layers * KV_BYTES_PER_TOKEN_LAYER * tokens * heads * head_dim * element
    return int(cache + tokens * config.vocab_size * 4)


def run_enhancer(models: PromptEnhancerModels, prompt: str, conditions=None, *,
                 max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, keep_prompts_from_words: int = OFFICIAL_WORD_THRESHOLD,
                 temperature: float = 0.0, seed: int = 0) -> llm.Expansion:
    """Expand `prompt` for the given conditions (see `assistants.prompts.plan_enhancement`), loading each model
    through ComfyUI just before it runs."""
    plan = plan_enhancement(prompt, conditions, keep_prompts_from_words)
    if plan.mode == "i2v" and models.captioner is None:
        plan = EnhancePlan("keep", "one image at frame 0, but no image captioner is loaded: the prompt is kept "
                                   "as written")
    captioner = None
    if plan.mode == "i2v":
        module = load_for_use(models.captioner, 64 << 20)
        captioner = llm.Captioner(module, models.caption_tokenizer, models.caption_image_config, None)
    text_model = None
    if plan.mode != "keep":
        estimate = generation_bytes(hf_model(models.llm), 1024, max_new_tokens)
        text_model = llm.TextModel(load_for_use(models.llm, estimate), models.tokenizer, None)
    return llm.expand(plan, prompt, text_model=text_model, captioner=captioner, count_tokens=t5_token_count,
                      max_new_tokens=max_new_tokens, temperature=temperature, seed=seed, budget=T5_TOKEN_BUDGET)


def default_enhancer() -> PromptEnhancerModels:
    """The one-node path's enhancer when none is connected: the default folders in models/LLM/."""
    return LLMS.default(DEFAULT_LLM, lambda: load_enhancer(DEFAULT_LLM, DEFAULT_CAPTIONER))


def missing_default_enhancer() -> str | None:
    """The first of the default enhancer's folders (relative to models/) that is not installed, or None."""
    return (missing_folder(LLM_FOLDER, DEFAULT_LLM, llm.LLM_FILES)
            or missing_folder(LLM_FOLDER, DEFAULT_CAPTIONER, llm.CAPTIONER_FILES))


class LTX097PromptEnhancerLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        llms = folder_choices(LLM_FOLDER, catalog.LLMS)
        return io.Schema(
            node_id="LTX097PromptEnhancerLoader",
            display_name="LTX-Video 0.9.7 Prompt Enhancer Loader",
            category=f"{CATEGORY}/loaders",
            description=(
                "Loads the prompt enhancer's models from models/LLM/ (one Hugging Face model folder each): an "
                "instruct LLM that writes the expanded prompt (any causal LM transformers supports natively, "
                "e.g. Llama-3.2-3B-Instruct) and a BLIP image captioner for image-to-video. No code shipped with "
                "a model is ever run. ComfyUI loads them to the GPU when they run and unloads them for the video "
                "model."
            ),
            inputs=[
                io.Combo.Input("llm", options=llms, default=DEFAULT_LLM,
                               tooltip="The LLM's folder in models/LLM/ (config.json, tokenizer files with a chat "
                                       "template, model.safetensors)."),
                io.Combo.Input("captioner", options=[NO_CAPTIONER, *llms],
                               default=DEFAULT_CAPTIONER,
                               tooltip="The BLIP image captioner's folder in models/LLM/ (for image-to-video "
                                       "expansion); none: prompts with an image condition are kept as written."),
                dtype_input("auto", "Weight dtype. auto: bf16 on GPUs that support it, fp16 on other GPUs, fp32 on "
                                    "the CPU."),
                download_input("Download missing files of the listed Hugging Face models (Llama-3.2-3B-Instruct is "
                               "gated: get it yourself; Qwen2.5-1.5B-Instruct, blip-image-captioning-large) into "
                               "models/LLM/. Off: nothing is downloaded."),
            ],
            outputs=[LTXPromptEnhancerType.Output(display_name="prompt_enhancer",
                                                  tooltip="The LLM and captioner, for the Prompt Enhancer node or "
                                                          "the one-node Text to Video.")],
        )

    @classmethod
    def execute(cls, llm: str, captioner: str = NO_CAPTIONER, dtype: str = "auto",
                download: bool = False) -> io.NodeOutput:
        return io.NodeOutput(load_enhancer(llm, captioner, dtype, download))


class LTX097PromptEnhancer(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LTX097PromptEnhancer",
            display_name="LTX-Video 0.9.7 Prompt Enhancer",
            category=CATEGORY,
            description=(
                "Rewrites a short prompt into the long, literal description LTX-Video needs, as the official "
                "0.9.7 enhancer does: text to video without conditions; with one image at frame 0, captions the "
                "image and writes a prompt that follows it; any other conditioning keeps the prompt (and says so "
                "in the note). The result fits T5's 256 tokens."
            ),
            inputs=[
                LTXPromptEnhancerType.Input("prompt_enhancer", tooltip="The models (Prompt Enhancer Loader)."),
                prompt_input("The prompt to expand."),
                conditions_input("The conditions the video will use: one image at frame 0 makes it image-to-video "
                                 "expansion; other conditioning keeps the prompt."),
                io.Int.Input("max_new_tokens", default=DEFAULT_MAX_NEW_TOKENS, min=16, max=1024,
                             tooltip="Most tokens the LLM writes (the result is then cut to T5's 256 tokens at a "
                                     "sentence end)."),
                io.Int.Input("keep_prompts_from_words", default=OFFICIAL_WORD_THRESHOLD, min=0, max=1000,
                             tooltip="Prompts of at least this many words are kept as written (official: 120); "
                                     "0 expands every prompt."),
                io.Float.Input("temperature", default=0.0, min=0.0, max=2.0, step=0.05,
                               tooltip="0: greedy decoding (the same prompt every run); above 0: sampling at this "
                                       "temperature from the seed."),
                seed_input("Seed of the sampling (used when temperature is above 0).", control_after_generate=False),
            ],
            outputs=[io.String.Output(display_name="prompt", tooltip="The prompt to encode (expanded or kept)."),
                     io.String.Output(display_name="note",
                                      tooltip="What was done and why (and the image caption for image-to-video).")],
        )

    @classmethod
    def execute(cls, prompt_enhancer: PromptEnhancerModels, prompt: str, conditions=None,
                max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, keep_prompts_from_words: int = OFFICIAL_WORD_THRESHOLD,
                temperature: float = 0.0, seed: int = 0) -> io.NodeOutput:
        result = run_enhancer(prompt_enhancer, prompt, conditions, max_new_tokens=max_new_tokens,
                              keep_prompts_from_words=keep_prompts_from_words, temperature=temperature, seed=seed)
        return io.NodeOutput(result.prompt, result.note)


NODES = [LTX097PromptEnhancerLoader, LTX097PromptEnhancer]
