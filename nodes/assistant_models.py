"""Host glue shared by the prompt enhancer and safety checker nodes: their model folders (Hugging Face layout,
one sub-folder per model) and ComfyUI memory management for `transformers` modules."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import comfy.model_management as mm
import folder_paths
import torch

from ..assistants.catalog import ModelSource
from ..assistants.folders import ModelFolderError, find_folder, model_folders, require_files
from .memory import wrap
from .model_downloads import download_folder, missing_hint
from .ops import dtype_choice

_loaded: dict[tuple, object] = {}


@dataclass(frozen=True)
class ModelKind:
    """One kind of assistant model: the ComfyUI folder (`models/<folder>/`) its model folders sit in, the files each
    must hold, how errors name it (`what`), where to get it (`source`), and the models its loader can download."""

    folder: str
    files: Sequence[str]
    what: str
    source: str
    catalog: dict[str, ModelSource]

    def locate(self, name: str, download: bool = False) -> Path:
        """The folder of model `name` (see `locate`); the loader's download hint only where it can download."""
        return locate(self.folder, name, self.files, what=self.what, source=self.source, download=download,
                      catalog=self.catalog)

    def default(self, name: str, load: Callable[[], object]) -> object:
        """The one-node path's model when no loader is connected: model `name`, loaded once while its folder stays
        as it is (no download there, so no download hint)."""
        folder = locate(self.folder, name, self.files, what=self.what, source=self.source)
        return cached((self.folder, str(folder), folder.stat().st_mtime_ns), load)


def register_folder(key: str) -> None:
    """Add `models/<key>/` to ComfyUI's model folders unless the host (or a user's config) already has it."""
    if key not in folder_paths.folder_names_and_paths:
        folder_paths.add_model_folder_path(key, os.path.join(folder_paths.models_dir, key))


def folder_roots(key: str) -> list[str]:
    return list(folder_paths.folder_names_and_paths[key][0]) if key in folder_paths.folder_names_and_paths else []


def folder_choices(key: str, downloadable: Iterable[str] = ()) -> list[str]:
    """The model sub-folders (with a config.json) under every path of ComfyUI folder `key`, and the names the
    loader can download."""
    return sorted(set(model_folders(folder_roots(key))) | set(downloadable), key=str.lower)


def locate(key: str, name: str, files: Sequence[str], *, what: str, source: str, download: bool = False,
           catalog: dict[str, ModelSource] | None = None) -> Path:
    """The folder of model `name` under ComfyUI folder `key`, checked to hold `files` and weights; with `download`
    the missing files of a catalogued model are fetched first."""
    roots = folder_roots(key) or [os.path.join(folder_paths.models_dir, key)]
    model_source = (catalog or {}).get(name)
    try:
        return require_files(find_folder(name, roots), name, roots, files, what=what, source=source)
    except ModelFolderError as error:
        if not download:
            raise ModelFolderError(f"{error}.{missing_hint(model_source)}") from None
        if model_source is None:
            raise ModelFolderError(f"{error}; no download source is known for '{name}'") from None
    download_folder(model_source, name, roots)
    return require_files(find_folder(name, roots), name, roots, files, what=what, source=source)


def missing_folder(key: str, name: str, files: Sequence[str]) -> str | None:
    """`<key>/<name>` (relative to ComfyUI's models folder) when that model folder is absent or incomplete, else None:
    what the HTTP API names when it refuses a feature at submit."""
    try:
        locate(key, name, files, what=name, source="")
    except ModelFolderError:
        return f"{key}/{name}"
    return None


def resolve_dtype(choice: str, device: torch.device) -> torch.dtype:
    """"auto": bf16 where the device runs it well, else fp16 on GPUs, fp32 on the CPU."""
    dtype = dtype_choice(choice)
    if dtype is not None:
        return dtype
    if mm.should_use_bf16(device):
        return torch.bfloat16
    return torch.float16 if mm.should_use_fp16(device) else torch.float32


class Hosted(torch.nn.Module):
    """A `transformers` model inside a plain module: ModelPatcher sets `.device` on what it manages, which
    `transformers` models expose as a read-only property."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.hf_model = model


def managed(model: torch.nn.Module):
    """A ModelPatcher for a `transformers` module, on the text-encoder devices (ComfyUI's choice for LLMs)."""
    return wrap(Hosted(model), mm.text_encoder_device(), mm.text_encoder_offload_device())


def hf_model(patcher) -> torch.nn.Module:
    """The `transformers` model a `managed` patcher holds."""
    return patcher.model.hf_model


def load_for_use(patcher, memory_required: int) -> torch.nn.Module:
    """Load a managed module fully onto its device (freeing other models as needed) and return it.

    Fully: `transformers` layers are not ComfyUI's low-VRAM-capable layers, so they cannot run partially loaded.
    """
    mm.load_models_gpu([patcher], memory_required=int(memory_required), force_full_load=True)
    return hf_model(patcher)


def cached(key: tuple, load: Callable[[], object]) -> object:
    """One loaded object per key (its first item is the kind) for the one-node path (which loads by folder name
    rather than from a loader node, whose output ComfyUI caches itself)."""
    if key not in _loaded:
        for old in [k for k in _loaded if k[0] == key[0]]:  # one model set per kind in memory
            del _loaded[old]
        _loaded[key] = load()
    return _loaded[key]
