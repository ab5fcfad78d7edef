"""The hosted service's queue on the session's API server: requests in order with their positions, cancels (in the
queue, running, from ComfyUI's UI) and their webhooks, identical files for identical requests, and a restart that
keeps finished results, fails the unfinished ones clearly and turns on an API key (then puts the server back).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid

from support import service_kit
from support.local_web import LocalWeb
from support.service_server import FAST, QUEUE, SLOW, check_output, download, post, python_client, wait_idle

pytest_plugins = ["support.service_server"]


def test_ten_requests_run_in_order_and_a_cancelled_one_ends_cancelled(api):
    wait_idle(api)  # the positions below count from an idle queue
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


def test_an_interrupt_from_comfyuis_ui_cancels_the_api_request(api):
    """The UI's Cancel (ComfyUI's POST /interrupt) ends a running API request as cancelled, answered as fal answers a
    cancelled request (499), not as a server error."""
    wait_idle(api)  # so that the request behind this one has none ahead of it
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


def test_a_request_cancelled_while_queued_sends_its_webhook_once(api, api_web):
    api_web.routes["/hook-cancel"] = LocalWeb.static(200, b"{}", {"Content-Type": "application/json"})
    _, slow = post(api, QUEUE, {"prompt": "slow", **SLOW})
    _, queued = post(api, f"{QUEUE}?fal_webhook={api_web.url}/hook-cancel", {"prompt": "queued", **FAST})
    assert post(api, f"{QUEUE}/requests/{queued['request_id']}/cancel", b"", "PUT")[0] == 202
    post(api, f"{QUEUE}/requests/{slow['request_id']}/cancel", b"", "PUT")
    api_web.finish("/hook-cancel")
    status, answer = post(api, f"{QUEUE}/requests/{queued['request_id']}", None, "GET")
    hook = json.loads(api_web.bodies["/hook-cancel"])
    assert status == 499 and hook["status"] == "ERROR" and hook["payload"] == answer  # fal's answer to a cancel
    time.sleep(1)
    assert api_web.hits["/hook-cancel"] == 1


def test_restart_keeps_finished_results_and_fails_unfinished_ones(api, api_tls):
    """It turns on an API key; the session's other tests then get the server back as it was."""
    _, done = post(api, QUEUE, {"prompt": "kept", **FAST, "seed": 77})
    while post(api, f"{QUEUE}/requests/{done['request_id']}/status", None, "GET")[1]["status"] != "COMPLETED":
        time.sleep(0.3)
    _, running = post(api, QUEUE, {"prompt": "running", **service_kit.SMALL, "number_of_steps": 60})
    _, queued = post(api, QUEUE, {"prompt": "queued", **FAST})
    while post(api, f"{QUEUE}/requests/{running['request_id']}/status", None, "GET")[1]["status"] == "IN_QUEUE":
        time.sleep(0.1)
    api.stop()
    config_path = api.workdir / "user" / "ltxv097_api.json"
    settings = config_path.read_text()
    config_path.write_text(json.dumps({**json.loads(settings), "api_keys": ["sekrit"]}))
    try:
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
        fetched = python_client(api, api_tls, "result", {"request_id": done["request_id"]}, key="sekrit")
        assert fetched["result"] == output
    finally:
        api.stop()
        config_path.write_text(settings)
        api.api_key = None
        api.start()
