"""The hosted service's API on one real ComfyUI 0.3.75 per test session (TLS, tiny models), and what drives it: its
two official clients, plain HTTP calls, checks of a result.

A test module opts in with ``pytest_plugins = ["support.service_server"]`` and asks for ``api`` (the server),
``api_tls`` (its certificate, which the clients trust) and ``api_web`` (a local web server for image / video URLs and
webhooks, the only private host the API may reach)::

    pytest_plugins = ["support.service_server"]

    def test_something(api, api_tls):
        status, body = post(api, QUEUE, {"prompt": "a fox", **FAST})

Every test module of the session (of each xdist worker) shares this one server, so a test must not count on an
empty queue without waiting for one (`wait_idle`), finds its own requests in the history by their ids, and puts
back any setting it changes. Test modules import helpers from here too, so it has no asserts for pytest to
rewrite: PYTEST_DONT_REWRITE.
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

import pytest

from support import service_kit
from support.comfy_server import REPO_ROOT, ComfyServer, host_env
from support.local_web import LocalWeb

__all__ = ["API_CLIENTS", "CLIENTS_DIR", "CLIENT_TIMEOUT", "FAST", "MAX_IMAGE_BYTES", "QUEUE", "SLOW", "check_output",
           "client_result", "download", "javascript_client", "post", "python_client", "wait_idle"]

CLIENTS_DIR = REPO_ROOT / ".api_clients"
API_CLIENTS = Path(__file__).parent / "api_clients"
"""The client scenarios: `apps.mjs` / `subscribe.mjs` (`@fal-ai/client`) and `py_client.py` (`fal-client`)."""
QUEUE = f"/queue/{service_kit.APP_ID}"
FAST = {**service_kit.SMALL, "number_of_steps": 1}
SLOW = {**service_kit.SMALL, "resolution": "720p", "aspect_ratio": "16:9", "number_of_frames": 97,
        "number_of_steps": 100}
"""A request that runs far longer than a 2 s start timeout (each test cancels it once it has served)."""
CLIENT_TIMEOUT = 240
MAX_IMAGE_BYTES = 200_000


@pytest.fixture(scope="session")
def api_tls(tmp_path_factory) -> tuple[Path, Path]:
    return service_kit.make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def api_web():
    """A local web server for image / video URLs and the webhook (the only private host the API may reach)."""
    server = LocalWeb()
    yield server
    server.close()


@pytest.fixture(scope="session")
def api(tmp_path_factory, api_tls, api_web) -> ComfyServer:
    server = service_kit.api_server(tmp_path_factory.mktemp("api_host"), tls=api_tls,
                                    config_changes={"max_image_bytes": MAX_IMAGE_BYTES},
                                    allow_hosts=[f"127.0.0.1:{api_web.port}"])
    with server:
        yield server


def client_result(completed: subprocess.CompletedProcess) -> dict:
    lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
    assert completed.returncode == 0 and lines, f"client failed:\n{completed.stdout}\n{completed.stderr}"
    return json.loads(lines[-1][len("RESULT "):])


def javascript_client(api, api_tls, scenario: str, arguments: dict, tmp_path: Path) -> dict:
    """`tests/support/api_clients/apps.mjs <scenario>` with the real `@fal-ai/client`, pointed at the server."""
    script = tmp_path / "node"
    if not script.exists():
        shutil.copytree(CLIENTS_DIR, script / "clients", symlinks=True, ignore=shutil.ignore_patterns("*.mjs"))
        shutil.copy(API_CLIENTS / "apps.mjs", script / "clients" / "apps.mjs")
    env = {**os.environ, "LTXV097_API_URL": api.url, "FAL_KEY": "test-key", "NODE_EXTRA_CA_CERTS": str(api_tls[0])}
    return client_result(subprocess.run(["node", str(script / "clients" / "apps.mjs"), scenario,
                                         json.dumps(arguments)], env=env, capture_output=True, text=True,
                                        timeout=CLIENT_TIMEOUT))


def python_client(api, api_tls, scenario: str, arguments: dict, key: str = "test-key") -> dict:
    """`tests/support/api_clients/py_client.py <scenario>` with the real `fal-client`, pointed at the server."""
    env = {**host_env(), "FAL_KEY": key, "FAL_RUN_HOST": f"127.0.0.1:{api.port}",
           "FAL_QUEUE_RUN_HOST": f"127.0.0.1:{api.port}/queue", "SSL_CERT_FILE": str(api_tls[0])}
    return client_result(subprocess.run([sys.executable, str(API_CLIENTS / "py_client.py"), scenario,
                                         json.dumps(arguments)], env=env, capture_output=True, text=True,
                                        timeout=CLIENT_TIMEOUT))


def post(api, route: str, body, method: str = "POST", headers: dict | None = None):
    """(status, JSON answer) of one call; `body` is JSON unless it is bytes (ignored for GET)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(api.url + route, data=data if method != "GET" else None, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=60, context=api.ssl_context) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def wait_idle(api, timeout: float = 300.0) -> None:
    """Until ComfyUI's queue is empty: what the session's earlier tests queued (or are cancelling) has ended."""
    deadline = time.monotonic() + timeout
    while (queue := api.get_json("/queue"))["queue_running"] or queue["queue_pending"]:
        if time.monotonic() > deadline:
            raise AssertionError(f"the server's queue did not empty within {timeout:.0f} s: {queue}")
        time.sleep(0.2)


def download(api, url: str) -> bytes:
    assert url.startswith(api.url + "/"), f"{url} is not on the server {api.url}"
    with urllib.request.urlopen(url, timeout=30, context=api.ssl_context) as response:
        assert response.headers["Content-Type"] == "video/mp4", response.headers["Content-Type"]
        return response.read()


def check_output(api, output: dict, *, prompt: str, frames: int = 9, size: int = 480, fps: float = 12.0,
                 seed=None) -> None:
    video = output["video"]
    data = download(api, video["url"])
    assert video["content_type"] == "video/mp4" and video["file_size"] == len(data) and video["file_name"], video
    facts = service_kit.mp4_facts(data, api.workdir)
    assert facts == {"frames": frames, "width": size, "height": size, "fps": fps}, facts
    assert output["prompt"] == prompt and isinstance(output["seed"], int), output
    if seed is not None:
        assert output["seed"] == seed, output
