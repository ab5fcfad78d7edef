"""Finding model files in ComfyUI's model folders: the loaders' lists, full paths, and the check at queue time."""

from __future__ import annotations

import folder_paths

from ..ltx_core.loading import SAFETENSORS_SUFFIXES, NotSafetensorsError, check_safetensors


def model_files(*folders: str) -> list[str]:
    """Loadable file names from ComfyUI model folders (first folder wins on duplicate names), sorted."""
    names: list[str] = []
    seen = set()
    for folder in folders:
        if folder not in folder_paths.folder_names_and_paths:
            continue
        for name in folder_paths.get_filename_list(folder):
            if name.lower().endswith(SAFETENSORS_SUFFIXES) and name not in seen:
                seen.add(name)
                names.append(name)
    return sorted(names, key=str.lower)


def check_model_file(name: str, *folders: str) -> bool | str:
    """`validate_inputs` answer for a file-name input: True, or the sentence that refuses the prompt (HTTP 400)
    when the file is missing or is no safetensors file (a pickle renamed `.safetensors`; header and size only)."""
    try:
        check_safetensors(model_path(name, *folders), f"model file '{name}'")
    except (FileNotFoundError, NotSafetensorsError) as error:
        return str(error)
    return True


def model_path(name: str, *folders: str) -> str:
    """Full path of a file listed by `model_files(*folders)`; a sentence if it is not there."""
    for folder in folders:
        if folder in folder_paths.folder_names_and_paths:
            path = folder_paths.get_full_path(folder, name)
            if path is not None:
                return path
    raise FileNotFoundError(f"model file '{name}' was not found in the ComfyUI model folders "
                            f"{', '.join(folders)}; put it in models/{folders[0]}/ or add a path for it in "
                            f"extra_model_paths.yaml")
