"""Test helpers for the fleet mode: ComfyUI servers sharing one throwaway PostgreSQL and one storage folder,
with identical tiny models (copied from the first), and plain HTTP calls to any of them.

PYTEST_DONT_REWRITE
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg

from . import service_kit, tiny_t5
from .comfy_server import REPO_ROOT, ComfyServer, host_env

QUEUE = f"/queue/{service_kit.APP_ID}"
FAST = {**service_kit.SMALL, "number_of_steps": 1}


def fleet_server(workdir: Path, database_url: str | None, storage: Path, *, tls, models_from=None,
                 **changes) -> ComfyServer:
    """A (not started) fleet member; `models_from` is a server whose tiny models it copies (same weights)."""
    settings = {"database_url": database_url, "storage_dir": str(storage), **changes}
    if models_from is None:
        return service_kit.api_server(workdir, tls=tls, config_changes=settings)
    server = service_kit.api_server(workdir, tls=tls, config_changes=settings, models=models_from.models)
    shutil.copytree(models_from.models_dir, server.models_dir, dirs_exist_ok=True)
    tiny_t5.install_test_nodes(server.workdir / "custom_nodes")
    return server


def call(server: ComfyServer, route: str, body=None, method: str = "GET", headers: dict | None = None, *,
         key: bool = True):
    """(HTTP status, JSON body) of one API call, with the server's API key unless `key` is False."""
    data = None if body is None else json.dumps(body).encode()
    sent = {"Content-Type": "application/json", **(server.key_header() if key else {}), **(headers or {})}
    request = urllib.request.Request(server.url + route, data=data, method=method, headers=sent)
    try:
        with urllib.request.urlopen(request, timeout=60, context=server.ssl_context) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def status(server: ComfyServer, request_id: str, logs: bool = False) -> dict:
    answer = call(server, f"{QUEUE}/requests/{request_id}/status" + ("?logs=1" if logs else ""))
    assert answer[0] == 200, answer
    return answer[1]


def wait_until(server: ComfyServer, request_id: str, states: tuple[str, ...], timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = status(server, request_id)
        if seen["status"] in states:
            return seen
        time.sleep(0.1)
    raise TimeoutError(f"request {request_id} never reached {states}: {seen}; log tail:\n{server.log_tail()}")


def fetch(server: ComfyServer, url: str) -> bytes:
    """A file URL the API handed out (signed when keys are set: it opens without a key)."""
    with urllib.request.urlopen(url, timeout=30, context=server.ssl_context) as response:
        return response.read()


def rows(database_url: str, sql: str, *parameters) -> list[tuple]:
    with psycopg.connect(database_url) as connection:
        return connection.execute(sql, parameters).fetchall()


def worker_of(database_url: str, request_id: str) -> tuple[str, int]:
    """(worker name, attempts) of a request; the name is `host:pid:suffix`."""
    [(worker, attempts)] = rows(database_url, "SELECT worker, attempts FROM ltxv097_jobs WHERE request_id = %s",
                                request_id)
    return worker, attempts


def runs_on(server: ComfyServer, worker: str | None) -> bool:
    return worker is not None and server.process is not None and worker.split(":")[1] == str(server.process.pid)


def in_history(server: ComfyServer, request_id: str) -> str | None:
    """ComfyUI's own outcome of the request on this server (`success` / `error`), None when it never ran there."""
    entry = server.history(request_id)
    return None if entry is None else entry["status"].get("status_str")


def decoded_frames(data: bytes, workdir: Path) -> bytes:
    """The pixels of every frame of an mp4 (the container's metadata names the request, the pixels do not)."""
    import av

    path = workdir / "frames.mp4"
    path.write_bytes(data)
    with av.open(str(path)) as container:
        return b"".join(frame.to_ndarray(format="rgb24").tobytes() for frame in container.decode(video=0))


def start_python_client(server: ComfyServer, certificate: Path, scenario: str, arguments: dict) -> subprocess.Popen:
    """`fal-client` (tests/api_clients/py_client.py) against one instance, running in the background."""
    env = {**host_env(), "FAL_KEY": server.api_key or "any", "FAL_RUN_HOST": f"127.0.0.1:{server.port}",
           "FAL_QUEUE_RUN_HOST": f"127.0.0.1:{server.port}/queue", "SSL_CERT_FILE": str(certificate)}
    script = Path(__file__).parent / "api_clients" / "py_client.py"
    return subprocess.Popen([sys.executable, str(script), scenario, json.dumps(arguments)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def js_clients(folder: Path) -> Path:
    """A folder with `@fal-ai/client` installed and the test scripts (tests/api_clients/*.mjs) beside it."""
    clients = REPO_ROOT / ".api_clients"
    assert (clients / "node_modules" / "@fal-ai" / "client").is_dir(), \
        "@fal-ai/client is not installed: run scripts/setup_api_clients.sh (make test does)"
    shutil.copytree(clients, folder / "clients", symlinks=True, ignore=shutil.ignore_patterns("*.mjs"))
    for script in (Path(__file__).parent / "api_clients").glob("*.mjs"):
        shutil.copy(script, folder / "clients" / script.name)
    return folder / "clients"


def start_js(clients: Path, script: str, server: ComfyServer, certificate: Path, **env) -> subprocess.Popen:
    """`node <script>` of `js_clients` against one instance; `env` adds LTXV097_API_* variables."""
    env = {**os.environ, "LTXV097_API_URL": server.url, "FAL_KEY": server.api_key or "any",
           "NODE_EXTRA_CA_CERTS": str(certificate), **{f"LTXV097_API_{name.upper()}": value
                                                       for name, value in env.items()}}
    return subprocess.Popen(["node", str(clients / script)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def client_result(process: subprocess.Popen, timeout: float = 300) -> tuple[dict, str]:
    """(the RESULT line's JSON, everything the client printed)."""
    stdout, stderr = process.communicate(timeout=timeout)
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    if process.returncode != 0 or not lines:
        raise AssertionError(f"client failed:\n{stdout}\n{stderr}")
    return json.loads(lines[-1][len("RESULT "):]), stdout


def start_member(server: ComfyServer, timeout: float = 120) -> None:
    """Start a fleet member and wait until its API is connected to the database (it answers 503 until then)."""
    server.start()
    deadline = time.monotonic() + timeout
    while (answer := call(server, f"{QUEUE}/requests/00000000-0000-4000-8000-000000000000/status"))[0] == 503:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the API never connected: {answer}; log tail:\n{server.log_tail()}")
        time.sleep(0.2)
