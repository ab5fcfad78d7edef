"""An install the way a user gets it: ComfyUI-Manager's own CLI (`cm-cli install <git url>`, from the
`comfyui-manager` package) clones the pack into a fresh copy of the pinned host and installs its requirements.txt,
then that host starts with the pack and renders a shipped workflow.

The git URL is a bare clone of this repo's HEAD served over plain (dumb) HTTP on 127.0.0.1, since the Manager
refuses `file://` URLs. The Manager runs in the host's Python with `.venv-tools/manager` on its path
(`scripts/setup_tools.sh`); as a pip package it reads its channel lists from its own files, and its config says
`network_mode = offline`, so nothing leaves this machine.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from support import e2e_workflows, tiny_t5
from support.comfy_host import ComfyServer, comfy_root, write_standard_models

REPO_ROOT = Path(__file__).resolve().parents[2]
MANAGER_LIB = REPO_ROOT / ".venv-tools" / "manager"
REPO_NAME = "ComfyUI-LTXVideo-097-Native"
"""The repository's name in its canonical URL (pyproject's Repository); the Manager names the folder after it."""
HOST_SKIP = ("models", "input", "output", "temp", "user", "__pycache__")
WORKFLOW = "ltxv097_text_to_video_distilled"
MANAGER_CONFIG = "[default]\nnetwork_mode = offline\nfile_logging = False\n"


def requirement_names() -> list[str]:
    lines = [line.split("#")[0].strip() for line in (REPO_ROOT / "requirements.txt").read_text().splitlines()]
    return [line for line in lines if line]


def serve_bare_clone(folder: Path) -> str:
    """A bare clone of HEAD in `folder`, ready for git's dumb HTTP protocol; returns its name."""
    bare = folder / f"{REPO_NAME}.git"
    subprocess.run(["git", "clone", "--quiet", "--bare", "--no-local", str(REPO_ROOT), str(bare)], check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, check=True, capture_output=True,
                          text=True).stdout.strip()
    subprocess.run(["git", "--git-dir", str(bare), "update-ref", "refs/heads/main", head], check=True)
    subprocess.run(["git", "--git-dir", str(bare), "symbolic-ref", "HEAD", "refs/heads/main"], check=True)
    subprocess.run(["git", "--git-dir", str(bare), "update-server-info"], check=True)
    return bare.name


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # requests are not test output
        pass


@pytest.fixture(scope="module")
def git_server(tmp_path_factory):
    """An HTTP server on 127.0.0.1 with the bare clone; yields its URL."""
    folder = tmp_path_factory.mktemp("git-http")
    name = serve_bare_clone(folder)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{name}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def fresh_host(tmp_path_factory) -> Path:
    """A copy of the pinned ComfyUI tree without its models, inputs, outputs and user files."""
    host = tmp_path_factory.mktemp("fresh") / "ComfyUI"
    root = comfy_root()

    def left_out(folder: str, names: list[str]) -> list[str]:
        skip = HOST_SKIP if Path(folder) == root else ("__pycache__",)
        return [name for name in names if name in skip]

    shutil.copytree(root, host, ignore=left_out)
    manager_dir = host / "user" / "__manager"
    manager_dir.mkdir(parents=True)
    (manager_dir / "config.ini").write_text(MANAGER_CONFIG)
    return host


@pytest.fixture(scope="module")
def installed(git_server, fresh_host) -> tuple[Path, str]:
    """`cm-cli install <url>` into the fresh host; returns (the pack's folder, the Manager's output)."""
    if not (MANAGER_LIB / "cm_cli").is_dir():
        raise RuntimeError("ComfyUI-Manager is not installed: run scripts/setup_tools.sh (make test does)")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "COMFYUI_FOLDERS_BASE_PATH")}
    env.update({"COMFYUI_PATH": str(fresh_host), "PYTHONPATH": str(MANAGER_LIB), "PYTHONUNBUFFERED": "1",
                "GIT_TERMINAL_PROMPT": "0", "PIP_NO_INPUT": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
                "DO_NOT_TRACK": "1"})
    result = subprocess.run([sys.executable, "-m", "cm_cli", "install", git_server, "--exit-on-fail"],
                            cwd=fresh_host, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return fresh_host / "custom_nodes" / REPO_NAME, output


def test_manager_clones_the_pack(installed, git_server):
    pack, output = installed
    assert f"[INSTALLED] {git_server}" in output, output
    assert (pack / ".git").is_dir() and (pack / "__init__.py").is_file()
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    cloned = subprocess.run(["git", "-C", str(pack), "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=True)
    assert cloned.stdout == head.stdout


def test_manager_installs_the_requirements(installed):
    """Each line of requirements.txt goes through the Manager's pip step, in the host's Python (already there:
    nothing is changed), or is one the Manager never lets a pack reinstall (its downgrade blacklist)."""
    _, output = installed
    flat = re.sub(r"\s+", " ", output)
    for name in requirement_names():
        ran = f"'{sys.executable}', '-m', 'pip', 'install', '{name}'" in flat
        guarded = f"skip black listed pip installation: '{name}'" in flat
        assert ran or guarded, f"the Manager did not install {name}:\n{output}"
    assert "install script failed" not in output


def test_the_host_starts_with_the_installed_pack_and_runs_a_workflow(installed, fresh_host, monkeypatch):
    pack, _ = installed
    monkeypatch.setenv("COMFYUI_DIR", str(fresh_host))  # this host's main.py, not the shared one
    server = ComfyServer(fresh_host, pack_dir=pack, pack_name=REPO_NAME)
    server.models = write_standard_models(server.models_dir)
    tiny_t5.install_test_nodes(server.workdir / "custom_nodes")
    server.models["t5"] = tiny_t5.write_tiny_t5(server.model_path("text_encoders", tiny_t5.FILE_NAME)).name
    with server:
        object_info = server.object_info()
        ours = {name for name, info in object_info.items()
                if info.get("python_module") == f"custom_nodes.{REPO_NAME}"}
        assert "LTX097Sampler" in ours and "LTX097TextToVideo" in ours, sorted(ours)
        assert "IMPORT FAILED" not in server.log_text()
        prompt = e2e_workflows.tiny_prompt(e2e_workflows.load_workflow(WORKFLOW), object_info, server.models)
        entry = server.wait(server.post_prompt(prompt), timeout=180, raise_on_error=True)
        (video,) = e2e_workflows.saved_videos(entry)
        frames, _, _ = e2e_workflows.read_video(server.output_dir / video["subfolder"] / video["filename"])
    size = e2e_workflows.SAMPLER_SIZE
    assert frames.shape == (size["num_frames"], size["height"], size["width"], 3)
