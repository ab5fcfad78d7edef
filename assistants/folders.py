"""Model folders in Hugging Face layout (`config.json`, weights, tokenizer / preprocessor files) and the sentence
that says which files go where when one is incomplete."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")


class ModelFolderError(FileNotFoundError):
    """A model folder is missing or lacks files; the message names the folder, the files and where to get them."""


def model_folders(roots: Iterable[str], depth: int = 2) -> list[str]:
    """Names (relative paths with `/`) of the folders under `roots` that hold a `config.json`, up to `depth` deep."""
    names: set[str] = set()
    for root in roots:
        base = Path(root)
        if not base.is_dir():
            continue
        for config in base.glob("/".join(["*"] * depth) + "/config.json"):
            names.add(config.parent.relative_to(base).as_posix())
        for config in base.glob("*/config.json"):
            names.add(config.parent.relative_to(base).as_posix())
    return sorted(names, key=str.lower)


def find_folder(name: str, roots: Sequence[str]) -> Path | None:
    """The first `root/name` that is a directory (names with `..` or absolute paths are refused)."""
    if not name or Path(name).is_absolute() or ".." in Path(name).parts:
        raise ModelFolderError(f"model folder name '{name}' is not a plain folder name under the model folder")
    for root in roots:
        candidate = Path(root) / name
        if candidate.is_dir():
            return candidate
    return None


def require_files(folder: Path | None, name: str, roots: Sequence[str], files: Sequence[str], *, what: str,
                  source: str) -> Path:
    """`folder` if it holds every one of `files` (and one weight file); otherwise a `ModelFolderError` that says
    which files to put in which folder and where they come from."""
    where = Path(roots[0]) / name if roots else Path(name)
    needed = [*files, f"{WEIGHT_FILES[0]} (or sharded safetensors with {WEIGHT_FILES[1]})"]
    if folder is None:
        raise ModelFolderError(f"{what} '{name}' was not found: put {', '.join(needed)} in {where}{os.sep} "
                               f"(from {source})")
    missing = [f for f in files if not (folder / f).is_file()]
    if not any((folder / f).is_file() for f in WEIGHT_FILES):
        missing.append(needed[-1])
    if missing:
        raise ModelFolderError(f"{what} '{name}' in {folder} is incomplete: {', '.join(missing)} missing "
                               f"(from {source})")
    return folder


def read_json(path: Path) -> dict:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)
