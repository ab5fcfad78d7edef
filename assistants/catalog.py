"""Where the helper models come from: Hugging Face repos, the files each model folder needs, and their licences.

The loaders download these (only when the user switches `download` on) from
`<base>/<repo>/resolve/<revision>/<file>`; the base is https://huggingface.co unless `LTX097_MODEL_BASE_URL`
says otherwise (a mirror, or a local server in tests).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

BASE_URL_ENV = "LTX097_MODEL_BASE_URL"
DEFAULT_BASE_URL = "https://huggingface.co"
SHARD_INDEX = "model.safetensors.index.json"


@dataclass(frozen=True)
class ModelSource:
    repo: str
    files: tuple[str, ...]
    licence: str
    revision: str = "main"
    gated: bool = False

    def url(self, file: str) -> str:
        base = os.environ.get(BASE_URL_ENV, "").strip() or DEFAULT_BASE_URL
        return f"{base.rstrip('/')}/{self.repo}/resolve/{self.revision}/{file}"

    @property
    def page(self) -> str:
        return f"https://huggingface.co/{self.repo}"


_TOKENIZER = ("tokenizer.json", "tokenizer_config.json")
LLMS = {
    "Llama-3.2-3B-Instruct": ModelSource(
        "meta-llama/Llama-3.2-3B-Instruct",
        ("config.json", "generation_config.json", *_TOKENIZER, "special_tokens_map.json", SHARD_INDEX),
        "Llama 3.2 Community License", gated=True),
    "Qwen2.5-1.5B-Instruct": ModelSource(
        "Qwen/Qwen2.5-1.5B-Instruct",
        ("config.json", "generation_config.json", *_TOKENIZER, "vocab.json", "merges.txt", "model.safetensors"),
        "Apache-2.0"),
    "blip-image-captioning-large": ModelSource(
        "Salesforce/blip-image-captioning-large",
        ("config.json", "preprocessor_config.json", *_TOKENIZER, "special_tokens_map.json", "vocab.txt",
         "model.safetensors"),
        "BSD-3-Clause"),
}
"""Folders of models/LLM/ the loader can download (the official LLM, a permissive one, the captioner)."""

CHECKERS = {
    "nsfw_image_detection": ModelSource(
        "Falconsai/nsfw_image_detection", ("config.json", "preprocessor_config.json", "model.safetensors"),
        "Apache-2.0"),
}
"""Folders of models/safety_checker/ the loader can download."""
