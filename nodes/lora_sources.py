"""Where a LoRA comes from: a file in ComfyUI's `loras` folders, an http(s) URL, a Hugging Face repo, or (only
when the user allows it) a local path. This is the `path` (+ `weight_name`) of the hosted service's LoRAWeight.

Downloads go to a cache folder inside the first `loras` folder (`ltx097_downloads/`), are streamed to a hidden
temporary file, size-capped, checked to be a complete safetensors file (never pickle) and only then renamed into
place, so a failed download leaves nothing behind and the next run reuses a good one. A prompt sent to the server
cannot read files outside the model folders: absolute paths and `..` are refused unless the environment variable
`LTX097_ALLOW_LOCAL_LORA_PATHS=1` is set.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable, Optional

import folder_paths

from ..ltx_core import safetensors_check

logger = logging.getLogger(__name__)

LORA_FOLDER = "loras"
DOWNLOAD_SUBFOLDER = "ltx097_downloads"
ALLOW_LOCAL_ENV = "LTX097_ALLOW_LOCAL_LORA_PATHS"
MAX_DOWNLOAD_ENV = "LTX097_LORA_MAX_DOWNLOAD_MB"
DEFAULT_MAX_DOWNLOAD_MB = 4096
"""A 13B rank-128 LoRA in bf16 is about 0.8 GB; fp32 or full-rank files are larger."""
SAFETENSORS_SUFFIXES = (".safetensors", ".sft")
DOWNLOAD_TIMEOUT_S = 60.0
CHUNK_BYTES = 1 << 20

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_download_lock = threading.Lock()

Progress = Callable[[int, Optional[int]], None]
"""`progress(bytes_done, bytes_total_or_None)`."""


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


def local_paths_allowed() -> bool:
    return os.environ.get(ALLOW_LOCAL_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def max_download_bytes() -> int:
    raw = os.environ.get(MAX_DOWNLOAD_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_DOWNLOAD_MB << 20
    try:
        megabytes = float(raw)
    except ValueError:
        raise LoraSourceError(f"{MAX_DOWNLOAD_ENV}='{raw}' is not a number of megabytes") from None
    return int(megabytes * (1 << 20))


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


def resolve_lora(source: str, weight_name: Optional[str] = None, *, progress: Optional[Progress] = None) -> str:
    """The local safetensors file for a LoRA source (see the module docstring); downloads when needed."""
    source = (source or "").strip()
    weight_name = (weight_name or "").strip() or None
    if not source:
        raise LoraSourceError("no LoRA given: choose a file from models/loras or give a URL or Hugging Face repo id")
    if is_url(source):
        scheme = source.split(":", 1)[0].lower()
        if scheme not in ("http", "https"):
            raise LoraSourceError(f"LoRA source '{source}' uses '{scheme}://'; only http(s) URLs are downloaded")
        return download_lora(source, progress=progress)
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
    safetensors_check.check_safetensors(path, what, error=LoraSourceError)


def _reject_other_formats(head: bytes, what: str, content_type: str = "") -> None:
    """Name the usual wrong downloads (web pages, pickles) from a file's first bytes."""
    safetensors_check.reject_other_formats(head, what, content_type, error=LoraSourceError)


# ------------------------------------------------------------------------------------------------------------------
# http(s)


def cached_download_path(url: str, folder: Optional[Path] = None) -> Path:
    """Where `url` is cached: `<name>-<hash of the url>.safetensors`, so a URL is downloaded once."""
    folder = folder or download_dir()
    parsed = urllib.parse.urlparse(url)
    base = os.path.basename(urllib.parse.unquote(parsed.path)) or "lora"
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", base)
    for suffix in SAFETENSORS_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    stem = stem.strip("._")[:80] or "lora"
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:12]
    return folder / f"{stem}-{digest}.safetensors"


def _mb(size: int) -> str:
    return f"{size / 2**20:.3g} MB"


def describe_url(url: str) -> str:
    parsed = urllib.parse.urlparse(url)
    return f"{parsed.scheme}://{parsed.netloc}{parsed.path}"  # no query string: it may hold a token


def download_lora(url: str, *, folder: Optional[Path] = None, max_bytes: Optional[int] = None,
                  timeout: float = DOWNLOAD_TIMEOUT_S, progress: Optional[Progress] = None) -> str:
    """Download a safetensors LoRA once (see the module docstring); returns the cached file's path."""
    final = cached_download_path(url, folder)
    max_bytes = max_download_bytes() if max_bytes is None else max_bytes
    shown = describe_url(url)
    with _download_lock:
        if final.is_file():
            try:
                check_safetensors(final, f"the cached download of {shown}")
                return str(final)
            except LoraSourceError as error:  # a damaged cache entry (e.g. edited by hand): fetch it again
                logger.warning("%s; downloading it again", error)
                final.unlink()
        final.parent.mkdir(parents=True, exist_ok=True)
        request = urllib.request.Request(url, headers={"User-Agent": "ComfyUI-LTX-Video-0.9.7"})
        try:
            response = urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as error:
            raise LoraSourceError(f"downloading {shown} failed: the server answered HTTP {error.code} "
                                  f"{error.reason}") from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise LoraSourceError(f"downloading {shown} failed: {reason}") from None
        handle, temp_name = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=".part", dir=final.parent)
        temp = Path(temp_name)
        done = 0
        try:
            with response, os.fdopen(handle, "wb") as out:
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                content_type = response.headers.get("Content-Type", "") or ""
                if total is not None and total > max_bytes:
                    raise LoraSourceError(f"{shown} is {_mb(total)}, more than the {_mb(max_bytes)} allowed for a "
                                          f"LoRA download (set {MAX_DOWNLOAD_ENV} to change it)")
                head = b""
                while True:
                    chunk = response.read(CHUNK_BYTES)
                    if not chunk:
                        break
                    if len(head) < 16:
                        head += chunk[:16]
                    done += len(chunk)
                    if done > max_bytes:
                        raise LoraSourceError(f"{shown} is larger than the {_mb(max_bytes)} allowed for a LoRA "
                                              f"download (set {MAX_DOWNLOAD_ENV} to change it); stopped")
                    out.write(chunk)
                    if progress is not None:
                        progress(done, total)
            _reject_other_formats(head, f"the download from {shown}", content_type)
            if total is not None and done != total:
                raise LoraSourceError(f"downloading {shown} was cut short: {done} of {total} bytes arrived")
            check_safetensors(temp, f"the download from {shown}")
            os.replace(temp, final)
        except BaseException as error:
            temp.unlink(missing_ok=True)
            if isinstance(error, http.client.IncompleteRead):
                arrived = done + len(error.partial)
                raise LoraSourceError(f"downloading {shown} was cut short: the connection closed after {arrived} "
                                      f"bytes, {error.expected} more were expected") from None
            if isinstance(error, (TimeoutError, OSError, http.client.HTTPException)):
                raise LoraSourceError(f"downloading {shown} failed: {error or type(error).__name__}") from None
            raise
    logger.info("downloaded LoRA %s to %s", shown, final)
    return str(final)


# ------------------------------------------------------------------------------------------------------------------
# Hugging Face


def huggingface_lora(repo_id: str, weight_name: Optional[str] = None) -> str:
    """A LoRA file of a Hugging Face repo through `huggingface_hub` (its cache; offline mode honoured)."""
    try:
        import huggingface_hub
        from huggingface_hub import constants
        from huggingface_hub.utils import (EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError,
                                           RepositoryNotFoundError)
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
