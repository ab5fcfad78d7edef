"""The pack loads in the real ComfyUI 0.3.75 host (as custom_nodes/ltxv097) and its nodes describe themselves."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from support.comfy_host import load_pack, pack_nodes
from support.comfy_server import PACK_NAME, REPO_ROOT, HostError, host_env, prepare_workdir, run_quick_test

pytest_plugins = ["support.comfy_host"]

LOADERS = ("LTX097ModelLoader", "LTX097UpsamplerLoader")
CATEGORY = "LTX-Video 0.9.7"


def pack_failures(log: str) -> list[str]:
    """Log lines in which ComfyUI reports that this pack failed to load."""
    patterns = [
        rf"IMPORT FAILED\).*custom_nodes/{PACK_NAME}\s*$",
        rf"Cannot import .*custom_nodes/{PACK_NAME} module",
        rf"Error while calling comfy_entrypoint in .*{PACK_NAME}",
        rf"comfy_entrypoint in .*{PACK_NAME}.* (is not callable|did not return)",
        rf"Skip .*custom_nodes/{PACK_NAME} module",
    ]
    return [line for line in log.splitlines() if any(re.search(p, line) for p in patterns)]


def pack_loaded(log: str) -> bool:
    """ComfyUI's "Import times for custom nodes" lists the pack without "(IMPORT FAILED)"."""
    return any(re.search(rf"^\s*[\d.]+ seconds: .*custom_nodes/{PACK_NAME}\s*$", line) for line in log.splitlines())


def our_nodes(object_info: dict) -> dict[str, dict]:
    return {name: info for name, info in object_info.items()
            if info.get("python_module") == f"custom_nodes.{PACK_NAME}"}


def startup_log(log: str) -> str:
    """The host log up to "Starting server" (later prompts of other tests may log errors on purpose)."""
    return log.split("Starting server", 1)[0]


def pack_tracebacks(log: str) -> list[str]:
    """Tracebacks in the log that pass through this pack's files."""
    blocks = log.split("Traceback (most recent call last):")[1:]
    return [block[:3000] for block in blocks if f"custom_nodes/{PACK_NAME}/" in block or "ltx_core" in block]


def test_pack_imports_cleanly(comfy_server):
    log = startup_log(comfy_server.log_text())
    assert "Starting server" in comfy_server.log_text()
    assert not pack_failures(log), "ComfyUI reported the pack as failed:\n" + "\n".join(pack_failures(log))
    assert pack_loaded(log), f"the pack is missing from ComfyUI's import-times list; log tail:\n{log[-4000:]}"
    assert not pack_tracebacks(log), "a traceback through the pack at start-up:\n" + "\n".join(pack_tracebacks(log))


def test_object_info_lists_the_loaders(comfy_server):
    nodes = our_nodes(comfy_server.object_info())
    for node_id in LOADERS:
        assert node_id in nodes, f"{node_id} not in /object_info (pack nodes: {sorted(nodes)})"


def test_every_pack_node_is_described(comfy_server):
    """All of the pack's nodes (not only the loaders): prefix, category, description, a tooltip on every input."""
    nodes = our_nodes(comfy_server.object_info())
    assert nodes, "no node of the pack in /object_info"
    problems = []
    for node_id, info in nodes.items():
        if not node_id.startswith("LTX097"):
            problems.append(f"{node_id}: node id lacks the LTX097 prefix")
        if not (info.get("category") == CATEGORY or info.get("category", "").startswith(CATEGORY + "/")):
            problems.append(f"{node_id}: category {info.get('category')!r} is not under {CATEGORY!r}")
        if not (info.get("description") or "").strip():
            problems.append(f"{node_id}: no description")
        if not (info.get("display_name") or "").strip():
            problems.append(f"{node_id}: no display name")
        for section in ("required", "optional"):
            for name, spec in (info.get("input", {}).get(section) or {}).items():
                options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
                if not (options.get("tooltip") or "").strip():
                    problems.append(f"{node_id}.{name}: no tooltip")
    assert not problems, "\n".join(problems)


def test_loader_types_and_model_lists(comfy_server):
    """The loaders' outputs are the pack's own types, and their file lists come from the yaml's folders."""
    info = comfy_server.object_info()
    model_loader, upsampler_loader = info["LTX097ModelLoader"], info["LTX097UpsamplerLoader"]
    assert model_loader["output"] == ["LTX097_MODEL", "LTX097_VAE"]
    assert upsampler_loader["output"] == ["LTX097_UPSAMPLER"]

    ckpt_options = model_loader["input"]["required"]["ckpt_name"][1]["options"]
    models = comfy_server.models
    assert models["checkpoint"] in ckpt_options          # from checkpoints/
    assert models["diffusion_model"] in ckpt_options     # from diffusion_models/
    assert models["upsampler"] not in ckpt_options
    dtype_spec = model_loader["input"]["required"]["weight_dtype"]
    assert dtype_spec[1]["options"] == ["auto", "bf16", "fp16", "fp32", "fp8_e4m3fn", "fp8_e5m2"]
    assert dtype_spec[1]["default"] == "auto"

    upsampler_options = upsampler_loader["input"]["required"]["upscale_model_name"][1]["options"]
    assert upsampler_options == [models["upsampler"]]


def test_server_helpers_run_a_prompt(comfy_server):
    """post_prompt / wait / view work against the session host (core nodes only; the e2e tests build on this)."""
    prompt = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
              "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "host_probe"}}}
    entry = comfy_server.wait(comfy_server.post_prompt(prompt), timeout=60, raise_on_error=True)
    assert entry["status"]["status_str"] == "success" and comfy_server.execution_error(entry) is None
    (image,) = entry["outputs"]["2"]["images"]
    assert (comfy_server.output_dir / image["subfolder"] / image["filename"]).is_file()
    assert comfy_server.view(image["filename"], image["subfolder"]).startswith(b"\x89PNG")

    with pytest.raises(HostError) as refused:  # no output node: ComfyUI answers HTTP 400 with the reason
        comfy_server.post_prompt({"1": prompt["1"]})
    assert "prompt_no_outputs" in str(refused.value.detail)


def test_package_imports_without_comfyui():
    """Outside ComfyUI (no comfy_api on the path) the package imports and registers nothing."""
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('ltxv097', {str(REPO_ROOT / '__init__.py')!r}, "
        f"submodule_search_locations=[{str(REPO_ROOT)!r}])\n"
        "module = importlib.util.module_from_spec(spec); sys.modules['ltxv097'] = module\n"
        "spec.loader.exec_module(module)\n"
        "assert module.WEB_DIRECTORY == './js'\n"
        "assert not hasattr(module, 'comfy_entrypoint') and not hasattr(module, 'NODE_CLASS_MAPPINGS')\n"
        "assert 'comfy' not in sys.modules and 'torch' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd="/", env=host_env(), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr


def test_entrypoint_registers_v3_nodes_only():
    """In-process: V3 registration only (no NODE_CLASS_MAPPINGS), unique prefixed ids, valid schemas."""
    pack = load_pack()
    assert not hasattr(pack, "NODE_CLASS_MAPPINGS") and pack.WEB_DIRECTORY == "./js"
    node_classes = pack_nodes(pack)
    ids = [cls.GET_SCHEMA().node_id for cls in node_classes]
    assert len(ids) == len(set(ids)) and set(LOADERS) <= set(ids)
    for cls in node_classes:
        schema = cls.GET_SCHEMA()
        schema.validate()
        assert schema.node_id.startswith("LTX097") and schema.description
        assert all(i.tooltip for i in schema.inputs), schema.node_id


def test_quick_test_for_ci(tmp_path):
    """`main.py --quick-test-for-ci` with the same kind of yaml imports the pack and exits 0."""
    workdir = prepare_workdir(tmp_path)
    result = run_quick_test(workdir)
    assert result.returncode == 0, f"exit code {result.returncode}; output tail:\n{result.stdout[-4000:]}"
    assert not pack_failures(result.stdout), "\n".join(pack_failures(result.stdout))
    assert pack_loaded(result.stdout), f"the pack was not loaded; output tail:\n{result.stdout[-4000:]}"


@pytest.mark.parametrize("line, failed", [
    ("   0.1 seconds (IMPORT FAILED): /tmp/x/custom_nodes/ltxv097", True),
    ("Cannot import /tmp/x/custom_nodes/ltxv097 module for custom nodes: boom", True),
    ("   0.1 seconds: /tmp/x/custom_nodes/ltxv097", False),
    ("   0.0 seconds (IMPORT FAILED): /tmp/x/custom_nodes/other_pack", False),
])
def test_failure_patterns(line, failed):
    """The log checks above do recognise ComfyUI's failure lines (so a broken pack cannot pass unnoticed)."""
    assert bool(pack_failures(line)) is failed
    assert pack_loaded(line) is (not failed and PACK_NAME in line)
