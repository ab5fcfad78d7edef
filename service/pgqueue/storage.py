"""The folder every instance of the fleet mounts (`storage_dir`, a network volume on several machines): result mp4s
that any instance serves, the condition files a gateway fetched for a job that another worker runs, and the files
uploaded through the storage API (`uploads`: a file uploaded through one instance is read by whichever instance
takes the request naming it). Plain Python (no database driver).

Files are written under a temporary name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..retention import remove_result_file

SUBFOLDER = "ltxv097_api"


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    shutil.copyfile(source, partial)
    os.replace(partial, target)


def storage_root(storage_dir: str | None, output_dir: Path) -> Path:
    """`storage_dir` of the config, or ComfyUI's output folder when unset (instances on one machine sharing it)."""
    return Path(storage_dir).expanduser() if storage_dir else Path(output_dir)


def uploads_folder(root: Path) -> Path:
    return Path(root) / SUBFOLDER / "uploads"


class SharedStorage:
    def __init__(self, root: Path, output_dir: Path):
        self.root, self.output_dir = Path(root), Path(output_dir)

    def video_path(self, video: dict) -> Path:
        return self.root / video["path"]

    def store_video(self, request_id: str, video: dict) -> dict:
        """Put a result from ComfyUI's output folder into the storage (nothing to do when they are one folder)."""
        if self.root.resolve() == self.output_dir.resolve():
            return video
        relative = Path(SUBFOLDER) / "results" / request_id / video["file_name"]
        _copy(self.output_dir / video["path"], self.root / relative)
        return {**video, "path": relative.as_posix()}

    def inputs(self, request_id: str) -> Path:
        return self.root / SUBFOLDER / "inputs" / request_id

    def stash_inputs(self, input_dir: Path, prefix: str, request_id: str) -> None:
        """The gateway's condition files of a request (named `prefix*`) move to the storage for its worker."""
        for path in Path(input_dir).glob(f"{prefix}*"):
            _copy(path, self.inputs(request_id) / path.name)
            path.unlink()

    def take_inputs(self, input_dir: Path, request_id: str) -> None:
        """The worker copies a request's condition files into its ComfyUI's input folder."""
        folder = self.inputs(request_id)
        if folder.is_dir():
            for path in folder.iterdir():
                if not path.name.endswith(".partial"):
                    _copy(path, Path(input_dir) / path.name)

    def drop_inputs(self, request_id: str) -> None:
        shutil.rmtree(self.inputs(request_id), ignore_errors=True)

    def remove_results(self, request_id: str, video_path: str | None) -> None:
        """A pruned request's files: its mp4 (under `results/<request id>/`, or in the output folder when that is
        the storage) and any condition files left."""
        remove_result_file(self.root, video_path)
        self.drop_inputs(request_id)
