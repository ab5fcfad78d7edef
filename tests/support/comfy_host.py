"""The pinned ComfyUI host for tests: in-process imports, and the real server as a subprocess.

In-process (schema checks, calling a node's `execute`)::

    from support.comfy_host import import_host, load_pack
    host = import_host()             # ComfyUI root first on sys.path, args.cpu = True, folder_paths etc. imported
    pack = load_pack()               # this repo imported as the package `ltxv097`, the way ComfyUI imports it
    pack.nodes.loaders.LTX097ModelLoader.execute(...)

The real server (one per test session; a test module opts in with ``pytest_plugins = ["support.comfy_host"]`` and asks
for the fixture ``comfy_server``)::

    pytest_plugins = ["support.comfy_host"]

    def test_something(comfy_server):
        info = comfy_server.object_info()
        prompt_id = comfy_server.post_prompt({...api format...})
        entry = comfy_server.wait(prompt_id, timeout=120)

The session server is started with the standard tiny models already in its model folders (`STANDARD_MODELS`,
names in `comfy_server.models`). It may fetch URLs from two local ports only: the session's `host_web` server
(`local_web.LocalWeb`, routes added by tests) and `comfy_server.closed_url`, an allowed port where nothing listens;
every other local address, ComfyUI's own port included, is refused as it would be in production. A test may add
more model files later with `comfy_server.add_model(...)` (ComfyUI re-lists a folder when its mtime changes).
`ComfyServer` (in `comfy_server.py`) also works directly as a context manager for a private server.

Test modules both import helpers from here and name this module in `pytest_plugins` (so that the session
fixtures have a single definition); it has no asserts for pytest to rewrite: PYTEST_DONT_REWRITE.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import types
from pathlib import Path

import pytest

from support.comfy_server import MODEL_FOLDERS, PACK_NAME, REPO_ROOT, ComfyServer, comfy_root, free_port

__all__ = ["MODEL_FOLDERS", "PACK_NAME", "REPO_ROOT", "ComfyServer", "comfy_root", "import_host", "load_pack",
           "pack_nodes", "write_standard_models", "host_web", "comfy_server", "comfy_host", "ltx_pack"]

# ----------------------------------------------------------------------------------------------------------------
# In-process host


def _is_under(path: str | None, root: Path) -> bool:
    if not path:
        return False
    try:
        Path(path).resolve().relative_to(root)
        return True
    except ValueError:
        return False


def import_host() -> types.SimpleNamespace:
    """Make ComfyUI importable in this process in CPU mode and import its core modules.

    Puts the ComfyUI root at sys.path[0] (its top-level `nodes` must win over this repo's `nodes/` folder),
    sets `comfy.cli_args.args.cpu = True` before anything imports `comfy.model_management`, and returns a
    namespace with `root`, `folder_paths`, `model_management`, `model_patcher`, `ops`, `io` (comfy_api.latest.io)
    and `ComfyExtension`. ComfyUI's own nodes.py is not imported (a second); `import nodes` afterwards gets it.
    """
    root = comfy_root()
    root_str = str(root)
    if sys.path[:1] != [root_str]:
        while root_str in sys.path:
            sys.path.remove(root_str)
        sys.path.insert(0, root_str)
    # A `nodes` imported earlier from this repo (repo root on sys.path) would shadow ComfyUI's nodes.py.
    for name in [m for m in sys.modules if m == "nodes" or m.startswith("nodes.")]:
        if not _is_under(getattr(sys.modules[name], "__file__", None), root):
            del sys.modules[name]

    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    import comfy.model_management
    import comfy.model_patcher
    import comfy.ops
    import folder_paths
    from comfy_api.latest import ComfyExtension, io

    for module in (comfy.model_management, folder_paths):
        if not _is_under(module.__file__, root):
            raise RuntimeError(f"{module.__name__} was imported from {module.__file__}, not from {root}")
    return types.SimpleNamespace(root=root, folder_paths=folder_paths, model_management=comfy.model_management,
                                 model_patcher=comfy.model_patcher, ops=comfy.ops, io=io,
                                 ComfyExtension=ComfyExtension)


def load_pack(name: str = PACK_NAME) -> types.ModuleType:
    """Import this repo as a package named `name` (ComfyUI imports a pack's folder by path the same way)."""
    import_host()
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "__init__.py",
                                                  submodule_search_locations=[str(REPO_ROOT)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def pack_nodes(pack: types.ModuleType) -> list:
    """The node classes the pack registers through its `comfy_entrypoint`."""
    import asyncio
    import inspect

    extension = pack.comfy_entrypoint()
    if inspect.isawaitable(extension):
        extension = asyncio.run(extension)
    return list(asyncio.run(extension.get_node_list()))


# ----------------------------------------------------------------------------------------------------------------
# Tiny models for the host


def write_standard_models(models_dir: Path) -> dict[str, str]:
    """Write the tiny models every server test can rely on; returns {role: file name in its folder}.

    - `checkpoint`  (checkpoints/): official single-file layout, transformer + VAE, fp32.
    - `diffusion_model` (diffusion_models/): the same transformer + VAE stored in bf16.
    - `upsampler` (latent_upscale_models/): a tiny spatial latent upsampler.
    - `not_ltx` (checkpoints/): a safetensors file that is not an LTX-Video checkpoint.
    - `safety_checker` (safety_checker/nsfw_image_detection/): a tiny ViT checker that flags nothing, in the
      folder the one-node Text to Video uses when its checker (on by default) has no model connected.
    """
    import torch
    from safetensors.torch import save_file

    from support import tiny

    tcfg, vcfg, ucfg = tiny.transformer_config(), tiny.vae_config(), tiny.upsampler_config()
    transformer, vae = tiny.reference_transformer(tcfg), tiny.reference_vae(vcfg)
    names = {"checkpoint": "ltxv097_tiny.safetensors", "diffusion_model": "ltxv097_tiny_bf16.safetensors",
             "upsampler": "ltxv097_tiny_spatial_upscaler.safetensors", "not_ltx": "not_ltx.safetensors"}
    tiny.save_single_file(models_dir / "checkpoints" / names["checkpoint"], transformer=transformer,
                          transformer_config_=tcfg, vae=vae, vae_config_=vcfg)
    tiny.save_single_file(models_dir / "diffusion_models" / names["diffusion_model"],
                          transformer=transformer.to(torch.bfloat16), transformer_config_=tcfg,
                          vae=vae.to(torch.bfloat16), vae_config_=vcfg)
    tiny.save_upsampler(models_dir / "latent_upscale_models" / names["upsampler"], tiny.reference_upsampler(ucfg),
                        ucfg)
    save_file({"conv.weight": torch.zeros(4, 4), "conv.bias": torch.zeros(4)},
              str(models_dir / "checkpoints" / names["not_ltx"]), metadata={"format": "pt"})
    from support import tiny_assistants

    names["safety_checker"] = tiny_assistants.write_classifier(
        models_dir / "safety_checker" / tiny_assistants.CHECKER_SAFE).name
    return names


# ----------------------------------------------------------------------------------------------------------------
# pytest fixtures (a module opts in with `pytest_plugins = ["support.comfy_host"]`, so one FixtureDef serves the
# session)


@pytest.fixture(scope="session")
def host_web():
    """A local web server for the session server's downloads (the only local address it may fetch from)."""
    from support.local_web import LocalWeb

    web = LocalWeb()
    yield web
    web.close()


@pytest.fixture(scope="session")
def comfy_server(tmp_path_factory, host_web) -> ComfyServer:
    """One real ComfyUI host for the whole test session, with `write_standard_models` in its model folders."""
    workdir = tmp_path_factory.mktemp("comfy_host")
    closed_port = free_port()
    server = ComfyServer(workdir, allow_hosts=[f"127.0.0.1:{host_web.port}", f"127.0.0.1:{closed_port}"])
    server.closed_url = f"http://127.0.0.1:{closed_port}"
    server.models = write_standard_models(server.models_dir)
    # The tiny T5 and the test-only node that loads it (core CLIPLoader only knows full-size T5-XXL files);
    # custom nodes must be in place before the server starts.
    from support import tiny_t5

    tiny_t5.install_test_nodes(server.workdir / "custom_nodes")
    server.models["t5"] = tiny_t5.write_tiny_t5(server.model_path("text_encoders", tiny_t5.FILE_NAME)).name
    with server:
        yield server
    if os.environ.get("LTXV097_KEEP_HOST_LOG"):
        shutil.copy(server.log_path, os.environ["LTXV097_KEEP_HOST_LOG"])


@pytest.fixture(scope="session")
def comfy_host():
    """ComfyUI imported in-process (CPU mode); see `import_host`."""
    return import_host()


@pytest.fixture(scope="session")
def ltx_pack(comfy_host):
    """This repo imported as the ComfyUI pack `ltxv097` in-process; see `load_pack`."""
    return load_pack()
