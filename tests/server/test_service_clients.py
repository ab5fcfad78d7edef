"""The hosted service's API driven by its two official clients, unmodified, on the session's API server.

`@fal-ai/client` (npm) runs the documented `fal.subscribe` snippet, uploads files (whole and multipart) and streams
status; `fal-client` (PyPI) submits, polls with logs, fetches results, subscribes, runs and cancels, pointed at the
server by its host variables and a self-signed CA; both send image-to-video and multiconditioning requests, and a
start timeout and a low priority.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.request
import uuid
from pathlib import Path

from support import e2e_workflows, service_kit
from support.local_web import LocalWeb
from support.service_server import (
    API_CLIENTS,
    CLIENT_TIMEOUT,
    CLIENTS_DIR,
    FAST,
    SLOW,
    check_output,
    client_result,
    javascript_client,
    post,
    python_client,
)

pytest_plugins = ["support.service_server"]


def test_javascript_client_runs_the_documented_subscribe(api, api_tls, tmp_path):
    assert (CLIENTS_DIR / "node_modules" / "@fal-ai" / "client").is_dir(), \
        "@fal-ai/client is not installed: run scripts/setup_api_clients.sh (make test does)"
    script = tmp_path / "node"
    shutil.copytree(CLIENTS_DIR, script / "clients", symlinks=True, ignore=shutil.ignore_patterns("*.mjs"))
    shutil.copy(API_CLIENTS / "subscribe.mjs", script / "clients" / "subscribe.mjs")
    env = {**os.environ, "LTXV097_API_URL": api.url, "FAL_KEY": "test-key", "NODE_EXTRA_CA_CERTS": str(api_tls[0]),
           "LTXV097_API_INPUT": json.dumps(service_kit.SMALL)}
    completed = subprocess.run(["node", str(script / "clients" / "subscribe.mjs")], env=env, capture_output=True,
                               text=True, timeout=CLIENT_TIMEOUT)
    result = client_result(completed)
    check_output(api, result["data"], prompt="A red fox trots through fresh snow at dawn")
    assert uuid.UUID(result["requestId"])
    printed = completed.stdout.splitlines()  # forEach(console.log) also prints each line's index and the list
    for message in ("encode: prompt and negative prompt (T5)", "pass 1: step 2/2", "decode: latents to frames (VAE)"):
        assert any(line.startswith(message + " ") for line in printed), completed.stdout


def test_python_client_queue_status_logs_and_result(api, api_tls):
    seen = python_client(api, api_tls, "queue_steps", {"prompt": "waves at dusk", "seed": 1234, **FAST})
    final = seen["statuses"][-1]
    assert final["type"] == "Completed" and final["error"] is None and final["metrics"]["inference_time"] > 0
    messages = [log["message"] for log in final["logs"]]
    assert messages[0] == "encode: prompt and negative prompt (T5)" and "pass 1: step 1/1" in messages
    assert messages[-1].startswith("save: 9 frames of 480×480 px at 12 fps")
    check_output(api, seen["result"], prompt="waves at dusk", seed=1234)
    # the request ran on ComfyUI's own queue under its request id (so the UI shows it too)
    assert api.history(seen["request_id"])["status"]["status_str"] == "success"


def test_python_client_subscribe_and_run(api, api_tls):
    subscribed = python_client(api, api_tls, "subscribe", {"prompt": "a lighthouse", **FAST, "reverse_video": True})
    check_output(api, subscribed["result"], prompt="a lighthouse")
    assert subscribed["updates"][-1]["type"] == "Completed"
    assert any(update["type"] == "InProgress" for update in subscribed["updates"])
    ran = python_client(api, api_tls, "run", {"prompt": "a tram in the rain", **FAST, "frame_rate": 8})
    check_output(api, ran["result"], prompt="a tram in the rain", fps=8.0)


def test_python_client_cancels_a_running_request(api, api_tls):
    seen = python_client(api, api_tls, "cancel_running", {"prompt": "a slow one", **service_kit.SMALL,
                                                      "number_of_steps": 40})
    assert seen["final"]["type"] == "Completed" and seen["final"]["error_type"] == "request_cancelled"
    assert seen["result_error"]["status"] == 499  # what fal answers for a cancelled request
    assert api.history(seen["request_id"])["status"]["status_str"] == "error"


def test_image_url_condition_and_webhook(api, api_tls, api_web, tmp_path):
    api_web.routes["/start.png"] = LocalWeb.static(200, e2e_workflows.write_image(tmp_path / "a.png").read_bytes(),
                                               {"Content-Type": "image/png"})
    api_web.routes["/hook"] = LocalWeb.static(200, b"{}", {"Content-Type": "application/json"})
    seen = python_client(api, api_tls, "with_webhook", {
        "prompt": "from an image", **FAST, "image_url": f"{api_web.url}/start.png", "start_frame_number": 0,
        "strength": 0.9, "webhook": f"{api_web.url}/hook"})
    check_output(api, seen["result"], prompt="from an image")
    assert api_web.hits["/start.png"] == 1
    api_web.finish("/hook")
    hook = json.loads(api_web.bodies["/hook"])
    assert hook == {"request_id": seen["request_id"], "gateway_request_id": seen["request_id"], "status": "OK",
                    "payload": seen["result"]}
    assert not list((api.workdir / "input").glob("ltxv097_api_*"))  # the condition file was cleaned up


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


def test_javascript_client_uploads_a_photo_and_sends_a_blob_to_image_to_video(api, api_tls, tmp_path):
    image = photo(tmp_path / "photo.jpg")
    arguments = {"image": str(image), "input": {"prompt": "the photo comes alive", **FAST}}
    uploaded = javascript_client(api, api_tls, "upload_image_to_video", arguments, tmp_path)
    assert uploaded["url"].startswith(f"{api.url}/ltxv097_api/uploads/"), uploaded["url"]
    check_output(api, uploaded["data"], prompt="the photo comes alive")
    request = urllib.request.Request(uploaded["url"], headers={"Authorization": "Key test-key"})
    with urllib.request.urlopen(request, timeout=30, context=api.ssl_context) as response:
        assert response.read() == image.read_bytes()  # kept as sent; the request read it from disk, not the network
    blob = javascript_client(api, api_tls, "blob_image_to_video", arguments, tmp_path)
    check_output(api, blob["data"], prompt="the photo comes alive")


def test_python_client_sends_a_768x512_jpeg_through_encode_image(api, api_tls, tmp_path):
    seen = python_client(api, api_tls, "encoded_image_to_video", {"image": str(photo(tmp_path / "photo.jpg")),
                                                              "prompt": "from a photo", **FAST})
    assert seen["image_url_chars"] > 20_000  # longer than the prompt's limit, far below the image limit
    check_output(api, seen["result"], prompt="from a photo")


def test_multiconditioning_from_both_clients(api, api_tls, tmp_path):
    image = photo(tmp_path / "photo.jpg")
    video = e2e_workflows.write_video(tmp_path / "clip.mp4", frames=9)
    arguments = {"image": str(image), "video": str(video), "input": {"prompt": "keyframes", **FAST,
                                                                     "number_of_frames": 17}}
    ran = javascript_client(api, api_tls, "multiconditioning", arguments, tmp_path)
    check_output(api, ran["data"], prompt="keyframes", frames=17)
    seen = python_client(api, api_tls, "multiconditioning", {"image": str(image), "video": str(video),
                                                         "prompt": "keyframes", **FAST, "number_of_frames": 17})
    check_output(api, seen["result"], prompt="keyframes", frames=17)
    refused = python_client(api, api_tls, "invalid", {"endpoint": f"{service_kit.APP_ID}/image-to-video",
                                                      "prompt": "p"})
    assert refused["status"] == 422 and refused["detail"][0]["loc"] == ["body", "image_url"]


def test_status_stream_and_streaming_subscribe(api, api_tls, tmp_path):
    seen = javascript_client(api, api_tls, "stream", {"input": {"prompt": "a stream", **FAST}}, tmp_path)
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


def test_start_timeout_and_low_priority_from_both_clients(api, api_tls, tmp_path):
    seen = python_client(api, api_tls, "low_priority_and_start_timeout", {"slow": {"prompt": "slow", **SLOW},
                                                                      "input": {"prompt": "quick", **FAST}})
    assert seen["late"]["status"] == 504 and seen["late"]["timeout_type"] == "user", seen["late"]
    assert "did not start within 2 s" in seen["late"]["detail"]
    assert seen["positions"]["normal"] < seen["positions"]["low"], seen["positions"]
    order = [prompt_id for prompt_id in api.get_json("/history") if prompt_id in seen["ids"].values()]
    assert order == [seen["ids"]["normal"], seen["ids"]["low"]]
    ran = javascript_client(api, api_tls, "timeout_and_priority", {"slow": {"prompt": "slow", **SLOW},
                                                                "input": {"prompt": "quick", **FAST}}, tmp_path)
    assert ran["late"]["status"] == 504 and ran["late"]["timeoutType"] == "user", ran["late"]
    assert ran["late"]["requestId"] == ran["ids"]["late"]
    assert ran["normalPosition"] < ran["lowPosition"]


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
