"""The mp4 writer on its own (no ComfyUI): the same frames give the same bytes, and a failed write leaves no
file behind, not even its hidden partial file."""

from __future__ import annotations

import pytest
import torch

from mp4 import Mp4Writer, leftover_parts, write_mp4


def _frames(count: int = 6, seed: int = 0) -> torch.Tensor:
    return torch.rand(count, 32, 48, 3, generator=torch.Generator().manual_seed(seed))


def test_the_same_frames_give_the_same_bytes(tmp_path):
    write_mp4(str(tmp_path / "a.mp4"), _frames(), 24.0, metadata={"title": "t"})
    write_mp4(str(tmp_path / "b.mp4"), [_frames()[:2], _frames()[2:]], 24.0, metadata={"title": "t"})
    assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4", "b.mp4"]


def test_a_failed_write_leaves_nothing_behind(tmp_path):
    with pytest.raises(ValueError, match=r"expected IMAGE frames"):
        with Mp4Writer(str(tmp_path / "v.mp4"), 24.0) as writer:
            writer.write(_frames())
            writer.write(torch.zeros(2, 32, 48))  # not frames: the write fails after the file was opened
    with pytest.raises(RuntimeError, match="stopped"):
        with Mp4Writer(str(tmp_path / "w.mp4"), 24.0):
            raise RuntimeError("stopped before any frame")
    assert list(tmp_path.iterdir()) == []


def test_leftover_parts_are_the_writers_hidden_files_only(tmp_path):
    """What a crash leaves (a partial file the writer never renamed) is found anywhere under the folder; files of
    other names, a user's included, are not."""
    (tmp_path / "sub").mkdir()
    Mp4Writer(str(tmp_path / "sub" / "v.mp4"), 24.0)  # a crash: the writer never finishes
    (partial,) = (tmp_path / "sub").iterdir()
    others = [tmp_path / name for name in (".notes.part", "clip.mp4.part", ".clip.mp4.part", "v.mp4", ".v.mp4.x.part")]
    for path in others:
        path.write_bytes(b"x")
    assert list(leftover_parts(tmp_path)) == [partial]
