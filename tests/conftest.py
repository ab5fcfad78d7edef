"""Test setup: the repo root is importable (for `ltx_core`) behind any ComfyUI root, whose `nodes` must win, and
`tests/` for the shared `support` package; each test is marked by the folder it lives in (what it needs)."""

import sys
from pathlib import Path

import pytest
import torch

TESTS = Path(__file__).resolve().parent
REPO_ROOT = TESTS.parent
for path in (REPO_ROOT, TESTS):
    if str(path) not in sys.path:
        sys.path.append(str(path))

torch.set_num_threads(min(torch.get_num_threads(), 2))

FOLDER_MARKERS = {"core": "core", "host": "host", "server": "server"}
"""tests/<folder>/ → the marker its tests get (registered in pytest.ini)."""


def pytest_collection_modifyitems(items):
    for item in items:
        folder = Path(str(item.fspath)).resolve().relative_to(TESTS).parts[0]
        if folder in FOLDER_MARKERS:
            item.add_marker(FOLDER_MARKERS[folder])


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield
