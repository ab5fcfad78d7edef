"""The few `transformers` calls that differ between the releases ComfyUI users have (4.50 to 5.x)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


def transformers_version() -> tuple[int, int]:
    import transformers

    major, minor = transformers.__version__.split(".")[:2]
    return int(major), int("".join(ch for ch in minor if ch.isdigit()) or 0)


def load_config(folder: Path, *, what: str):
    """The folder's config through `AutoConfig`, refusing models that need code shipped with them."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
    except ValueError as error:
        raise ValueError(f"{what} in {folder} is not a model type this transformers supports natively "
                         f"({error}); this pack never runs code downloaded with a model (trust_remote_code), "
                         "so pick a model that transformers supports") from error


def from_pretrained(model_class: Any, folder: Path, dtype: torch.dtype):
    """`model_class.from_pretrained` from local files only, in `dtype`, with no remote code."""
    dtype_key = "dtype" if transformers_version() >= (4, 56) else "torch_dtype"
    model = model_class.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False,
                                        **{dtype_key: dtype})
    return model.eval().requires_grad_(False)


def load_tokenizer(folder: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
