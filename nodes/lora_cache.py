"""The LoRA download cache (`<first loras folder>/ltx097_downloads/`): one file per URL, capped in size.

A file is keyed on its URL without the query string or fragment (where signatures and tokens live, which change
from one request to the next for the same file), so query variants share one copy. The folder's LoRAs together
stay under `LTX097_LORA_CACHE_MB` (default 20480): after a download, the least recently used files are removed
until they fit. A file counts as used when it is downloaded or reused (its modification time is set then).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import Callable
from pathlib import Path

from ..fetch import redact_url

logger = logging.getLogger(__name__)

CACHE_ENV = "LTX097_LORA_CACHE_MB"
DEFAULT_CACHE_MB = 20480
"""Five LoRAs of the largest download size (`LTX097_LORA_MAX_DOWNLOAD_MB`'s default of 4096)."""
CACHED_SUFFIX = ".safetensors"


def cache_key(url: str) -> str:
    """A hash of what a cached file stands for: the URL's scheme, host, port and path (no query, fragment or
    credentials)."""
    return hashlib.sha256(redact_url(url).encode("utf-8")).hexdigest()[:12]


def read_megabytes(name: str, default_mb: int, error: Callable[[str], Exception]) -> int:
    """The environment variable `name`, a number of megabytes, in bytes; `error(message)` is raised for a value
    that is not a positive number."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default_mb << 20
    try:
        megabytes = float(raw)
    except ValueError:
        megabytes = math.nan
    if not (math.isfinite(megabytes) and megabytes > 0):
        raise error(f"{name}='{raw}' is not a number of megabytes; set it to a positive number (the default is "
                    f"{default_mb}) or unset it, where ComfyUI runs")
    return int(megabytes * (1 << 20))


def cache_bytes(error: Callable[[str], Exception]) -> int:
    """`LTX097_LORA_CACHE_MB` in bytes."""
    return read_megabytes(CACHE_ENV, DEFAULT_CACHE_MB, error)


def mark_used(path: Path) -> None:
    """Make `path` the most recently used file of the cache."""
    os.utime(path)


def evict(folder: Path, keep: Path, limit: int) -> list[str]:
    """Remove the least recently used cached LoRAs (never `keep`) until the folder's LoRAs fit in `limit` bytes;
    returns the names removed. Hidden files (downloads in progress) are not cache entries."""
    entries = []
    for path in folder.glob(f"*{CACHED_SUFFIX}"):
        if path.name.startswith("."):
            continue
        try:
            info = path.stat()
        except FileNotFoundError:
            continue
        entries.append((info.st_mtime_ns, info.st_size, path))
    total = sum(size for _, size, _ in entries)
    removed = []
    for _, size, path in sorted(entries, key=lambda entry: entry[0]):
        if total <= limit:
            break
        if path == keep:
            continue
        path.unlink(missing_ok=True)
        total -= size
        removed.append(path.name)
    if removed:
        logger.info("LoRA download cache over %s MB: removed the least recently used %s", limit >> 20,
                    ", ".join(removed))
    if total > limit:
        logger.warning("LoRA download cache: %s alone is larger than %s=%s MB", keep.name, CACHE_ENV, limit >> 20)
    return removed
