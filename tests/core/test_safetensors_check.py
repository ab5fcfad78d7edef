"""The one safetensors header check (ltx_core.loading.safetensors_check) on hand-made files: complete files pass,
and each way a file can be wrong is named for what it is (cut short, trailing bytes, duplicate entries, not JSON)."""

from __future__ import annotations

import struct

import pytest
import torch
from safetensors.torch import save_file

from ltx_core.loading import NotSafetensorsError, check_safetensors


def _good(tmp_path):
    path = tmp_path / "good.safetensors"
    save_file({"a": torch.zeros(4), "b": torch.ones(2, 3)}, str(path))
    return path


def _with_header(tmp_path, entries: str, data: bytes):
    """A file whose JSON header is written by hand (json.dumps cannot write a key twice)."""
    header = entries.encode()
    path = tmp_path / "hand_made.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + data)
    return path


def test_a_complete_file_passes(tmp_path):
    check_safetensors(_good(tmp_path), "the LoRA")


def test_a_cut_short_file_is_named_incomplete(tmp_path):
    path = _good(tmp_path)
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(NotSafetensorsError, match=r"^the LoRA is incomplete: it should be \d+ bytes but has \d+; the "
                                                  r"download or copy may have been cut short"):
        check_safetensors(path, "the LoRA")


def test_trailing_bytes_after_the_last_tensor_are_refused(tmp_path):
    path = _good(tmp_path)
    path.write_bytes(path.read_bytes() + b"\0" * 5)
    with pytest.raises(NotSafetensorsError, match=r"^the LoRA has 5 bytes after its last tensor \(it should be \d+ "
                                                  r"bytes, it has \d+\); it is not a file the safetensors library "
                                                  r"wrote"):
        check_safetensors(path, "the LoRA")


def test_a_key_written_twice_in_the_header_is_named_as_a_duplicate(tmp_path):
    entry = '{"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}'
    path = _with_header(tmp_path, f'{{"w": {entry}, "w": {entry}}}', bytes(4))
    with pytest.raises(NotSafetensorsError, match=r"^the LoRA is not a valid safetensors file: its header names the "
                                                  r"tensor 'w' twice$"):
        check_safetensors(path, "the LoRA")
    other = '{"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}'
    check_safetensors(_with_header(tmp_path, f'{{"w": {entry}, "v": {other}}}', bytes(8)), "the LoRA")


def test_a_header_that_is_not_json_is_named(tmp_path):
    path = _with_header(tmp_path, '{"w": [0, 4', bytes(4))
    with pytest.raises(NotSafetensorsError, match=r"its header is not JSON"):
        check_safetensors(path, "the LoRA")
