"""What the hosted service's API takes and refuses at submit, on the session's API server: a 422 naming the field
for every bad value, null, type, URL, media file and webhook, never a URL's secret in an answer, a record or the
log; a LoRA that fails while running answers as a bad field; 404s and every error as JSON with a detail.
"""

from __future__ import annotations

import base64
import json
import shutil
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest
import torch

from mp4 import write_mp4
from support import e2e_workflows, tiny, tiny_lora
from support.local_web import LocalWeb
from support.service_server import FAST, MAX_IMAGE_BYTES, QUEUE, check_output, download, post, python_client

pytest_plugins = ["support.service_server"]


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


def test_condition_fields_are_checked_and_expand_prompt_needs_the_node(api, api_tls):
    status, answer = post(api, QUEUE, {"prompt": "p", "image_url": "https://example.com/a.png",
                                       "strength": 1.5, "start_frame_number": -1})
    assert status == 422 and {tuple(d["loc"]) for d in answer["detail"]} == {
        ("body", "strength"), ("body", "start_frame_number")}
    node_inputs = api.object_info("LTX097TextToVideo")["input"]
    if "expand_prompt" not in {**node_inputs["required"], **node_inputs.get("optional", {})}:
        seen = python_client(api, api_tls, "invalid", {"prompt": "p", "expand_prompt": True})
        assert seen["status"] == 422 and seen["detail"][0]["loc"] == ["body", "expand_prompt"]
        assert "not available" in seen["detail"][0]["msg"]


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


def test_bad_media_and_webhooks_get_422s(api, api_web, tmp_path):
    api_web.routes["/page.png"] = LocalWeb.static(200, b"<html>not an image</html>", {"Content-Type": "image/png"})
    api_web.routes["/big.png"] = LocalWeb.static(200, b"\x89PNG\r\n\x1a\n" + bytes(MAX_IMAGE_BYTES),
                                             {"Content-Type": "image/png"})
    png = "data:image/png;base64," + base64.b64encode(
        e2e_workflows.write_image(tmp_path / "b.png").read_bytes()).decode()
    whole = {name: e2e_workflows.write_image(tmp_path / f"c.{name}").read_bytes() for name in ("png", "jpg")}
    write_mp4(str(tmp_path / "c.mp4"), torch.rand(17, 64, 64, 3), 24.0)  # faststart: its header is whole when cut
    clip = (tmp_path / "c.mp4").read_bytes()
    api_web.routes["/cut.png"] = LocalWeb.static(200, whole["png"][: len(whole["png"]) // 2])
    api_web.routes["/cut.mp4"] = LocalWeb.static(200, clip[: len(clip) * 2 // 3])
    cut_jpeg = "data:image/jpeg;base64," + base64.b64encode(whole["jpg"][: len(whole["jpg"]) // 2]).decode()
    cases = [
        ({"image_url": f"{api_web.url}/cut.png"}, "image_url", "file_damaged", "damaged or cut-short image"),
        ({"image_url": cut_jpeg}, "image_url", "file_damaged", "damaged or cut-short image"),
        ({"video_url": f"{api_web.url}/cut.mp4"}, "video_url", "file_damaged", "damaged or cut-short video"),
        ({"image_url": f"{api_web.url}/page.png"}, "image_url", "file_type", "is not an image file"),
        ({"image_url": f"{api_web.url}/big.png"}, "image_url", "file_download_error", "allowed"),
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


def test_slow_downloads_of_other_requests_never_delay_a_submit(api, api_web, tmp_path):
    """Six video downloads trickling just above the minimum rate once took every thread that media fetching and
    webhooks shared: a submit with media then waited for them (issue 17, 4). Now it is answered while they run."""
    release = threading.Event()
    slow = [f"/slow{number}.mp4" for number in range(6)]
    for route in slow:
        api_web.steady(route, b"\0\0\0\x18ftypisom", release)
    answers: dict[str, tuple] = {}

    def submit_slow(route: str) -> None:
        answers[route] = post(api, QUEUE, {"prompt": "p", **FAST, "video_url": api_web.url + route})

    threads = [threading.Thread(target=submit_slow, args=(route,)) for route in slow]
    try:
        for thread in threads:
            thread.start()
        while len([route for route in slow if api_web.sent.get(route)]) < len(slow):  # all six are being sent
            time.sleep(0.1)
        api_web.routes["/quick.png"] = LocalWeb.static(200, e2e_workflows.write_image(tmp_path / "q.png").read_bytes())
        status, body = post(api, QUEUE, {"prompt": "while others download", **FAST,
                                         "image_url": f"{api_web.url}/quick.png"})
        assert status == 200 and body["status"] == "IN_QUEUE", body
        assert not any(route in api_web.done for route in slow) and not answers, \
            "the submit was answered only after the slow downloads ended"
    finally:
        release.set()
        for thread in threads:
            thread.join(timeout=60)
    assert all(answers[route][0] == 422 and answers[route][1]["detail"][0]["loc"] == ["body", "video_url"]
               for route in slow), answers
    while post(api, f"{QUEUE}/requests/{body['request_id']}/status", None, "GET")[1]["status"] != "COMPLETED":
        time.sleep(0.3)


def test_secrets_in_urls_stay_out_of_history_metadata_records_logs_and_errors(api, api_web, tmp_path):
    """A LoRA URL's token reached the mp4's metadata and /history; a webhook with user:pass@ was stored in clear; a
    422 echoed a URL's credentials (issue 17, 3)."""
    transformer = tiny.reference_transformer(tiny.transformer_config())
    lora = tiny_lora.random_lora(tiny_lora.linear_modules(transformer), rank=4, seed=3)
    tiny_lora.write_lora(tmp_path / "style.safetensors", lora, tiny_lora.FORMATS[0], alpha=4.0)
    api_web.routes["/style.safetensors?sig=s3cr3t-lora"] = LocalWeb.static(
        200, (tmp_path / "style.safetensors").read_bytes())
    api_web.routes["/hook?secret=s3cr3t-hook"] = LocalWeb.static(200, b"{}", {"Content-Type": "application/json"})
    hook = urllib.parse.quote(f"{api_web.url}/hook?secret=s3cr3t-hook", safe="")
    status, body = post(api, f"{QUEUE}?fal_webhook={hook}", {"prompt": "with a private LoRA", **FAST, "loras": [
        {"path": f"{api_web.url}/style.safetensors?sig=s3cr3t-lora"}]})
    assert status == 200, body
    while (state := post(api, f"{QUEUE}/requests/{body['request_id']}/status", None, "GET")[1])["status"] != \
            "COMPLETED":
        time.sleep(0.3)
    assert state.get("error") is None and api_web.hits["/style.safetensors?sig=s3cr3t-lora"] == 1, state
    _, output = post(api, f"{QUEUE}/requests/{body['request_id']}", None, "GET")
    api_web.finish("/hook?secret=s3cr3t-hook")
    assert json.loads(api_web.bodies["/hook?secret=s3cr3t-hook"])["status"] == "OK", "the webhook got its query string"
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


def test_a_lora_that_fails_while_running_answers_422_naming_it_and_its_webhook_carries_that_body(api, api_web):
    api_web.routes["/gone.safetensors"] = LocalWeb.static(404, b"not found")
    api_web.routes["/hook-lora"] = LocalWeb.static(200, b"{}", {"Content-Type": "application/json"})
    status, body = post(api, f"{QUEUE}?fal_webhook={api_web.url}/hook-lora",
                        {"prompt": "p", **FAST, "loras": [{"path": "owner/repo", "scale": 0},
                                                          {"path": f"{api_web.url}/gone.safetensors"}]})
    assert status == 200, body
    while (state := post(api, f"{QUEUE}/requests/{body['request_id']}/status", None, "GET")[1])["status"] != \
            "COMPLETED":
        time.sleep(0.2)
    assert state["error_type"] == "lora_error" and "404" in state["error"], state
    status, answer = post(api, f"{QUEUE}/requests/{body['request_id']}", None, "GET")
    assert status == 422 and answer["detail"][0]["loc"] == ["body", "loras", 1, "path"], answer
    assert str(api.workdir) not in json.dumps(answer)
    api_web.finish("/hook-lora")
    hook = json.loads(api_web.bodies["/hook-lora"])
    assert hook["status"] == "ERROR" and hook["payload"] == answer and api_web.hits["/hook-lora"] == 1


CAT_EXAMPLE = ("A close-up reveals a fluffy ginger tabby cat, its fur a vibrant mix of orange, cream, and black, "
               "walking delicately along a sun-drenched sidewalk.")
"""The service page's example call (its prompt, shortened)."""


def test_switched_on_features_without_their_models_fail_at_submit_with_the_way_out(api, api_tls, tmp_path):
    checker = api.models_dir / "safety_checker" / "nsfw_image_detection"
    moved = tmp_path / "checker"
    shutil.move(checker, moved)
    try:
        seen = python_client(api, api_tls, "invalid", {"prompt": CAT_EXAMPLE})  # the page's example, as it is
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


def test_unknown_request_ids_are_404(api):
    for route in (f"{QUEUE}/requests/{uuid.uuid4()}/status", f"{QUEUE}/requests/{uuid.uuid4()}",
                  f"{QUEUE}/requests/not-an-id/status"):
        status, answer = post(api, route, None, "GET")
        assert status == 404 and "not found" in answer["detail"]
    assert post(api, f"{QUEUE}/requests/{uuid.uuid4()}/cancel", b"", "PUT")[0] == 404


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
