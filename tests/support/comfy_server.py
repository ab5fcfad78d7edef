"""The pinned ComfyUI host as a real server process: its folders, its command line, and `ComfyServer`.

Used by the test fixtures in `comfy_host.py` and by the dev scripts (`make demo`, `scripts/make_workflows.py`)::

    with ComfyServer(workdir) as server:          # models/, custom_nodes/<pack> → this repo, the yaml, a free port
        prompt_id = server.post_prompt({...api format...})
        entry = server.wait(prompt_id, timeout=120)

It has no asserts for pytest to rewrite: PYTEST_DONT_REWRITE.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
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


def comfy_root() -> Path:
    """The ComfyUI root: `$COMFYUI_DIR` if set, else `<repo>/.comfyui`. Missing host = error, never a skip."""
    env = os.environ.get("COMFYUI_DIR")
    root = Path(env).expanduser() if env else REPO_ROOT / ".comfyui"
    root = root.resolve()
    if not (root / "main.py").is_file() or not (root / "comfy").is_dir():
        raise RuntimeError(f"no ComfyUI host at {root} (main.py and comfy/ expected); run scripts/setup_env.sh "
                           f"or point COMFYUI_DIR at a ComfyUI 0.3.75 root")
    return root


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare_workdir(workdir: Path, pack_dir: Path | None = REPO_ROOT, pack_name: str = PACK_NAME) -> Path:
    """Create models/, custom_nodes/<pack_name> → pack_dir (none with `pack_dir=None`: a host without the pack),
    input/, output/, temp/, user/ and the yaml."""
    workdir = Path(workdir).resolve()
    for sub in ("input", "output", "temp", "user", "custom_nodes"):
        (workdir / sub).mkdir(parents=True, exist_ok=True)
    for sub in MODEL_FOLDERS.values():
        (workdir / "models" / sub).mkdir(parents=True, exist_ok=True)
    link = workdir / "custom_nodes" / pack_name
    if pack_dir is not None and not link.exists():
        link.symlink_to(Path(pack_dir).resolve(), target_is_directory=True)
    lines = ["ltxv097_tests:", f"    base_path: {workdir / 'models'}"]
    lines += [f"    {key}: {sub}" for key, sub in MODEL_FOLDERS.items()]
    lines.append(f"    custom_nodes: {workdir / 'custom_nodes'}")
    (workdir / "extra_model_paths.yaml").write_text("\n".join(lines) + "\n")
    return workdir


def host_command(workdir: Path, *extra: str, port: int | None = None, cpu: bool = True) -> list[str]:
    """`python main.py ...` for a workdir made by `prepare_workdir` (run it with cwd=comfy_root()); `cpu=False`
    lets ComfyUI use a GPU (the demo with real weights).

    The workdir is the host's base directory, so its default model folders (where LoRA downloads go), inputs,
    outputs and user files are the workdir's own: a test server never writes into the shared host tree.
    """
    workdir = Path(workdir)
    cmd = [sys.executable, "main.py", *(["--cpu"] if cpu else []), "--disable-auto-launch",
           "--base-directory", str(workdir), "--user-directory", str(workdir / "user"),
           "--database-url", f"sqlite:///{workdir / 'user' / 'comfyui.db'}",
           "--extra-model-paths-config", str(workdir / "extra_model_paths.yaml")]
    if port is not None:
        cmd += ["--listen", "127.0.0.1", "--port", str(port)]
    return cmd + list(extra)


def host_env(allow_hosts: Iterable[str] | None = None) -> dict[str, str]:
    """The server's environment. With `allow_hosts` (`host:port` entries) the URL settings are exactly these: the
    pack fetches from these local addresses and refuses every other non-public one (LTX097_URL_ALLOW_HOSTS, no
    LTX097_ALLOW_PRIVATE_URLS); without, they are inherited (the demo)."""
    env = dict(os.environ)
    env.update({"PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                "DO_NOT_TRACK": "1"})
    env.pop("PYTHONPATH", None)
    if allow_hosts is not None:
        env.pop("LTX097_ALLOW_PRIVATE_URLS", None)
        env["LTX097_URL_ALLOW_HOSTS"] = ",".join(allow_hosts)
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
    `allow_hosts` (`127.0.0.1:<port>` entries) are the only local addresses the pack may fetch from (`host_env`).
    """

    def __init__(self, workdir: Path, *, extra_args: Iterable[str] = (),
                 startup_timeout: float = STARTUP_TIMEOUT, pack_dir: Path | None = REPO_ROOT, cpu: bool = True,
                 pack_name: str = PACK_NAME, allow_hosts: Iterable[str] | None = None):
        self.workdir = prepare_workdir(workdir, pack_dir, pack_name)
        self.models_dir = self.workdir / "models"
        self.output_dir = self.workdir / "output"
        self.log_path = self.workdir / "comfyui.log"
        self.extra_args = list(extra_args)
        self.cpu = cpu
        self.startup_timeout = startup_timeout
        self.allow_hosts = None if allow_hosts is None else list(allow_hosts)
        self.client_id = uuid.uuid4().hex
        self.process: subprocess.Popen | None = None
        self.port: int | None = None
        self.url = ""
        self.models: dict[str, str] = {}
        self.startup_seconds: float | None = None
        self.api_key: str | None = None
        """Sent as `Authorization: Key <api_key>` with every request of this class (a server with api_keys)."""
        self.scheme, self.ssl_context = "http", None
        if "--tls-certfile" in self.extra_args:  # ComfyUI's TLS options: trust the test's own certificate
            certificate = self.extra_args[self.extra_args.index("--tls-certfile") + 1]
            self.scheme, self.ssl_context = "https", ssl.create_default_context(cafile=certificate)

    # lifecycle ---------------------------------------------------------------------------------------------

    def __enter__(self) -> ComfyServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        last_error = None
        for _attempt in range(2):  # a free port can be taken between picking and binding it
            self.port = free_port()
            self.url = f"{self.scheme}://127.0.0.1:{self.port}"
            started = time.monotonic()
            with open(self.log_path, "ab") as log:
                command = host_command(self.workdir, *self.extra_args, port=self.port, cpu=self.cpu)
                log.write(f"\n===== start {' '.join(command)}\n".encode())
                log.flush()
                self.process = subprocess.Popen(
                    command, cwd=comfy_root(),
                    env=host_env(self.allow_hosts), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
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
                ready = urllib.request.Request(self.url + "/object_info", headers=self.key_header())
                with urllib.request.urlopen(ready, timeout=5, context=self.ssl_context) as response:
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

    def key_header(self) -> dict[str, str]:
        return {"Authorization": f"Key {self.api_key}"} if self.api_key else {}

    def _request(self, method: str, route: str, payload=None, timeout: float = 30.0):
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(self.url + route, data=data, method=method,
                                         headers={"Content-Type": "application/json", **self.key_header()})
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=self.ssl_context) as response:
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

    def object_info(self, node_class: str | None = None) -> dict:
        if node_class is None:
            return self.get_json("/object_info")
        return self.get_json("/object_info/" + urllib.parse.quote(node_class))[node_class]

    def post_prompt(self, api_prompt: dict) -> str:
        """Queue an API-format prompt; returns its prompt_id. A refused prompt raises HostError (with node_errors)."""
        status, body = self._request("POST", "/prompt", {"prompt": api_prompt, "client_id": self.client_id})
        if status != 200:
            raise HostError(f"POST /prompt answered HTTP {status}: {json.dumps(body, indent=1)[:4000]}", body)
        return body["prompt_id"]

    def history(self, prompt_id: str) -> dict | None:
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
    def execution_error(entry: dict) -> dict | None:
        """The `execution_error` message of a history entry (node_id, node_type, exception_message, ...)."""
        for name, data in entry.get("status", {}).get("messages", []):
            if name == "execution_error":
                return data
        return None

    def interrupt(self) -> None:
        self._request("POST", "/interrupt", {})

    def view(self, filename: str, subfolder: str = "", folder_type: str = "output") -> bytes:
        query = urllib.parse.urlencode({"filename": filename, "subfolder": subfolder, "type": folder_type})
        with urllib.request.urlopen(urllib.request.Request(f"{self.url}/view?{query}", headers=self.key_header()),
                                    timeout=30, context=self.ssl_context) as response:
            return response.read()


