"""Shared set-up of the prompt enhancer and safety checker tests: the tiny models in temp ComfyUI folders."""

from __future__ import annotations

from pathlib import Path

from support import tiny_assistants


def register(root: Path, folder_paths) -> dict[str, str]:
    """Write every tiny helper model under `root` and add its folders to ComfyUI's LLM / safety_checker paths."""
    names = tiny_assistants.write_all(root)
    for key in ("LLM", "safety_checker"):
        folder_paths.add_model_folder_path(key, str(root / key), is_default=True)
    return names
