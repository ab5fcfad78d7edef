"""The hosted service's API on a real ComfyUI 0.3.75 (TLS, tiny models), driven by its two official clients.

`@fal-ai/client` (npm) runs the documented `fal.subscribe` snippet; `fal-client` (PyPI) submits, polls with logs,
fetches results, subscribes, runs and cancels, pointed at the server by its host variables and a self-signed CA.
Then: 10 requests at once in order with a cancelled one, a 422 for every field's bad value, 404s, and a restart
that keeps finished results, fails the unfinished ones clearly and turns on an API key.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from support import e2e_workflows
from support import service_kit
from support.comfy_server import REPO_ROOT, host_env
from support.local_web import LocalWeb

CLIENTS_DIR = REPO_ROOT / ".api_clients"
QUEUE = f"/queue/{service_kit.APP_ID}"
FAST = {**service_kit.SMALL, "number_of_steps": 1}
CLIENT_TIMEOUT = 240
MAX_IMAGE_BYTES = 200_000


@pytest.fixture(scope="module")
def tls(tmp_path_factory) -> tuple[Path, Path]:
    return service_kit.make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def web():
    """A local web server for image / video URLs and the webhook (the only private host the API may reach)."""
    server = LocalWeb()
    yield server
    server.close()


@pytest.fixture(scope="module")
def api(tmp_path_factory, tls, web):
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LTX097_URL_ALLOW_HOSTS", f"127.0.0.1:{web.port}")
        server = service_kit.api_server(tmp_path_factory.mktemp("api_host"), tls=tls,
                                        config_changes={"max_image_bytes": MAX_IMAGE_BYTES})
        with server:
            yield server


def client_result(completed: subprocess.CompletedProcess) -> dict:
    lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
    assert completed.returncode == 0 and lines, f"client failed:\n{completed.stdout}\n{completed.stderr}"
    return json.loads(lines[-1][len("RESULT "):])


def python_client(api, tls, scenario: str, arguments: dict, key: str = "test-key") -> dict:
    env = {**host_env(), "FAL_KEY": key, "FAL_RUN_HOST": f"127.0.0.1:{api.port}",
           "FAL_QUEUE_RUN_HOST": f"127.0.0.1:{api.port}/queue", "SSL_CERT_FILE": str(tls[0])}
    script = Path(__file__).parents[1] / "support" / "api_clients" / "py_client.py"
    return client_result(subprocess.run([sys.executable, str(script), scenario, json.dumps(arguments)], env=env,
                                        capture_output=True, text=True, timeout=CLIENT_TIMEOUT))


def download(api, url: str) -> bytes:
    assert url.startswith(api.url + "/"), f"{url} is not on the server {api.url}"
    with urllib.request.urlopen(url, timeout=30, context=api.ssl_context) as response:
        assert response.headers["Content-Type"] == "video/mp4"
        return response.read()


def check_output(api, output: dict, *, prompt: str, frames: int = 9, size: int = 480, fps: float = 12.0,
                 seed=None) -> None:
    video = output["video"]
    data = download(api, video["url"])
    assert video["content_type"] == "video/mp4" and video["file_size"] == len(data) and video["file_name"]
    facts = service_kit.mp4_facts(data, api.workdir)
    assert facts == {"frames": frames, "width": size, "height": size, "fps": fps}
    assert output["prompt"] == prompt and isinstance(output["seed"], int)
    if seed is not None:
        assert output["seed"] == seed


def test_javascript_client_runs_the_documented_subscribe(api, tls, tmp_path):
    assert (CLIENTS_DIR / "node_modules" / "@fal-ai" / "client").is_dir(), \
        "@fal-ai/client is not installed: run scripts/setup_api_clients.sh (make test does)"
    script = tmp_path / "node"
    shutil.copytree(CLIENTS_DIR, script / "clients", symlinks=True, ignore=shutil.ignore_patterns("*.mjs"))
    shutil.copy(Path(__file__).parents[1] / "support" / "api_clients" / "subscribe.mjs", script / "clients" / "subscribe.mjs")
    env = {**os.environ, "LTXV097_API_URL": api.url, "FAL_KEY": "test-key", "NODE_EXTRA_CA_CERTS": str(tls[0]),
           "LTXV097_API_INPUT": json.dumps(service_kit.SMALL)}
    completed = subprocess.run(["node", str(script / "clients" / "subscribe.mjs")], env=env, capture_output=True,
                               text=True, timeout=CLIENT_TIMEOUT)
    result = client_result(completed)
    check_output(api, result["data"], prompt="A red fox trots through fresh snow at dawn")
    assert uuid.UUID(result["requestId"])
    printed = completed.stdout.splitlines()  # forEach(console.log) also prints each line's index and the list
    for message in ("encode: prompt and negative prompt (T5)", "pass 1: step 2/2", "decode: latents to frames (VAE)"):
        assert any(line.startswith(message + " ") for line in printed), completed.stdout


def test_python_client_queue_status_logs_and_result(api, tls):
    seen = python_client(api, tls, "queue_steps", {"prompt": "waves at dusk", "seed": 1234, **FAST})
    final = seen["statuses"][-1]
    assert final["type"] == "Completed" and final["error"] is None and final["metrics"]["inference_time"] > 0
    messages = [log["message"] for log in final["logs"]]
    assert messages[0] == "encode: prompt and negative prompt (T5)" and "pass 1: step 1/1" in messages
    assert messages[-1].startswith("save: 9 frames of 480×480 px at 12 fps")
    check_output(api, seen["result"], prompt="waves at dusk", seed=1234)
    # the request ran on ComfyUI's own queue under its request id (so the UI shows it too)
    assert api.history(seen["request_id"])["status"]["status_str"] == "success"


def test_identical_requests_give_identical_mp4_files(api):
    """The mp4 keeps no metadata from the API's prompt (which holds the request id): the same request, the same
    bytes."""
    files, ids = [], []
    for _ in range(2):
        status, body = post(api, QUEUE, {"prompt": "the same again", "seed": 77, **FAST})
        assert status == 200, body
        while (state := post(api, f"{QUEUE}/requests/{body['request_id']}/status", None, "GET")[1])["status"] != \
                "COMPLETED":
            time.sleep(0.2)
        status, result = post(api, f"{QUEUE}/requests/{body['request_id']}", None, "GET")
        assert status == 200, result
        files.append(download(api, result["video"]["url"]))
        ids.append(body["request_id"])
    assert files[0] == files[1]
    assert not any(request_id.encode() in data for request_id in ids for data in files)


def test_python_client_subscribe_and_run(api, tls):
    subscribed = python_client(api, tls, "subscribe", {"prompt": "a lighthouse", **FAST, "reverse_video": True})
    check_output(api, subscribed["result"], prompt="a lighthouse")
    assert subscribed["updates"][-1]["type"] == "Completed"
    assert any(update["type"] == "InProgress" for update in subscribed["updates"])
    ran = python_client(api, tls, "run", {"prompt": "a tram in the rain", **FAST, "frame_rate": 8})
    check_output(api, ran["result"], prompt="a tram in the rain", fps=8.0)


def test_python_client_cancels_a_running_request(api, tls):
    seen = python_client(api, tls, "cancel_running", {"prompt": "a slow one", **service_kit.SMALL,
                                                      "number_of_steps": 40})
    assert seen["final"]["type"] == "Completed" and seen["final"]["error_type"] == "request_cancelled"
    assert seen["result_error"]["status"] == 499  # what fal answers for a cancelled request
    assert api.history(seen["request_id"])["status"]["status_str"] == "error"


def test_an_interrupt_from_comfyuis_ui_cancels_the_api_request(api):
    """The UI's Cancel (ComfyUI's POST /interrupt) ends a running API request as cancelled, answered as fal answers a
    cancelled request (499), not as a server error."""
    status, body = post(api, QUEUE, {"prompt": "interrupted from the UI", **service_kit.SMALL,
                                     "number_of_steps": 40})
    assert status == 200, body
    status_route = f"{QUEUE}/requests/{body['request_id']}/status"
    while not any("step" in line["message"] for line in post(api, status_route + "?logs=1", None, "GET")[1].get(
            "logs") or []):  # sampling has begun (an interrupt before the prompt starts would be cleared)
        time.sleep(0.05)
    assert post(api, f"{QUEUE}/requests/{body['request_id']}", None, "GET") == (
        400, {"detail": "the request is still in progress"})
    status, waiting = post(api, QUEUE, {"prompt": "behind it", **FAST})
    assert status == 200 and waiting["queue_position"] == 0, waiting  # the running request is not ahead in the queue
    assert post(api, f"{QUEUE}/requests/{waiting['request_id']}/cancel", b"", "PUT") == (
        202, {"status": "CANCELLATION_REQUESTED"})
    assert post(api, f"{QUEUE}/requests/{waiting['request_id']}", None, "GET")[0] == 499
    api.interrupt()
    while (state := post(api, status_route, None, "GET")[1])["status"] != "COMPLETED":
        time.sleep(0.1)
    assert state["error_type"] == "request_cancelled" and "interrupted in ComfyUI" in state["error"], state
    status, answer = post(api, f"{QUEUE}/requests/{body['request_id']}", None, "GET")
    assert status == 499 and answer["error_type"] == "request_cancelled", answer


def post(api, route: str, body, method: str = "POST", headers: dict | None = None):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(api.url + route, data=data if method != "GET" else None, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=60, context=api.ssl_context) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_ten_requests_run_in_order_and_a_cancelled_one_ends_cancelled(api):
    ids, submitted = [], []
    for number in range(10):
        status, body = post(api, QUEUE, {"prompt": f"request {number}", **FAST, "seed": number})
        assert status == 200 and body["status"] == "IN_QUEUE", body
        ids.append(body["request_id"])
        submitted.append(body["queue_position"])
    # positions count the requests ahead: the first of an idle queue has none, each next at most one more
    assert submitted[0] == 0 and all(0 <= b - a <= 1 for a, b in zip(submitted, submitted[1:])), submitted
    assert submitted[-1] >= 5, submitted
    assert post(api, f"{QUEUE}/requests/{ids[-1]}", None, "GET") == (
        400, {"detail": "the request is still in progress"})
    positions = []
    for request_id in ids:
        _, status = post(api, f"{QUEUE}/requests/{request_id}/status", None, "GET")
        if status["status"] == "IN_QUEUE":
            positions.append(status["queue_position"])
    assert len(positions) >= 7 and positions == list(range(len(positions))), positions
    cancelled = ids[6]
    assert post(api, f"{QUEUE}/requests/{cancelled}/cancel", b"", "PUT") == (
        202, {"status": "CANCELLATION_REQUESTED"})
    deadline = time.monotonic() + 200
    while time.monotonic() < deadline:
        states = [post(api, f"{QUEUE}/requests/{request_id}/status", None, "GET")[1] for request_id in ids]
        if all(state["status"] == "COMPLETED" for state in states):
            break
        time.sleep(0.5)
    assert [state.get("error_type") for state in states] == [None] * 6 + ["request_cancelled"] + [None] * 3
    assert post(api, f"{QUEUE}/requests/{cancelled}", None, "GET")[0] == 499
    assert post(api, f"{QUEUE}/requests/{cancelled}/cancel", b"", "PUT")[0] == 400  # already completed
    finished = [prompt_id for prompt_id in api.get_json("/history") if prompt_id in ids]
    assert finished == ids[:6] + ids[7:]
    for number in (5, 7):
        _, output = post(api, f"{QUEUE}/requests/{ids[number]}", None, "GET")
        assert output["seed"] == number and output["prompt"] == f"request {number}"


BAD_VALUES = [
    ("prompt", None, "missing"), ("prompt", 5, "string_type"), ("prompt", "  ", "value_error"),
    ("negative_prompt", ["x"], "string_type"), ("loras", "a.safetensors", "list_type"),
    ("loras", [{"scale": 1}], "missing"), ("loras", [{"path": "a", "scale": 99}], "value_error"),
    ("loras", [{"path": "a", "weight_name": 3}], "string_type"),
    ("loras", [{"path": "not_there.safetensors"}], "value_error"), ("loras", [{"path": "/etc/x"}], "value_error"), ("resolution", "1080p", "literal_error"),
    ("aspect_ratio", "4:3", "literal_error"), ("number_of_frames", 8, "value_error"),
    ("number_of_frames", 258, "value_error"), ("number_of_frames", "89", "int_type"),
    ("number_of_steps", 0, "value_error"), ("number_of_steps", 101, "value_error"),
    ("frame_rate", 61, "value_error"), ("frame_rate", 24.5, "int_type"), ("seed", -1, "value_error"),
    ("seed", 2 ** 64, "value_error"), ("expand_prompt", "yes", "bool_type"), ("reverse_video", 1, "bool_type"),
    ("enable_safety_checker", "no", "bool_type"), ("image_url", "/etc/passwd", "url_scheme"),
    ("video_url", "file:///etc/passwd", "url_scheme"), ("strength", 0.5, "value_error"),
    ("start_frame_number", 8, "value_error"), ("unknown_field", 1, "extra_forbidden"),
]


@pytest.mark.parametrize("name,value,kind", BAD_VALUES, ids=[f"{n}={v!r}" for n, v, _ in BAD_VALUES])
def test_every_field_bad_value_gets_a_422_naming_it(api, name, value, kind):
    body = {"prompt": "a valid prompt"}
    if value is None:
        body.pop(name)
    else:
        body[name] = value
    status, answer = post(api, QUEUE, body)
    assert status == 422, answer
    [entry] = answer["detail"]
    assert entry["loc"][:2] == ["body", name] and entry["type"] == kind and entry["msg"]


def test_condition_fields_are_checked_and_expand_prompt_needs_the_node(api, tls):
    status, answer = post(api, QUEUE, {"prompt": "p", "image_url": "https://example.com/a.png",
                                       "strength": 1.5, "start_frame_number": -1})
    assert status == 422 and {tuple(d["loc"]) for d in answer["detail"]} == {
        ("body", "strength"), ("body", "start_frame_number")}
    node_inputs = api.object_info("LTX097TextToVideo")["input"]
    if "expand_prompt" not in {**node_inputs["required"], **node_inputs.get("optional", {})}:
        seen = python_client(api, tls, "invalid", {"prompt": "p", "expand_prompt": True})
        assert seen["status"] == 422 and seen["detail"][0]["loc"] == ["body", "expand_prompt"]
        assert "not available" in seen["detail"][0]["msg"]


def test_image_url_condition_and_webhook(api, tls, web, tmp_path):
    web.routes["/start.png"] = LocalWeb.static(200, e2e_workflows.write_image(tmp_path / "a.png").read_bytes(),
                                               {"Content-Type": "image/png"})
    web.routes["/hook"] = LocalWeb.static(200, b"{}", {"Content-Type": "application/json"})
    seen = python_client(api, tls, "with_webhook", {
        "prompt": "from an image", **FAST, "image_url": f"{web.url}/start.png", "start_frame_number": 0,
        "strength": 0.9, "webhook": f"{web.url}/hook"})
    check_output(api, seen["result"], prompt="from an image")
    assert web.hits["/start.png"] == 1
    web.finish("/hook")
    hook = json.loads(web.bodies["/hook"])
    assert hook == {"request_id": seen["request_id"], "gateway_request_id": seen["request_id"], "status": "OK",
                    "payload": seen["result"]}
    assert not list((api.workdir / "input").glob("ltxv097_api_*"))  # the condition file was cleaned up


def test_video_data_uri_condition(api, tmp_path):
    clip = e2e_workflows.write_video(tmp_path / "clip.mp4", frames=9).read_bytes()
    uri = "data:video/mp4;base64," + base64.b64encode(clip).decode()
    status, body = post(api, QUEUE, {"prompt": "from a clip", **FAST, "video_url": uri, "strength": 0.8})
    assert status == 200, body
    while (state := post(api, f"{QUEUE}/requests/{body['request_id']}/status", None, "GET")[1])["status"] != \
            "COMPLETED":
        time.sleep(0.3)
    assert state.get("error") is None, state
    check_output(api, post(api, f"{QUEUE}/requests/{body['request_id']}", None, "GET")[1], prompt="from a clip")


def test_bad_media_and_webhooks_get_422s(api, web, tmp_path):
    web.routes["/page.png"] = LocalWeb.static(200, b"<html>not an image</html>", {"Content-Type": "image/png"})
    web.routes["/big.png"] = LocalWeb.static(200, b"\x89PNG\r\n\x1a\n" + bytes(MAX_IMAGE_BYTES),
                                             {"Content-Type": "image/png"})
    png = "data:image/png;base64," + base64.b64encode(
        e2e_workflows.write_image(tmp_path / "b.png").read_bytes()).decode()
    whole = {name: e2e_workflows.write_image(tmp_path / f"c.{name}").read_bytes() for name in ("png", "jpg")}
    clip = e2e_workflows.write_video(tmp_path / "c.mp4").read_bytes()
    web.routes["/cut.png"] = LocalWeb.static(200, whole["png"][: len(whole["png"]) // 2])
    web.routes["/cut.mp4"] = LocalWeb.static(200, clip[: len(clip) * 2 // 3])
    cut_jpeg = "data:image/jpeg;base64," + base64.b64encode(whole["jpg"][: len(whole["jpg"]) // 2]).decode()
    cases = [
        ({"image_url": f"{web.url}/cut.png"}, "image_url", "file_damaged", "damaged or cut-short image"),
        ({"image_url": cut_jpeg}, "image_url", "file_damaged", "damaged or cut-short image"),
        ({"video_url": f"{web.url}/cut.mp4"}, "video_url", "file_damaged", "damaged or cut-short video"),
        ({"image_url": f"{web.url}/page.png"}, "image_url", "file_type", "is not an image file"),
        ({"image_url": f"{web.url}/big.png"}, "image_url", "file_download_error", "allowed"),
        ({"image_url": "http://127.0.0.2:9/a.png"}, "image_url", "file_download_error", "127.0.0.2"),
        ({"video_url": png}, "video_url", "file_type", "is not a video file"),
        ({"image_url": "data:image/png;base64,@@@"}, "image_url", "file_download_error", "base64"),
    ]
    for fields, name, kind, words in cases:
        status, answer = post(api, QUEUE, {"prompt": "p", **fields})
        assert status == 422 and answer["detail"][0]["loc"] == ["body", name], answer
        assert answer["detail"][0]["type"] == kind and words in answer["detail"][0]["msg"], answer
    status, answer = post(api, QUEUE + "?fal_webhook=ftp://x/y", {"prompt": "p"})
    assert status == 422 and answer["detail"][0]["loc"] == ["query", "fal_webhook"]
    assert not list((api.workdir / "input").glob("ltxv097_api_*"))


def test_a_failed_generation_answers_with_its_error_and_calls_its_webhook(api, web):
    web.routes["/gone.safetensors"] = LocalWeb.static(404, b"not found")
    web.routes["/failed-hook"] = LocalWeb.static(200, b"")
    status, body = post(api, f"{QUEUE}?fal_webhook={web.url}/failed-hook",
                        {"prompt": "p", **FAST, "loras": [{"path": f"{web.url}/gone.safetensors"}]})
    assert status == 200, body
    while (state := post(api, f"{QUEUE}/requests/{body['request_id']}/status", None, "GET")[1])["status"] != \
            "COMPLETED":
        time.sleep(0.2)
    assert state["error_type"] == "execution_error" and "404" in state["error"], state
    status, answer = post(api, f"{QUEUE}/requests/{body['request_id']}", None, "GET")
    assert status == 500 and answer == {"detail": state["error"], "error_type": "execution_error"}
    deadline = time.monotonic() + 30  # the webhook is sent once the request ended, whatever the ending
    while "/failed-hook" not in web.bodies and time.monotonic() < deadline:
        time.sleep(0.2)
    hook = json.loads(web.bodies["/failed-hook"])
    assert (hook["request_id"], hook["status"]) == (body["request_id"], "ERROR") and "404" in hook["error"], hook


def test_unknown_request_ids_are_404(api):
    for route in (f"{QUEUE}/requests/{uuid.uuid4()}/status", f"{QUEUE}/requests/{uuid.uuid4()}",
                  f"{QUEUE}/requests/not-an-id/status"):
        status, answer = post(api, route, None, "GET")
        assert status == 404 and "not found" in answer["detail"]
    assert post(api, f"{QUEUE}/requests/{uuid.uuid4()}/cancel", b"", "PUT")[0] == 404


def test_restart_keeps_finished_results_and_fails_unfinished_ones(api, tls):
    _, done = post(api, QUEUE, {"prompt": "kept", **FAST, "seed": 77})
    while post(api, f"{QUEUE}/requests/{done['request_id']}/status", None, "GET")[1]["status"] != "COMPLETED":
        time.sleep(0.3)
    _, running = post(api, QUEUE, {"prompt": "running", **service_kit.SMALL, "number_of_steps": 60})
    _, queued = post(api, QUEUE, {"prompt": "queued", **FAST})
    while post(api, f"{QUEUE}/requests/{running['request_id']}/status", None, "GET")[1]["status"] == "IN_QUEUE":
        time.sleep(0.1)
    api.stop()
    config_path = api.workdir / "user" / "ltxv097_api.json"
    config_path.write_text(json.dumps({**json.loads(config_path.read_text()), "api_keys": ["sekrit"]}))
    # what a crash leaves: a partial mp4 and a condition file; and a user's files of like names
    leftovers = [api.output_dir / "ltxv097_api" / ".kept_00001_.mp4.a1b2c3d4.part",
                 api.workdir / "input" / f"ltxv097_api_{uuid.uuid4()}_image.png",
                 api.models_dir / "loras" / "ltx097_downloads" / ".big-0123456789ab.safetensors.x9y8z7w6.part"]
    users = [api.output_dir / ".notes.part", api.workdir / "input" / "ltxv097_api_notes.png",
             api.output_dir / "clip.mp4.part", api.models_dir / "loras" / "ltx097_downloads" / "notes.txt"]
    for path in leftovers + users:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    api.start()
    assert not any(path.exists() for path in leftovers) and all(path.exists() for path in users)
    key = {"Authorization": "Key sekrit"}
    assert post(api, f"{QUEUE}/requests/{done['request_id']}", None, "GET")[0] == 401
    assert post(api, QUEUE, {"prompt": "p"}, headers={"Authorization": "Key wrong"})[0] == 401
    status, output = post(api, f"{QUEUE}/requests/{done['request_id']}", None, "GET", key)
    assert status == 200
    check_output(api, output, prompt="kept", seed=77)
    for lost in (running, queued):
        status, state = post(api, f"{QUEUE}/requests/{lost['request_id']}/status", None, "GET", key)
        assert status == 200 and state["status"] == "COMPLETED" and state["error_type"] == "server_restarted"
        status, answer = post(api, f"{QUEUE}/requests/{lost['request_id']}", None, "GET", key)
        assert status == 500 and "stopped before this request finished" in answer["detail"]
    fetched = python_client(api, tls, "result", {"request_id": done["request_id"]}, key="sekrit")
    assert fetched["result"] == output
