"""LoRA URLs through the real ComfyUI server: `/interrupt` stops a prompt whose LoRA trickles in and the next
prompt runs (and downloads its LoRA from an allowed local server); ComfyUI's own port, a redirect to it and a
closed port read the same; credentials in a URL never reach the log, the error or `/history`."""

from __future__ import annotations

import json
import time

import pytest

from support import e2e_workflows, tiny, tiny_lora, workflow_api
from support.comfy_server import ComfyServer, HostError
from support.local_web import LocalWeb

pytest_plugins = ["support.comfy_host"]

RUN_TIMEOUT = 180.0
REFUSED = "could not be fetched: the host is unreachable or not allowed"


@pytest.fixture(scope="module")
def lora_bytes(tmp_path_factory) -> bytes:
    transformer = tiny.reference_transformer(tiny.transformer_config())
    lora = tiny_lora.random_lora(tiny_lora.linear_modules(transformer), rank=4, seed=3)
    path = tmp_path_factory.mktemp("served_lora") / "lora.safetensors"
    return tiny_lora.write_lora(path, lora, "comfyui_trainer", alpha=4.0).read_bytes()


@pytest.fixture(scope="module")
def lora_prompt(comfy_server: ComfyServer):
    """`lora_prompt(source)`: the tiny LoRA workflow with its LoRA node's source set."""
    base = e2e_workflows.tiny_prompt(e2e_workflows.load_workflow("ltxv097_text_to_video_lora"),
                                     comfy_server.object_info(), comfy_server.models)
    return lambda source: workflow_api.set_inputs(base, "LTX097LoraLoader", source=source)


def downloads(server: ComfyServer) -> list[str]:
    folder = server.models_dir / "loras" / "ltx097_downloads"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def lora_error(server: ComfyServer, prompt: dict) -> str:
    entry = server.wait(server.post_prompt(prompt), timeout=RUN_TIMEOUT)
    error = server.execution_error(entry)
    assert error is not None and error["node_type"] == "LTX097LoraLoader", entry["status"]
    return error["exception_message"]


def test_interrupt_stops_a_trickling_lora_download_and_the_next_prompt_runs(comfy_server, host_web, lora_prompt,
                                                                            lora_bytes):
    # a byte every 12 s: slow enough that only the download's own cancel check (not a progress update) can see
    # the interrupt within seconds
    host_web.trickle("/trickle.safetensors", lora_bytes[:64], every=12.0, count=2, length=len(lora_bytes))
    prompt_id = comfy_server.post_prompt(lora_prompt(host_web.url + "/trickle.safetensors"))
    deadline = time.monotonic() + RUN_TIMEOUT
    while host_web.sent.get("/trickle.safetensors", 0) < 64 and time.monotonic() < deadline:
        time.sleep(0.1)  # until the download is under way
    assert host_web.sent.get("/trickle.safetensors", 0) >= 64, comfy_server.log_tail()
    time.sleep(1.0)
    interrupted = time.monotonic()
    comfy_server.interrupt()
    entry = comfy_server.wait(prompt_id, timeout=30)
    assert time.monotonic() - interrupted < 5.0, "the interrupt was not seen during the download"
    assert entry["status"]["status_str"] == "error"
    assert "execution_interrupted" in [name for name, _ in entry["status"]["messages"]]
    assert downloads(comfy_server) == [], "the interrupted download left a file behind"

    host_web.routes["/good.safetensors"] = LocalWeb.static(200, lora_bytes)
    entry = comfy_server.wait(comfy_server.post_prompt(lora_prompt(host_web.url + "/good.safetensors")),
                              timeout=RUN_TIMEOUT, raise_on_error=True)
    assert e2e_workflows.saved_videos(entry)
    (cached,) = downloads(comfy_server)
    assert cached.startswith("good-") and host_web.hits["/good.safetensors"] == 1


def test_local_addresses_read_the_same_and_credentials_stay_out(comfy_server, host_web, lora_prompt):
    own_port = lora_error(comfy_server, lora_prompt(comfy_server.url + "/api/queue"))
    closed = lora_error(comfy_server, lora_prompt(comfy_server.closed_url + "/api/queue"))
    assert REFUSED in own_port
    assert own_port.replace(comfy_server.url, "URL") == closed.replace(comfy_server.closed_url, "URL")
    host_web.routes["/to-comfyui.safetensors"] = LocalWeb.redirect(comfy_server.url + "/api/queue")
    redirected = lora_error(comfy_server, lora_prompt(host_web.url + "/to-comfyui.safetensors"))
    assert redirected.replace(host_web.url + "/to-comfyui.safetensors", "URL") == own_port.replace(
        comfy_server.url + "/api/queue", "URL")

    # credentials: refused at queue time (the prompt never runs, so it never enters the history) ...
    with pytest.raises(HostError) as refused:
        comfy_server.post_prompt(lora_prompt(f"http://admin:hunter2@127.0.0.1:{host_web.port}/x.safetensors"))
    assert "user name or password" in str(refused.value) and "hunter2" not in str(refused.value)
    # ... and a redirect to such a URL is refused without repeating it
    host_web.routes["/to-credentials.safetensors"] = LocalWeb.redirect(
        f"http://admin:hunter2@127.0.0.1:{host_web.port}/x.safetensors?key=s3cr3t")
    message = lora_error(comfy_server, lora_prompt(host_web.url + "/to-credentials.safetensors"))
    assert "user name or password" in message
    history = json.dumps(comfy_server.get_json("/history"))
    log = comfy_server.log_text()
    for secret in ("hunter2", "s3cr3t"):
        assert secret not in history and secret not in log
    assert host_web.hits.get("/x.safetensors", 0) == 0
    assert not [name for name in downloads(comfy_server) if not name.startswith("good-")]
