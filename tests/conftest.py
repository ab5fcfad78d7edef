"""Test setup: the repo root is importable (for `ltx_core`) behind any ComfyUI root, whose `nodes` must win."""

import sys
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.append(str(REPO_ROOT))

torch.set_num_threads(min(torch.get_num_threads(), 2))


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield
