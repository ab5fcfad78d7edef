"""The prompt enhancer and safety checker on the oldest and newest `transformers` releases ComfyUI users have
(4.50 and 5.x), each installed beside the venv's by scripts/setup_transformers.sh and run in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from support import tiny_assistants
from support.comfy_server import REPO_ROOT

RELEASES = ("4.50.0", "5.24.0")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    subprocess.run(["bash", str(REPO_ROOT / "scripts" / "setup_transformers.sh"), *RELEASES], check=True,
                   cwd=REPO_ROOT, timeout=1200)
    root = tmp_path_factory.mktemp("releases")
    tiny_assistants.write_all(root)
    return root


@pytest.mark.parametrize("release", RELEASES)
def test_enhancer_and_checker_work_on_the_release(models, release):
    target = REPO_ROOT / ".transformers" / release
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), str(REPO_ROOT), str(REPO_ROOT / "tests")])}
    done = subprocess.run([sys.executable, str(REPO_ROOT / "tests" / "support" / "transformers_probe.py"), str(models)],
                          env=env, capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["version"] == release and result["transformers_file"].startswith(str(target))
    assert result["t2v"] and result["t2v"] != "a cat on a sofa" and result["t2v_again"] == result["t2v"]
    assert result["t2v_sampled"] != result["t2v"]
    assert result["i2v_mode"] == "i2v" and result["i2v"]
    assert result["caption"] and set(result["caption"].split()) <= set(tiny_assistants.CAPTION_WORDS)
    assert max(result["scores"]["nsfw_image_detection"]) < 0.01
    assert min(result["scores"]["tiny-nsfw-flags-everything"]) > 0.99
