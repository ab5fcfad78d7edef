"""The pack's modules without ComfyUI: the repository imported as a package of its own (so `service/` can import
`hosted/` relatively) without running its `__init__`, which registers with ComfyUI.

    queue = pack_module("service.pgqueue.queue")
"""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PLAIN_PACK = "ltxv097_plain"


def pack_module(name: str) -> types.ModuleType:
    if PLAIN_PACK not in sys.modules:
        package = types.ModuleType(PLAIN_PACK)
        package.__path__ = [str(REPO_ROOT)]
        sys.modules[PLAIN_PACK] = package
    return importlib.import_module(f"{PLAIN_PACK}.{name}")
