"""What the Comfy Registry and ComfyUI-Manager read from the repo: `comfy node validate` (comfy-cli, the registry's
publishing checks) passes, and the metadata its parser extracts is complete and agrees with requirements.txt.

comfy-cli lives in its own venv (`.venv-tools/cli`, made by `scripts/setup_tools.sh`, which `make test` runs).
"""

from __future__ import annotations

import json
import re
import subprocess
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
import tomllib

from support.comfy_server import comfy_root

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLS = REPO_ROOT / ".venv-tools"
CLI_PYTHON = TOOLS / "cli" / "bin" / "python"
PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
REPOSITORY = PYPROJECT["project"]["urls"]["Repository"]
RAW_PREFIX = REPOSITORY.replace("https://github.com/", "https://raw.githubusercontent.com/") + "/main/"

PARSE_PY = """
import json, sys
from comfy_cli.registry.config_parser import extract_node_configuration
config = extract_node_configuration(sys.argv[1])
print("CONFIG=" + json.dumps(config, default=lambda o: vars(o) if hasattr(o, "__dict__") else str(o)))
"""


def tool_env(tmp_path: Path) -> dict[str, str]:
    """A throw-away HOME (comfy-cli keeps a config file there) and telemetry off."""
    return {"PATH": f"{CLI_PYTHON.parent}:/usr/bin:/bin", "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path),
            "DO_NOT_TRACK": "1", "COMFY_NO_TELEMETRY": "1"}


def requirement_names(path: Path) -> list[str]:
    lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    return [line for line in lines if line]


@pytest.fixture(scope="module")
def registry_config(tmp_path_factory) -> dict:
    """pyproject.toml as comfy-cli's registry parser reads it (what `comfy node publish` uploads)."""
    if not CLI_PYTHON.exists():
        raise RuntimeError("comfy-cli is not installed: run scripts/setup_tools.sh (make test does)")
    home = tmp_path_factory.mktemp("comfy-cli-home")
    result = subprocess.run([str(CLI_PYTHON), "-c", PARSE_PY, str(REPO_ROOT / "pyproject.toml")], cwd=REPO_ROOT,
                            env=tool_env(home), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stdout, result.stdout
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("CONFIG=")]
    return json.loads(line[len("CONFIG="):])


def test_comfy_node_validate_passes(tmp_path):
    result = subprocess.run([str(CLI_PYTHON), "-m", "comfy_cli", "--skip-prompt", "node", "validate"], cwd=REPO_ROOT,
                            env=tool_env(tmp_path), capture_output=True, text=True, timeout=300,
                            stdin=subprocess.DEVNULL)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "All validation checks passed" in output, output
    assert "Warning" not in output and "Security warnings" not in output, output


def test_published_dependencies_are_the_requirements(registry_config):
    """The registry publishes `project.dependencies`; the Manager's git install reads requirements.txt."""
    dependencies = registry_config["project"]["dependencies"]
    assert dependencies and dependencies == requirement_names(REPO_ROOT / "requirements.txt")
    assert not [d for d in dependencies if re.match(r"(torch|torchvision|torchaudio)\b", d)]


def test_registry_metadata_is_complete(registry_config):
    project, comfy = registry_config["project"], registry_config["tool_comfy"]
    assert project["name"] == "ltxv-097-native" and project["version"]
    assert project["supported_os"] == ["OS Independent"]
    assert project["supported_accelerators"] == ["GPU :: NVIDIA CUDA"]
    assert project["supported_comfyui_version"] == ">=0.3.75"
    urls = project["urls"]
    assert urls["repository"] == REPOSITORY
    assert urls["documentation"].startswith(REPOSITORY) and urls["issues"] == REPOSITORY + "/issues"
    assert comfy["publisher_id"] and comfy["display_name"]


@pytest.mark.parametrize("field, ratio, max_side", [("icon", 1.0, 400), ("banner_url", 21 / 9, None)])
def test_icon_and_banner_are_in_the_repo(registry_config, field, ratio, max_side):
    """Icon (square, at most 400 px) and banner (21:9) are URLs of files this repo holds."""
    url = registry_config["tool_comfy"][field]
    assert url.startswith(RAW_PREFIX), url
    path = REPO_ROOT / url[len(RAW_PREFIX):]
    assert path.is_file(), path
    svg = ElementTree.parse(path).getroot()
    width, height = float(svg.get("width")), float(svg.get("height"))
    assert abs(width / height - ratio) < 0.01
    assert max_side is None or max(width, height) <= max_side


WORKFLOW_FILES = sorted((REPO_ROOT / "workflows").glob("*.json"))
FRONTEND_ONLY_NODES = {"Note", "MarkdownNote"}
HOST_VERSION = re.search(r'__version__ = "([^"]+)"', (comfy_root() / "comfyui_version.py").read_text()).group(1)


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda path: path.stem)
def test_workflow_nodes_name_their_pack(path):
    """A ComfyUI without this pack names it for the missing nodes (and the Manager can install it) only from these
    properties; core nodes say comfy-core and the host version, as the frontend writes them."""
    pack = {"cnr_id": PYPROJECT["project"]["name"], "aux_id": REPOSITORY.removeprefix("https://github.com/"),
            "ver": PYPROJECT["project"]["version"]}
    workflow = json.loads(path.read_text())
    ours = [node for node in workflow["nodes"] if node["type"].startswith("LTX097")]
    assert ours
    for node in workflow["nodes"]:
        properties = node.get("properties", {})
        if node["type"] in FRONTEND_ONLY_NODES:
            assert "cnr_id" not in properties
        elif node in ours:
            assert {key: properties.get(key) for key in pack} == pack, node["type"]
        else:
            assert (properties.get("cnr_id"), properties.get("ver")) == ("comfy-core", HOST_VERSION), node["type"]


def test_readme_shows_the_main_workflow():
    """The README's screenshot is a committed JPEG (written by the browser test with LTXV097_UPDATE_SCREENSHOTS=1)."""
    name = "assets/workflow_text_to_video_lora.jpg"
    assert f"]({name})" in (REPO_ROOT / "README.md").read_text()
    data = (REPO_ROOT / name).read_bytes()
    assert data[:3] == b"\xff\xd8\xff" and 20_000 < len(data) < 300_000
