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
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest
import torch

from mp4 import write_mp4
from support import e2e_workflows, service_kit, tiny, tiny_lora
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


def javascript_client(api, tls, scenario: str, arguments: dict, tmp_path: Path) -> dict:
    """`tests/support/api_clients/apps.mjs <scenario>` with the real `@fal-ai/client`, pointed at the server."""
    script = tmp_path / "node"
    if not script.exists():
        shutil.copytree(CLIENTS_DIR, script / "clients", symlinks=True, ignore=shutil.ignore_patterns("*.mjs"))
        shutil.copy(Path(__file__).parents[1] / "support" / "api_clients" / "apps.mjs",
                    script / "clients" / "apps.mjs")
    env = {**os.environ, "LTXV097_API_URL": api.url, "FAL_KEY": "test-key", "NODE_EXTRA_CA_CERTS": str(tls[0])}
    return client_result(subprocess.run(["node", str(script / "clients" / "apps.mjs"), scenario,
                                         json.dumps(arguments)], env=env, capture_output=True, text=True,
                                        timeout=CLIENT_TIMEOUT))


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
    support_clients = Path(__file__).parents[1] / "support" / "api_clients"
    shutil.copy(support_clients / "subscribe.mjs", script / "clients" / "subscribe.mjs")
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
        while post(api, f"{QUEUE}/requests/{body['request_id']}/status", None, "GET")[1]["status"] != "COMPLETED":
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
    ("loras", [{"path": "not_there.safetensors"}], "value_error"), ("loras", [{"path": "/etc/x"}], "value_error"),
    ("resolution", "1080p", "literal_error"),
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
    write_mp4(str(tmp_path / "c.mp4"), torch.rand(17, 64, 64, 3), 24.0)  # faststart: its header is whole when cut
    clip = (tmp_path / "c.mp4").read_bytes()
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


def test_slow_downloads_of_other_requests_never_delay_a_submit(api, web, tmp_path):
    """Six video downloads trickling just above the minimum rate once took every thread that media fetching and
    webhooks shared: a submit with media then waited for them (issue 17, 4). Now it is answered while they run."""
    release = threading.Event()
    slow = [f"/slow{number}.mp4" for number in range(6)]
    for route in slow:
        web.steady(route, b"\0\0\0\x18ftypisom", release)
    answers: dict[str, tuple] = {}

    def submit_slow(route: str) -> None:
        answers[route] = post(api, QUEUE, {"prompt": "p", **FAST, "video_url": web.url + route})

    threads = [threading.Thread(target=submit_slow, args=(route,)) for route in slow]
    try:
        for thread in threads:
            thread.start()
        while len([route for route in slow if web.sent.get(route)]) < len(slow):  # all six are being sent
            time.sleep(0.1)
        web.routes["/quick.png"] = LocalWeb.static(200, e2e_workflows.write_image(tmp_path / "q.png").read_bytes())
        status, body = post(api, QUEUE, {"prompt": "while others download", **FAST,
                                         "image_url": f"{web.url}/quick.png"})
        assert status == 200 and body["status"] == "IN_QUEUE", body
        assert not any(route in web.done for route in slow) and not answers, \
            "the submit was answered only after the slow downloads ended"
    finally:
        release.set()
        for thread in threads:
            thread.join(timeout=60)
    assert all(answers[route][0] == 422 and answers[route][1]["detail"][0]["loc"] == ["body", "video_url"]
               for route in slow), answers
    while post(api, f"{QUEUE}/requests/{body['request_id']}/status", None, "GET")[1]["status"] != "COMPLETED":
        time.sleep(0.3)


def test_secrets_in_urls_stay_out_of_history_metadata_records_logs_and_errors(api, web, tmp_path):
    """A LoRA URL's token reached the mp4's metadata and /history; a webhook with user:pass@ was stored in clear; a
    422 echoed a URL's credentials (issue 17, 3)."""
    transformer = tiny.reference_transformer(tiny.transformer_config())
    lora = tiny_lora.random_lora(tiny_lora.linear_modules(transformer), rank=4, seed=3)
    tiny_lora.write_lora(tmp_path / "style.safetensors", lora, tiny_lora.FORMATS[0], alpha=4.0)
    web.routes["/style.safetensors?sig=s3cr3t-lora"] = LocalWeb.static(
        200, (tmp_path / "style.safetensors").read_bytes())
    web.routes["/hook?secret=s3cr3t-hook"] = LocalWeb.static(200, b"{}", {"Content-Type": "application/json"})
    hook = urllib.parse.quote(f"{web.url}/hook?secret=s3cr3t-hook", safe="")
    status, body = post(api, f"{QUEUE}?fal_webhook={hook}", {
        "prompt": "with a private LoRA", **FAST, "loras": [{"path": f"{web.url}/style.safetensors?sig=s3cr3t-lora"}]})
    assert status == 200, body
    while (state := post(api, f"{QUEUE}/requests/{body['request_id']}/status", None, "GET")[1])["status"] != \
            "COMPLETED":
        time.sleep(0.3)
    assert state.get("error") is None and web.hits["/style.safetensors?sig=s3cr3t-lora"] == 1, state
    _, output = post(api, f"{QUEUE}/requests/{body['request_id']}", None, "GET")
    web.finish("/hook?secret=s3cr3t-hook")
    assert json.loads(web.bodies["/hook?secret=s3cr3t-hook"])["status"] == "OK", "the webhook got its query string"
    history = json.dumps(api.history(body["request_id"]))
    assert "/style.safetensors" in history
    record = (api.workdir / "user" / "ltxv097_api" / "requests" / f"{body['request_id']}.json").read_text()
    places = {"mp4": download(api, output["video"]["url"]).decode("latin-1"), "history": history, "record": record,
              "log": api.log_text()}
    for place, text in places.items():
        assert "s3cr3t" not in text, place
    for query, fields, loc in (
            (f"?fal_webhook={urllib.parse.quote('https://user:pa55@example.com/h', safe='')}", {},
             ["query", "fal_webhook"]),
            ("", {"image_url": "ftp://user:pa55@example.com/a.png?t=s3cr3t"}, ["body", "image_url"]),
            ("", {"video_url": "https://user:pa55@example.com/a.mp4?t=s3cr3t"}, ["body", "video_url"])):
        status, answer = post(api, QUEUE + query, {"prompt": "p", **fields})
        assert status == 422 and answer["detail"][0]["loc"] == loc, answer
        assert "pa55" not in json.dumps(answer) and "s3cr3t" not in json.dumps(answer), answer


def test_a_lora_that_fails_while_running_answers_422_naming_it_and_its_webhook_carries_that_body(api, web):
    web.routes["/gone.safetensors"] = LocalWeb.static(404, b"not found")
    web.routes["/hook-lora"] = LocalWeb.static(200, b"{}", {"Content-Type": "application/json"})
    status, body = post(api, f"{QUEUE}?fal_webhook={web.url}/hook-lora",
                        {"prompt": "p", **FAST, "loras": [{"path": "owner/repo", "scale": 0},
                                                          {"path": f"{web.url}/gone.safetensors"}]})
    assert status == 200, body
    while (state := post(api, f"{QUEUE}/requests/{body['request_id']}/status", None, "GET")[1])["status"] != \
            "COMPLETED":
        time.sleep(0.2)
    assert state["error_type"] == "lora_error" and "404" in state["error"], state
    status, answer = post(api, f"{QUEUE}/requests/{body['request_id']}", None, "GET")
    assert status == 422 and answer["detail"][0]["loc"] == ["body", "loras", 1, "path"], answer
    assert str(api.workdir) not in json.dumps(answer)
    web.finish("/hook-lora")
    hook = json.loads(web.bodies["/hook-lora"])
    assert hook["status"] == "ERROR" and hook["payload"] == answer and web.hits["/hook-lora"] == 1


def test_unknown_request_ids_are_404(api):
    for route in (f"{QUEUE}/requests/{uuid.uuid4()}/status", f"{QUEUE}/requests/{uuid.uuid4()}",
                  f"{QUEUE}/requests/not-an-id/status"):
        status, answer = post(api, route, None, "GET")
        assert status == 404 and "not found" in answer["detail"]
    assert post(api, f"{QUEUE}/requests/{uuid.uuid4()}/cancel", b"", "PUT")[0] == 404


# ---- what apps do (issue 18): files in, the status stream, the family's endpoints, headers, fail at submit ----

CAT_EXAMPLE = ("A close-up reveals a fluffy ginger tabby cat, its fur a vibrant mix of orange, cream, and black, "
               "walking delicately along a sun-drenched sidewalk.")
"""The service page's example call (its prompt, shortened)."""


def photo(path: Path) -> Path:
    """A 768×512 JPEG with detail (a gradient with noise), as an app's photo would be."""
    import numpy as np
    from PIL import Image

    rows = np.linspace(0, 255, 512, dtype=np.float32)[:, None, None]
    columns = np.linspace(0, 255, 768, dtype=np.float32)[None, :, None]
    noise = np.random.default_rng(0).normal(0, 24, (512, 768, 3))
    pixels = np.clip(np.concatenate([rows + 0 * columns, columns + 0 * rows, (rows + columns) / 2], 2) + noise, 0,
                     255)
    Image.fromarray(pixels.astype(np.uint8)).save(path, quality=80)
    return path


def test_javascript_client_uploads_a_photo_and_sends_a_blob_to_image_to_video(api, tls, tmp_path):
    image = photo(tmp_path / "photo.jpg")
    arguments = {"image": str(image), "input": {"prompt": "the photo comes alive", **FAST}}
    uploaded = javascript_client(api, tls, "upload_image_to_video", arguments, tmp_path)
    assert uploaded["url"].startswith(f"{api.url}/ltxv097_api/uploads/"), uploaded["url"]
    check_output(api, uploaded["data"], prompt="the photo comes alive")
    request = urllib.request.Request(uploaded["url"], headers={"Authorization": "Key test-key"})
    with urllib.request.urlopen(request, timeout=30, context=api.ssl_context) as response:
        assert response.read() == image.read_bytes()  # kept as sent; the request read it from disk, not the network
    blob = javascript_client(api, tls, "blob_image_to_video", arguments, tmp_path)
    check_output(api, blob["data"], prompt="the photo comes alive")


def test_python_client_sends_a_768x512_jpeg_through_encode_image(api, tls, tmp_path):
    seen = python_client(api, tls, "encoded_image_to_video", {"image": str(photo(tmp_path / "photo.jpg")),
                                                              "prompt": "from a photo", **FAST})
    assert seen["image_url_chars"] > 20_000  # longer than the prompt's limit, far below the image limit
    check_output(api, seen["result"], prompt="from a photo")


def test_multiconditioning_from_both_clients(api, tls, tmp_path):
    image = photo(tmp_path / "photo.jpg")
    video = e2e_workflows.write_video(tmp_path / "clip.mp4", frames=9)
    arguments = {"image": str(image), "video": str(video), "input": {"prompt": "keyframes", **FAST,
                                                                     "number_of_frames": 17}}
    ran = javascript_client(api, tls, "multiconditioning", arguments, tmp_path)
    check_output(api, ran["data"], prompt="keyframes", frames=17)
    seen = python_client(api, tls, "multiconditioning", {"image": str(image), "video": str(video),
                                                         "prompt": "keyframes", **FAST, "number_of_frames": 17})
    check_output(api, seen["result"], prompt="keyframes", frames=17)
    refused = python_client(api, tls, "invalid", {"endpoint": f"{service_kit.APP_ID}/image-to-video", "prompt": "p"})
    assert refused["status"] == 422 and refused["detail"][0]["loc"] == ["body", "image_url"]


def test_status_stream_and_streaming_subscribe(api, tls, tmp_path):
    seen = javascript_client(api, tls, "stream", {"input": {"prompt": "a stream", **FAST}}, tmp_path)
    statuses = [event["status"] for event in seen["events"]]
    assert statuses[-1] == "COMPLETED" and set(statuses) <= {"IN_QUEUE", "IN_PROGRESS", "COMPLETED"}, statuses
    assert statuses.count("COMPLETED") == 1 and seen["done"]["status"] == "COMPLETED"
    messages = [log["message"] for event in seen["events"] for log in event["logs"]]
    assert messages[0] == "encode: prompt and negative prompt (T5)" and len(messages) == len(set(messages))
    assert any(message.startswith("save: 9 frames") for message in messages)
    assert seen["updates"][-1]["status"] == "COMPLETED"
    assert any(log["message"].startswith("save: 9 frames") for log in seen["updates"][-1]["logs"])
    check_output(api, seen["subscribed"]["data"], prompt="a stream")
    assert uuid.UUID(seen["subscribed"]["requestId"])


SLOW = {**service_kit.SMALL, "resolution": "720p", "aspect_ratio": "16:9", "number_of_frames": 97,
        "number_of_steps": 100}
"""A request that runs far longer than a 2 s start timeout (each scenario cancels it once it has served)."""


def test_start_timeout_and_low_priority_from_both_clients(api, tls, tmp_path):
    seen = python_client(api, tls, "low_priority_and_start_timeout", {"slow": {"prompt": "slow", **SLOW},
                                                                      "input": {"prompt": "quick", **FAST}})
    assert seen["late"]["status"] == 504 and seen["late"]["timeout_type"] == "user", seen["late"]
    assert "did not start within 2 s" in seen["late"]["detail"]
    assert seen["positions"]["normal"] < seen["positions"]["low"], seen["positions"]
    order = [prompt_id for prompt_id in api.get_json("/history") if prompt_id in seen["ids"].values()]
    assert order == [seen["ids"]["normal"], seen["ids"]["low"]]
    ran = javascript_client(api, tls, "timeout_and_priority", {"slow": {"prompt": "slow", **SLOW},
                                                                "input": {"prompt": "quick", **FAST}}, tmp_path)
    assert ran["late"]["status"] == 504 and ran["late"]["timeoutType"] == "user", ran["late"]
    assert ran["late"]["requestId"] == ran["ids"]["late"]
    assert ran["normalPosition"] < ran["lowPosition"]


def test_switched_on_features_without_their_models_fail_at_submit_with_the_way_out(api, tls, tmp_path):
    checker = api.models_dir / "safety_checker" / "nsfw_image_detection"
    moved = tmp_path / "checker"
    shutil.move(checker, moved)
    try:
        seen = python_client(api, tls, "invalid", {"prompt": CAT_EXAMPLE})  # the page's example, as it is
        answered = post(api, QUEUE, {"prompt": CAT_EXAMPLE, **FAST, "enable_safety_checker": False})
    finally:
        shutil.move(moved, checker)
    assert seen["status"] == 422, seen
    [entry] = seen["detail"]
    assert entry["loc"] == ["body", "enable_safety_checker"] and entry["type"] == "model_missing"
    for words in ("models/safety_checker/nsfw_image_detection", "enable_safety_checker: false",
                  "default_enable_safety_checker"):
        assert words in entry["msg"], entry
    assert str(api.workdir) not in entry["msg"]
    assert answered[0] == 200, answered  # switched off, the same request is queued
    post(api, f"{QUEUE}/requests/{answered[1]['request_id']}/cancel", b"", "PUT")
    status, answer = post(api, QUEUE, {"prompt": "p", "expand_prompt": True})
    assert status == 422 and answer["detail"][0]["loc"] == ["body", "expand_prompt"], answer
    assert "models/LLM/" in answer["detail"][0]["msg"] and str(api.workdir) not in answer["detail"][0]["msg"]


def test_nulls_wrong_types_lora_urls_and_non_json_are_refused_at_submit(api):
    for name in ("negative_prompt", "loras", "resolution", "aspect_ratio", "number_of_frames", "number_of_steps",
                 "frame_rate", "expand_prompt", "reverse_video", "enable_safety_checker"):
        status, answer = post(api, QUEUE, {"prompt": "p", name: None})
        assert status == 422 and answer["detail"] == [
            {"loc": ["body", name], "msg": answer["detail"][0]["msg"], "type": "null_type"}], (name, answer)
    status, answer = post(api, QUEUE, {"prompt": "p", "loras": [{"path": "http://127.0.0.2:9/a.safetensors"}]})
    assert status == 422 and answer["detail"][0]["loc"] == ["body", "loras", 0, "path"], answer
    assert answer["detail"][0]["type"] == "url_not_allowed"
    status, answer = post(api, QUEUE, b"prompt=p", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 415 and "application/json" in answer["detail"]
    status, answer = post(api, QUEUE, b"{not json")
    assert status == 422 and answer["detail"][0]["type"] == "json_invalid"


def test_a_prompt_with_a_separator_line_is_taken_literally(api):
    prompt = "a harbour at night\n---\nthe same harbour at dawn"
    status, body = post(api, QUEUE, {"prompt": prompt, **FAST})
    assert status == 200, body
    while (state := post(api, f"{QUEUE}/requests/{body['request_id']}/status", None, "GET")[1])["status"] != \
            "COMPLETED":
        time.sleep(0.3)
    assert state.get("error") is None, state
    assert post(api, f"{QUEUE}/requests/{body['request_id']}", None, "GET")[1]["prompt"] == prompt
    node = api.history(body["request_id"])["prompt"][2]["text_to_video"]["inputs"]
    assert node["prompt"] == prompt and node["split_prompt"] is False


def test_every_error_is_json_with_detail_and_names_its_request(api):
    import http.client

    request_id = str(uuid.uuid4())
    for method, route, expected in (("GET", f"{QUEUE}/requests/{request_id}/status", 404),
                                    ("DELETE", QUEUE, 405), ("GET", f"{QUEUE}/nowhere", 404),
                                    ("GET", f"{QUEUE}/requests/{request_id}/status/stream", 404)):
        request = urllib.request.Request(api.url + route, method=method)
        with pytest.raises(urllib.error.HTTPError) as failed:
            urllib.request.urlopen(request, timeout=30, context=api.ssl_context)
        text = failed.value.read()
        assert failed.value.code == expected and text and json.loads(text)["detail"], (method, route, text)
        if "/requests/" in route:
            assert failed.value.headers["x-fal-request-id"] == request_id
    status, started = post(api, "/rest/storage/upload/initiate?storage_type=fal-cdn-v3",
                           {"content_type": "image/png", "file_name": "a.png"})
    assert status == 200, started
    connection = http.client.HTTPSConnection("127.0.0.1", api.port, context=api.ssl_context, timeout=30)
    target = started["upload_url"][len(api.url):]
    connection.putrequest("PUT", target)
    connection.putheader("Content-Length", str(10 ** 10))
    connection.endheaders()
    answer = connection.getresponse()
    assert answer.status == 413 and "at most" in json.loads(answer.read())["detail"]
    connection.close()
    status, refused = post(api, "/rest/storage/upload/initiate", {"content_type": "text/html", "file_name": "x"})
    assert status == 422 and refused["detail"][0]["loc"] == ["body", "content_type"]


def test_a_request_cancelled_while_queued_sends_its_webhook_once(api, web):
    web.routes["/hook-cancel"] = LocalWeb.static(200, b"{}", {"Content-Type": "application/json"})
    _, slow = post(api, QUEUE, {"prompt": "slow", **SLOW})
    _, queued = post(api, f"{QUEUE}?fal_webhook={web.url}/hook-cancel", {"prompt": "queued", **FAST})
    assert post(api, f"{QUEUE}/requests/{queued['request_id']}/cancel", b"", "PUT")[0] == 202
    post(api, f"{QUEUE}/requests/{slow['request_id']}/cancel", b"", "PUT")
    web.finish("/hook-cancel")
    status, answer = post(api, f"{QUEUE}/requests/{queued['request_id']}", None, "GET")
    hook = json.loads(web.bodies["/hook-cancel"])
    assert status == 499 and hook["status"] == "ERROR" and hook["payload"] == answer  # fal's answer to a cancel
    time.sleep(1)
    assert web.hits["/hook-cancel"] == 1


def test_multipart_upload_as_the_javascript_client_sends_large_files(api, tmp_path):
    """The client's multipart protocol (used above 90 MB), here with small parts: initiate, PUT each part to
    `<upload_url>/<n>`, POST `<upload_url>/complete` with the parts; the file is then the parts joined."""
    clip = e2e_workflows.write_video(tmp_path / "clip.mp4", frames=9).read_bytes()
    status, started = post(api, "/rest/storage/upload/initiate-multipart?storage_type=fal-cdn-v3",
                           {"content_type": "video/mp4", "file_name": "clip.mp4"})
    assert status == 200, started
    base, query = started["upload_url"].split("?")
    route = base[len(api.url):]
    parts = []
    for number, piece in enumerate((clip[:1000], clip[1000:]), 1):
        status, answer = post(api, f"{route}/{number}?{query}", piece, "PUT",
                              {"Content-Type": "application/octet-stream"})
        assert status == 200 and answer["partNumber"] == number, answer
        parts.append(answer)
    assert post(api, f"{route}/complete?{query}", {"parts": parts})[0] == 200
    request = urllib.request.Request(started["file_url"], headers={"Authorization": "Key test-key"})
    with urllib.request.urlopen(request, timeout=30, context=api.ssl_context) as response:
        assert response.read() == clip and response.headers["Content-Type"] == "video/mp4"
    assert post(api, f"{route}/1?upload_token=wrong", b"x", "PUT")[0] == 404


def test_restart_keeps_finished_results_and_fails_unfinished_ones(api, tls):
    """Last in the module: it turns on an API key."""
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
                 api.workdir / "input" / f"ltxv097_api_{uuid.uuid4()}_0_image.png",
                 api.models_dir / "loras" / "ltx097_downloads" / ".big-0123456789ab.safetensors.x9y8z7w6.part"]
    users = [api.output_dir / ".notes.part", api.workdir / "input" / "ltxv097_api_notes.png",
             api.output_dir / "clip.mp4.part", api.models_dir / "loras" / "ltx097_downloads" / "notes.txt"]
    for path in leftovers + users:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    api.api_key = "sekrit"  # every route needs it now, the readiness check too
    api.start()
    assert not any(path.exists() for path in leftovers) and all(path.exists() for path in users)
    key = {"Authorization": "Key sekrit"}
    assert post(api, f"{QUEUE}/requests/{done['request_id']}", None, "GET")[0] == 401
    assert post(api, QUEUE, {"prompt": "p"}, headers={"Authorization": "Key wrong"})[0] == 401
    status, output = post(api, f"{QUEUE}/requests/{done['request_id']}", None, "GET", key)
    assert status == 200
    check_output(api, output, prompt="kept", seed=77)  # its URL opens that mp4 without a key: a signed token
    plain, _, token = output["video"]["url"].partition("?token=")
    assert len(token) == 64
    for url in (plain, f"{plain}?token={'0' * 64}", f"{api.url}/view?filename={output['video']['file_name']}"
                f"&subfolder=ltxv097_api&type=output", f"{api.url}/history"):
        try:
            urllib.request.urlopen(url, timeout=30, context=api.ssl_context)
            raise AssertionError(f"{url} answered without a key")
        except urllib.error.HTTPError as refused:
            assert refused.code == 401, url
    for lost in (running, queued):
        status, state = post(api, f"{QUEUE}/requests/{lost['request_id']}/status", None, "GET", key)
        assert status == 200 and state["status"] == "COMPLETED" and state["error_type"] == "server_restarted"
        status, answer = post(api, f"{QUEUE}/requests/{lost['request_id']}", None, "GET", key)
        assert status == 500 and "stopped before this request finished" in answer["detail"]
    fetched = python_client(api, tls, "result", {"request_id": done["request_id"]}, key="sekrit")
    assert fetched["result"] == output
