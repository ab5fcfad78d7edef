"""Where a LoRA comes from: a file in ComfyUI's `loras` folders, an http(s) URL, a Hugging Face repo, or (only
when the user allows it) a local path. This is the `path` (+ `weight_name`) of the hosted service's LoRAWeight.

Downloads go through the pack's `fetch` module (public addresses only unless allowed, deadline, minimum rate,
Cancel honoured within a second) to a cache folder inside the first `loras` folder (`ltx097_downloads/`): the first
bytes must be a safetensors header (web pages and pickles are named and refused before the rest is read), the
size is capped, and only a complete safetensors file (never pickle) is renamed into place, so a failed download
leaves nothing behind and the next run reuses a good one. A prompt sent to the server
cannot read files outside the model folders: absolute paths and `..` are refused unless the environment variable
`LTX097_ALLOW_LOCAL_LORA_PATHS=1` is set.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import urllib.parse
from pathlib import Path

import folder_paths

from ..fetch import FetchError, Progress, check_url, download, leftover_parts, redact_url, unseal_url
from ..ltx_core import loading
from ..ltx_core.loading import SAFETENSORS_SUFFIXES
from . import lora_cache
from .progress import check_interrupted

logger = logging.getLogger(__name__)

LORA_FOLDER = "loras"
DOWNLOAD_SUBFOLDER = "ltx097_downloads"
ALLOW_LOCAL_ENV = "LTX097_ALLOW_LOCAL_LORA_PATHS"
MAX_DOWNLOAD_ENV = "LTX097_LORA_MAX_DOWNLOAD_MB"
DEFAULT_MAX_DOWNLOAD_MB = 4096
"""A 13B rank-128 LoRA in bf16 is about 0.8 GB; fp32 or full-rank files are larger."""

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_download_lock = threading.Lock()


class LoraSourceError(ValueError):
    """A LoRA source that cannot be used (the message says why, in a sentence)."""


# ------------------------------------------------------------------------------------------------------------------
# The loras folders


def lora_files() -> list[str]:
    """Safetensors files in ComfyUI's `loras` folders (sub-folders included), for the dropdown."""
    if LORA_FOLDER not in folder_paths.folder_names_and_paths:
        return []
    return sorted((n for n in folder_paths.get_filename_list(LORA_FOLDER) if n.lower().endswith(SAFETENSORS_SUFFIXES)),
                  key=str.lower)


def download_dir() -> Path:
    """The download cache: `<first loras folder>/ltx097_downloads` (created on demand)."""
    folders = folder_paths.get_folder_paths(LORA_FOLDER) if LORA_FOLDER in folder_paths.folder_names_and_paths \
        else []
    if not folders:
        raise LoraSourceError("ComfyUI has no 'loras' model folder to download LoRAs into; add one in "
                              "extra_model_paths.yaml")
    return Path(folders[0]) / DOWNLOAD_SUBFOLDER


def remove_unfinished_downloads() -> None:
    """Remove the hidden partial files that downloads cut off by a crash or a kill left in the download cache (at
    start-up, when this process downloads nothing; a LoRA can be gigabytes)."""
    if LORA_FOLDER not in folder_paths.folder_names_and_paths or not folder_paths.get_folder_paths(LORA_FOLDER):
        return
    removed = leftover_parts(download_dir())
    for path in removed:
        path.unlink(missing_ok=True)
    if removed:
        logger.info("removed %d unfinished LoRA download(s) from %s", len(removed), download_dir())


def local_paths_allowed() -> bool:
    return os.environ.get(ALLOW_LOCAL_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def max_download_bytes() -> int:
    """`LTX097_LORA_MAX_DOWNLOAD_MB` in bytes; read only when a download is needed, so a bad value never stops
    cached or local LoRAs."""
    return lora_cache.read_megabytes(MAX_DOWNLOAD_ENV, DEFAULT_MAX_DOWNLOAD_MB, LoraSourceError)


# ------------------------------------------------------------------------------------------------------------------
# Resolving a source


def is_url(source: str) -> bool:
    return bool(_SCHEME.match(source))


def is_repo_id(source: str) -> bool:
    return bool(_REPO_ID.match(source)) and not source.lower().endswith(SAFETENSORS_SUFFIXES + (".ckpt", ".pt",
                                                                                                ".bin", ".pth"))


def _has_parent_reference(source: str) -> bool:
    return ".." in re.split(r"[\\/]+", source)


def _looks_absolute(source: str) -> bool:
    return os.path.isabs(source) or source.startswith(("~", "\\")) or bool(re.match(r"^[A-Za-z]:[\\/]", source))


def _require_safetensors(path: str, what: str) -> str:
    if not path.lower().endswith(SAFETENSORS_SUFFIXES):
        raise LoraSourceError(f"{what} is not a .safetensors file; only safetensors LoRAs are loaded (pickled "
                              f".ckpt/.pt/.bin files can run code)")
    return path


def check_source(source: str) -> None:
    """Refuse, before anything runs, a URL source that will never be fetched: another scheme than http(s), or a user
    name or password in it (kept out of the prompt history that way)."""
    if not is_url(source):
        return
    scheme = source.split(":", 1)[0].lower()
    if scheme not in ("http", "https"):
        raise LoraSourceError(f"LoRA source '{redact_url(source)}' uses '{scheme}://'; only http(s) URLs are "
                              f"downloaded")
    try:
        check_url(source, "the LoRA source")
    except FetchError as error:
        raise LoraSourceError(str(error)) from None


def resolve_lora(source: str, weight_name: str | None = None, *, progress: Progress | None = None) -> str:
    """The local safetensors file for a LoRA source (see the module docstring); downloads when needed."""
    source = (source or "").strip()
    weight_name = (weight_name or "").strip() or None
    if not source:
        raise LoraSourceError("no LoRA given: choose a file from models/loras or give a URL or Hugging Face repo id")
    if is_url(source):
        check_source(source)
        try:
            url = unseal_url(source)
        except FetchError as error:
            raise LoraSourceError(str(error)) from None
        return download_lora(url, progress=progress)
    local = _looks_absolute(source) or _has_parent_reference(source)
    if local and not local_paths_allowed():
        raise LoraSourceError(f"LoRA source '{source}' is a path outside the loras folders; such paths are refused "
                              f"so that a prompt cannot read other files. Put the file in models/loras, or set "
                              f"{ALLOW_LOCAL_ENV}=1 where ComfyUI runs to allow local paths")
    if local:
        path = os.path.abspath(os.path.expanduser(source))
        if not os.path.isfile(path):
            raise LoraSourceError(f"LoRA file '{path}' does not exist")
        return _require_safetensors(path, f"LoRA file '{path}'")
    found = folder_paths.get_full_path(LORA_FOLDER, source) if LORA_FOLDER in folder_paths.folder_names_and_paths \
        else None
    if found is not None:
        return _require_safetensors(found, f"LoRA '{source}'")
    if is_repo_id(source):
        return huggingface_lora(source, weight_name)
    folders = ", ".join(folder_paths.get_folder_paths(LORA_FOLDER)) \
        if LORA_FOLDER in folder_paths.folder_names_and_paths else "none"
    raise LoraSourceError(f"LoRA '{source}' was not found in the loras folders ({folders}) and is neither an http(s) "
                          f"URL nor a Hugging Face repo id ('owner/name' with weight_name)")


# ------------------------------------------------------------------------------------------------------------------
# safetensors checks


def check_safetensors(path: str | Path, what: str = "the file") -> None:
    """Raise `LoraSourceError` unless `path` is a complete, well-formed safetensors file (header and size only)."""
    loading.check_safetensors(path, what, error=LoraSourceError)


def check_head(head: bytes, what: str) -> None:
    """Refuse a download from its first bytes unless they can start a safetensors file (web pages and pickles
    are named)."""
    loading.check_head(head, what, error=LoraSourceError)


# ------------------------------------------------------------------------------------------------------------------
# http(s)


def cached_download_path(url: str, folder: Path | None = None) -> Path:
    """Where `url` is cached: `<name>-<lora_cache.cache_key>.safetensors`, so query variants share one file."""
    folder = folder or download_dir()
    base = os.path.basename(urllib.parse.unquote(urllib.parse.urlsplit(url).path)) or "lora"
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", base)
    for suffix in SAFETENSORS_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    stem = stem.strip("._")[:80] or "lora"
    return folder / f"{stem}-{lora_cache.cache_key(url)}{lora_cache.CACHED_SUFFIX}"


def download_lora(url: str, *, folder: Path | None = None, max_bytes: int | None = None,
                  progress: Progress | None = None) -> str:
    """Download a safetensors LoRA once (see the module docstring); returns the cached file's path."""
    final = cached_download_path(url, folder)
    shown = redact_url(url)
    with _download_lock:
        if final.is_file():
            try:
                check_safetensors(final, f"the cached download of {shown}")
                lora_cache.mark_used(final)
                return str(final)
            except LoraSourceError as error:  # a damaged cache entry (e.g. edited by hand): fetch it again
                logger.warning("%s; downloading it again", error)
                final.unlink()
        cache_limit = lora_cache.cache_bytes(LoraSourceError)
        what = f"the download from {shown}"
        try:
            download(url, final, max_bytes=max_download_bytes() if max_bytes is None else max_bytes,
                     check_head=lambda head: check_head(head, what), cancel=check_interrupted, progress=progress,
                     check_file=lambda path: check_safetensors(path, what), what="the LoRA download",
                     limit_hint=f" (set {MAX_DOWNLOAD_ENV} to change it)")
        except FetchError as error:
            raise LoraSourceError(str(error)) from None
        lora_cache.mark_used(final)
        lora_cache.evict(final.parent, final, cache_limit)
    logger.info("downloaded LoRA %s to %s", shown, final)
    return str(final)


# ------------------------------------------------------------------------------------------------------------------
# Hugging Face


def huggingface_lora(repo_id: str, weight_name: str | None = None) -> str:
    """A LoRA file of a Hugging Face repo through `huggingface_hub` (its cache; offline mode honoured)."""
    try:
        import huggingface_hub
        from huggingface_hub import constants
        from huggingface_hub.utils import (
            EntryNotFoundError,
            HfHubHTTPError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
        )
    except ImportError:
        raise LoraSourceError(f"'{repo_id}' looks like a Hugging Face repo id, but the huggingface_hub package is "
                              f"not installed; install it (pip install huggingface_hub) or put the file in "
                              f"models/loras") from None
    offline = bool(constants.HF_HUB_OFFLINE)
    if weight_name is not None:
        if _looks_absolute(weight_name) or _has_parent_reference(weight_name):
            raise LoraSourceError(f"weight_name '{weight_name}' must be a file name inside the repo")
        _require_safetensors(weight_name, f"weight_name '{weight_name}'")
    try:
        if weight_name is None:
            weight_name = _pick_weight_name(huggingface_hub, repo_id, offline)
        return huggingface_hub.hf_hub_download(repo_id=repo_id, filename=weight_name, local_files_only=offline)
    except LoraSourceError:
        raise
    except RepositoryNotFoundError:
        raise LoraSourceError(f"Hugging Face repo '{repo_id}' was not found (or is private: log in with "
                              f"`huggingface-cli login` or set HF_TOKEN)") from None
    except LocalEntryNotFoundError:  # (a subclass of EntryNotFoundError)
        mode = "offline mode (HF_HUB_OFFLINE) is on" if offline else "the Hub could not be reached"
        raise LoraSourceError(f"'{weight_name or '*.safetensors'}' of Hugging Face repo '{repo_id}' is not in the "
                              f"local cache and {mode}") from None
    except EntryNotFoundError:
        raise LoraSourceError(f"Hugging Face repo '{repo_id}' has no file '{weight_name}'") from None
    except (HfHubHTTPError, OSError) as error:
        raise LoraSourceError(f"fetching '{weight_name}' from Hugging Face repo '{repo_id}' failed: {error}") from None


def _pick_weight_name(huggingface_hub, repo_id: str, offline: bool) -> str:
    if offline:
        snapshot = huggingface_hub.snapshot_download(repo_id=repo_id, allow_patterns=["*.safetensors"],
                                                     local_files_only=True)
        names = sorted(str(p.relative_to(snapshot)).replace(os.sep, "/")
                       for p in Path(snapshot).rglob("*.safetensors"))
    else:
        names = sorted(n for n in huggingface_hub.list_repo_files(repo_id) if n.lower().endswith(".safetensors"))
    if len(names) == 1:
        return names[0]
    if "pytorch_lora_weights.safetensors" in names:  # what diffusers picks
        return "pytorch_lora_weights.safetensors"
    if not names:
        raise LoraSourceError(f"Hugging Face repo '{repo_id}' has no .safetensors file"
                              + (" in the local cache (offline mode)" if offline else ""))
    listed = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
    raise LoraSourceError(f"Hugging Face repo '{repo_id}' has {len(names)} .safetensors files ({listed}); say which "
                          f"one with weight_name")
