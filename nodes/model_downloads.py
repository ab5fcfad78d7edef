"""Downloading a helper model's folder (prompt enhancer, safety checker) when the user switches `download` on in
its loader: every missing file through `fetch` (http(s) only, public addresses only, size caps, atomic), into a
hidden folder beside the target, moved into place only when all files arrived, so a failure or Cancel leaves
nothing behind. Progress shows in the node's ComfyUI progress bar."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import comfy.utils

from ..assistants.catalog import SHARD_INDEX, ModelSource
from ..assistants.folders import find_folder, read_json
from ..fetch import FetchError, download
from .progress import check_interrupted

logger = logging.getLogger(__name__)

MAX_WEIGHT_BYTES = 16 << 30
MAX_OTHER_BYTES = 64 << 20


class ModelDownloadError(RuntimeError):
    """A helper model's download failed; nothing of it was kept."""


def _check_head(file: str, what: str):
    def check(head: bytes) -> None:
        if file.endswith(".safetensors"):
            if len(head) >= 9 and head[8:9] != b"{":
                raise ModelDownloadError(f"{what} is not a safetensors file (a web page or another format)")
        elif head.lstrip()[:1] == b"<":
            raise ModelDownloadError(f"{what} is a web page (HTML), not the model's file")
    return check


def _check_file(file: str, what: str):
    def check(path: Path) -> None:
        try:
            if file.endswith(".json"):
                read_json(path)
            elif file.endswith(".safetensors"):
                from safetensors import safe_open

                with safe_open(str(path), framework="pt") as handle:
                    handle.keys()
        except Exception as error:
            raise ModelDownloadError(f"{what} is damaged or incomplete ({error})") from None
    return check


def _fetch(source: ModelSource, file: str, folder: Path, bar) -> None:
    url, what = source.url(file), f"{source.repo}/{file}"
    limit = MAX_WEIGHT_BYTES if file.endswith(".safetensors") else MAX_OTHER_BYTES
    progress = (lambda done, total: bar.update_absolute(done, total or max(done, 1))) if bar is not None else None
    download(url, folder / file, max_bytes=limit, check_head=_check_head(file, what), cancel=check_interrupted,
             progress=progress, check_file=_check_file(file, what), what=f"the model file {what}")


def _wanted(source: ModelSource, have: Path, staging: Path, bar) -> list[str]:
    """The files of `source` (shards named by its index, fetched first when missing) not yet in `have`."""
    files = [f for f in source.files if not (have / f).is_file()]
    if SHARD_INDEX in source.files:
        index_dir = have if (have / SHARD_INDEX).is_file() else staging
        if index_dir is staging:
            _fetch(source, SHARD_INDEX, staging, bar)
            files.remove(SHARD_INDEX)
        shards = sorted(set(read_json(index_dir / SHARD_INDEX).get("weight_map", {}).values()))
        if any(Path(s).name != s or not s.endswith(".safetensors") for s in shards):
            raise ModelDownloadError(f"{source.repo}/{SHARD_INDEX} names unexpected files: {shards}")
        files += [s for s in shards if not (have / s).is_file()]
    return files


def download_folder(source: ModelSource, name: str, roots: Sequence[str]) -> Path:
    """Fetch what `roots[0]/name` lacks from `source`; returns the complete folder."""
    target = find_folder(name, roots) or Path(roots[0]) / name
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".download", dir=target.parent))
    bar = comfy.utils.ProgressBar(1)
    try:
        files = _wanted(source, target, staging, bar)
        for file in files:
            logger.info("downloading %s from %s", file, source.url(file))
            _fetch(source, file, staging, bar)
        target.mkdir(exist_ok=True)
        for item in staging.iterdir():
            os.replace(item, target / item.name)
    except FetchError as error:
        hint = (f" {source.repo} is gated: accept its licence at {source.page} and put the files in {target} "
                f"yourself, or pick another model" if source.gated else "")
        raise ModelDownloadError(f"downloading {source.repo} into {target} failed: {error}; nothing was kept."
                                 f"{hint}") from None
    except ModelDownloadError as error:
        raise ModelDownloadError(f"downloading {source.repo} into {target} failed: {error}; nothing was kept") \
            from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("%s is in %s", source.repo, target)
    return target


def missing_hint(source: ModelSource | None) -> str:
    """What the loader's error adds about downloading."""
    if source is None:
        return ""
    return (f" Switch `download` on in the loader to fetch them from {source.page} ({source.licence}"
            f"{', gated' if source.gated else ''}).")

