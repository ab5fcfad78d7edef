"""One header check for every file a loader opens (checkpoints, latent upsamplers, LoRAs, downloads).

Reading a safetensors file starts with an 8-byte header length and a JSON header; anything else (a pickle renamed
`.safetensors`, a web page saved instead of the file, a cut-short download) is named here from its first bytes and
its size, before any tensor is read, instead of surfacing as the safetensors library's "header too large".
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

MAX_HEADER_BYTES = 100 << 20
"""The safetensors library's own limit on the JSON header."""


class NotSafetensorsError(ValueError):
    """A file that is not a complete safetensors file (the message names it and says what it is instead)."""


class _DuplicateKey(ValueError):
    """A JSON object that names one key twice (`json` would silently keep the last)."""


def _refuse_duplicates(pairs: list[tuple[str, object]]) -> dict:
    seen: dict = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen[key] = value
    return seen


def reject_other_formats(head: bytes, what: str, content_type: str = "",
                         error: type[ValueError] = NotSafetensorsError) -> None:
    """Name the usual wrong files (web pages, pickles) from a file's first bytes; a safetensors file has its
    JSON header's `{` at byte 8."""
    if head[8:9] == b"{":
        return
    if "html" in content_type.lower() or head.lstrip()[:1] == b"<":
        raise error(f"{what} is a web page (HTML), not a safetensors file; its URL probably led to a login or "
                    f"error page rather than to the file itself")
    if head[:4] == b"PK\x03\x04" or (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")):
        raise error(f"{what} is a pickled PyTorch file (.ckpt/.pt/.bin), not safetensors, whatever its name says; "
                    f"pickle files can run code and are never loaded. Use the .safetensors version of the file")


def check_head(head: bytes, what: str, content_type: str = "", error: type[ValueError] = NotSafetensorsError) -> None:
    """Refuse a file from its first 16 bytes unless they can start a safetensors file (an 8-byte header length
    within the library's limit, then the JSON header's `{`), naming web pages and pickles. Heads shorter than 10
    bytes pass: the whole-file check reports them."""
    if len(head) < 10:
        return
    reject_other_formats(head, what, content_type, error=error)
    (header_len,) = struct.unpack("<Q", head[:8])
    if head[8:9] != b"{" or header_len > MAX_HEADER_BYTES:
        raise error(f"{what} is not a safetensors file (its first bytes are not a safetensors header)")


def check_safetensors(path: str | Path, what: str = "the file",
                      error: type[ValueError] = NotSafetensorsError) -> None:
    """Raise `error` unless `path` is a complete, well-formed safetensors file (header and size only)."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(16)
        if len(head) < 10:
            raise error(f"{what} is empty or cut short ({size} bytes); it is not a safetensors file")
        check_head(head, what, error=error)
        (header_len,) = struct.unpack("<Q", head[:8])
        if 8 + header_len > size:
            raise error(f"{what} is not a complete safetensors file (its header says {header_len} bytes, the file "
                        f"has {size}); the download or copy may have been cut short")
        handle.seek(8)
        raw = handle.read(header_len)
    try:
        header = json.loads(raw, object_pairs_hook=_refuse_duplicates)
    except _DuplicateKey as duplicate:
        raise error(f"{what} is not a valid safetensors file: its header names the tensor '{duplicate}' "
                    f"twice") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise error(f"{what} is not a safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise error(f"{what} is not a safetensors file (its header is not a JSON object)")
    end = 0
    for key, info in header.items():
        if key == "__metadata__":
            continue
        try:
            end = max(end, int(info["data_offsets"][1]))
        except (KeyError, TypeError, IndexError, ValueError):
            raise error(f"{what} is not a safetensors file (entry '{key}' has no data offsets)") from None
    expected = 8 + header_len + end
    if expected > size:
        raise error(f"{what} is incomplete: it should be {expected} bytes but has {size}; the download or copy may "
                    f"have been cut short")
    if expected < size:
        raise error(f"{what} has {size - expected} bytes after its last tensor (it should be {expected} bytes, it "
                    f"has {size}); it is not a file the safetensors library wrote, or it is damaged")
