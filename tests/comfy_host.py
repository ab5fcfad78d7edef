"""The pinned ComfyUI host for tests: in-process imports, and the real server as a subprocess.

In-process (schema checks, calling a node's `execute`)::

    from comfy_host import import_host, load_pack
    host = import_host()             # ComfyUI root first on sys.path, args.cpu = True, folder_paths etc. imported
    pack = load_pack()               # this repo imported as the package `ltxv097`, the way ComfyUI imports it
    pack.nodes.loaders.LTX097ModelLoader.execute(...)

The real server (one per test session; a test module opts in with ``pytest_plugins = ["comfy_host"]`` and asks
for the fixture ``comfy_server``)::

    pytest_plugins = ["comfy_host"]

    def test_something(comfy_server):
        info = comfy_server.object_info()
        prompt_id = comfy_server.post_prompt({...api format...})
        entry = comfy_server.wait(prompt_id, timeout=120)

The session server is started with the standard tiny models already in its model folders (`STANDARD_MODELS`,
names in `comfy_server.models`); a test may add more files later with `comfy_server.add_model(...)` (ComfyUI
re-lists a folder when its mtime changes). `ComfyServer` can also be used directly as a context manager for a
private server.

Test modules both import helpers from here and name this module in `pytest_plugins` (so that the session
fixtures have a single definition); it has no asserts for pytest to rewrite: PYTEST_DONT_REWRITE.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import types
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Callable, Iterable, Optional

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PACK_NAME = "ltxv097"
"""Folder name the pack is loaded under in the test host (differs from the repo's own folder name on purpose)."""

MODEL_FOLDERS = {
    "checkpoints": "checkpoints",
    "diffusion_models": "diffusion_models",
    "latent_upscale_models": "latent_upscale_models",
    "upscale_models": "upscale_models",
    "loras": "loras",
    "text_encoders": "text_encoders",
}
"""`extra_model_paths.yaml` keys (ComfyUI folder names) → sub-folders of `<workdir>/models`."""

STARTUP_TIMEOUT = 120.0


# ----------------------------------------------------------------------------------------------------------------
# In-process host


def comfy_root() -> Path:
    """The ComfyUI root: `$COMFYUI_DIR` if set, else `<repo>/.comfyui`. Missing host = error, never a skip."""
    env = os.environ.get("COMFYUI_DIR")
    root = Path(env).expanduser() if env else REPO_ROOT / ".comfyui"
    root = root.resolve()
    if not (root / "main.py").is_file() or not (root / "comfy").is_dir():
        raise RuntimeError(f"no ComfyUI host at {root} (main.py and comfy/ expected); run scripts/setup_env.sh "
                           f"or point COMFYUI_DIR at a ComfyUI 0.3.75 root")
    return root


def _is_under(path: Optional[str], root: Path) -> bool:
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
    """
    import torch
    from safetensors.torch import save_file

    import tiny

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
    return names


# ----------------------------------------------------------------------------------------------------------------
# The real server


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare_workdir(workdir: Path, pack_dir: Path = REPO_ROOT, pack_name: str = PACK_NAME) -> Path:
    """Create models/, custom_nodes/<pack_name> → pack_dir, input/, output/, temp/, user/ and the yaml."""
    workdir = Path(workdir).resolve()
    for sub in ("input", "output", "temp", "user", "custom_nodes"):
        (workdir / sub).mkdir(parents=True, exist_ok=True)
    for sub in MODEL_FOLDERS.values():
        (workdir / "models" / sub).mkdir(parents=True, exist_ok=True)
    link = workdir / "custom_nodes" / pack_name
    if not link.exists():
        link.symlink_to(Path(pack_dir).resolve(), target_is_directory=True)
    lines = ["ltxv097_tests:", f"    base_path: {workdir / 'models'}"]
    lines += [f"    {key}: {sub}" for key, sub in MODEL_FOLDERS.items()]
    lines.append(f"    custom_nodes: {workdir / 'custom_nodes'}")
    (workdir / "extra_model_paths.yaml").write_text("\n".join(lines) + "\n")
    return workdir


def host_command(workdir: Path, *extra: str, port: Optional[int] = None, cpu: bool = True) -> list[str]:
    """`python main.py ...` for a workdir made by `prepare_workdir` (run it with cwd=comfy_root()); `cpu=False`
    lets ComfyUI use a GPU (the demo with real weights)."""
    workdir = Path(workdir)
    cmd = [sys.executable, "main.py", *(["--cpu"] if cpu else []), "--disable-auto-launch",
           "--output-directory", str(workdir / "output"), "--temp-directory", str(workdir / "temp"),
           "--input-directory", str(workdir / "input"), "--user-directory", str(workdir / "user"),
           "--database-url", f"sqlite:///{workdir / 'user' / 'comfyui.db'}",
           "--extra-model-paths-config", str(workdir / "extra_model_paths.yaml")]
    if port is not None:
        cmd += ["--listen", "127.0.0.1", "--port", str(port)]
    return cmd + list(extra)


def host_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({"PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                "DO_NOT_TRACK": "1"})
    env.pop("PYTHONPATH", None)
    return env


def run_quick_test(workdir: Path, timeout: float = STARTUP_TIMEOUT) -> subprocess.CompletedProcess:
    """`main.py --quick-test-for-ci` with the workdir's yaml: imports every node pack, then exits."""
    return subprocess.run(host_command(workdir, "--quick-test-for-ci"), cwd=comfy_root(), env=host_env(),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGTERM the server if pytest itself is killed (no orphan hosts)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except OSError:
            pass


class HostError(RuntimeError):
    """The server refused a prompt or a prompt failed; `.detail` holds the server's JSON answer."""

    def __init__(self, message: str, detail=None):
        super().__init__(message)
        self.detail = detail


class ComfyServer:
    """The real ComfyUI host (`main.py --cpu`) in a subprocess, with this repo loaded as the `ltxv097` pack.

    Use as a context manager; models must be in `<workdir>/models/<folder>` before start (or call `add_model`).
    """

    def __init__(self, workdir: Path, *, extra_args: Iterable[str] = (),
                 startup_timeout: float = STARTUP_TIMEOUT, pack_dir: Path = REPO_ROOT, cpu: bool = True):
        self.workdir = prepare_workdir(workdir, pack_dir)
        self.models_dir = self.workdir / "models"
        self.output_dir = self.workdir / "output"
        self.log_path = self.workdir / "comfyui.log"
        self.extra_args = list(extra_args)
        self.cpu = cpu
        self.startup_timeout = startup_timeout
        self.client_id = uuid.uuid4().hex
        self.process: Optional[subprocess.Popen] = None
        self.port: Optional[int] = None
        self.url = ""
        self.models: dict[str, str] = {}
        self.startup_seconds: Optional[float] = None

    # lifecycle ---------------------------------------------------------------------------------------------

    def __enter__(self) -> "ComfyServer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        last_error = None
        for _attempt in range(2):  # a free port can be taken between picking and binding it
            self.port = free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            started = time.monotonic()
            with open(self.log_path, "ab") as log:
                command = host_command(self.workdir, *self.extra_args, port=self.port, cpu=self.cpu)
                log.write(f"\n===== start {' '.join(command)}\n".encode())
                log.flush()
                self.process = subprocess.Popen(
                    command, cwd=comfy_root(),
                    env=host_env(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    preexec_fn=_die_with_parent)
            try:
                self._wait_ready()
                self.startup_seconds = time.monotonic() - started
                return
            except RuntimeError as error:
                last_error = error
                self.stop()
                if "address already in use" not in self.log_text().lower():
                    break
        raise last_error

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with code {self.process.returncode} during start-up; "
                                   f"log tail:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/object_info", timeout=5) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.25)
        raise RuntimeError(f"ComfyUI did not answer /object_info within {self.startup_timeout:.0f} s; log tail:\n"
                           f"{self.log_tail()}")

    def stop(self) -> None:
        """Terminate the server by its own PID (then kill it if it does not exit)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # logs ----------------------------------------------------------------------------------------------------

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, chars: int = 6000) -> str:
        return self.log_text()[-chars:]

    # models --------------------------------------------------------------------------------------------------

    def model_path(self, folder: str, name: str) -> Path:
        if folder not in MODEL_FOLDERS:
            raise KeyError(f"unknown model folder {folder!r}; one of {sorted(MODEL_FOLDERS)}")
        return self.models_dir / MODEL_FOLDERS[folder] / name

    def add_model(self, folder: str, name: str, writer: Callable[[Path], object]) -> Path:
        """Write a model file with `writer(path)`; the running host re-lists the folder (its mtime changes)."""
        path = self.model_path(folder, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        writer(path)
        return path

    # HTTP ----------------------------------------------------------------------------------------------------

    def _request(self, method: str, route: str, payload=None, timeout: float = 30.0):
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(self.url + route, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                body = response.read()
                return response.status, (json.loads(body) if body else None)
        except urllib.error.HTTPError as error:
            body = error.read()
            try:
                return error.code, json.loads(body)
            except ValueError:
                return error.code, body.decode(errors="replace")

    def get_json(self, route: str, timeout: float = 30.0):
        status, body = self._request("GET", route, timeout=timeout)
        if status != 200:
            raise HostError(f"GET {route} answered HTTP {status}: {body}", body)
        return body

    def object_info(self, node_class: Optional[str] = None) -> dict:
        if node_class is None:
            return self.get_json("/object_info")
        return self.get_json("/object_info/" + urllib.parse.quote(node_class))[node_class]

    def post_prompt(self, api_prompt: dict) -> str:
        """Queue an API-format prompt; returns its prompt_id. A refused prompt raises HostError (with node_errors)."""
        status, body = self._request("POST", "/prompt", {"prompt": api_prompt, "client_id": self.client_id})
        if status != 200:
            raise HostError(f"POST /prompt answered HTTP {status}: {json.dumps(body, indent=1)[:4000]}", body)
        return body["prompt_id"]

    def history(self, prompt_id: str) -> Optional[dict]:
        return self.get_json("/history/" + urllib.parse.quote(prompt_id)).get(prompt_id)

    def wait(self, prompt_id: str, timeout: float = 120.0, *, raise_on_error: bool = False) -> dict:
        """Poll /history until the prompt finished; returns its history entry (`status`, `outputs`, ...)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            entry = self.history(prompt_id)
            if entry is not None and entry.get("status", {}).get("completed") is not None:
                if raise_on_error and entry["status"].get("status_str") != "success":
                    raise HostError(f"prompt {prompt_id} failed: {self.execution_error(entry)}", entry)
                return entry
            if not self.running:
                raise RuntimeError(f"ComfyUI died while running prompt {prompt_id}; log tail:\n{self.log_tail()}")
            time.sleep(0.1)
        raise TimeoutError(f"prompt {prompt_id} did not finish in {timeout:.0f} s; log tail:\n{self.log_tail()}")

    @staticmethod
    def execution_error(entry: dict) -> Optional[dict]:
        """The `execution_error` message of a history entry (node_id, node_type, exception_message, ...)."""
        for name, data in entry.get("status", {}).get("messages", []):
            if name == "execution_error":
                return data
        return None

    def interrupt(self) -> None:
        self._request("POST", "/interrupt", {})

    def view(self, filename: str, subfolder: str = "", folder_type: str = "output") -> bytes:
        query = urllib.parse.urlencode({"filename": filename, "subfolder": subfolder, "type": folder_type})
        with urllib.request.urlopen(f"{self.url}/view?{query}", timeout=30) as response:
            return response.read()


# ----------------------------------------------------------------------------------------------------------------
# pytest fixtures (a module opts in with `pytest_plugins = ["comfy_host"]`, so one FixtureDef serves the session)


@pytest.fixture(scope="session")
def comfy_server(tmp_path_factory) -> ComfyServer:
    """One real ComfyUI host for the whole test session, with `write_standard_models` in its model folders."""
    workdir = tmp_path_factory.mktemp("comfy_host")
    server = ComfyServer(workdir)
    server.models = write_standard_models(server.models_dir)
    # The tiny T5 and the test-only node that loads it (core CLIPLoader only knows full-size T5-XXL files);
    # custom nodes must be in place before the server starts.
    import tiny_t5

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
