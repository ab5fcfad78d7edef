"""Drives the server with the hosted service's Python client, `fal-client`, unmodified.

The client reads its hosts from FAL_RUN_HOST / FAL_QUEUE_RUN_HOST and its CA bundle from SSL_CERT_FILE; the test
sets them. `python py_client.py <scenario> '<input JSON>'` prints one JSON line: what the scenario saw.
"""

import json
import sys
import time

import fal_client

APP = "fal-ai/ltx-video-lora"


def status_json(status) -> dict:
    return {"type": type(status).__name__, **vars(status)}


def queue_steps(arguments: dict) -> dict:
    """submit, status (with logs) until completed, result."""
    handle = fal_client.submit(APP, arguments=arguments)
    seen = [status_json(fal_client.status(APP, handle.request_id, with_logs=True))]
    while seen[-1]["type"] != "Completed":
        time.sleep(0.2)
        seen.append(status_json(fal_client.status(APP, handle.request_id, with_logs=True)))
    return {"request_id": handle.request_id, "statuses": seen, "result": fal_client.result(APP, handle.request_id)}


def subscribe(arguments: dict) -> dict:
    updates = []
    result = fal_client.subscribe(APP, arguments=arguments, with_logs=True,
                                  on_queue_update=lambda update: updates.append(status_json(update)))
    return {"result": result, "updates": updates}


def run(arguments: dict) -> dict:
    return {"result": fal_client.run(APP, arguments=arguments)}


def cancel_running(arguments: dict) -> dict:
    """submit, wait until it runs, cancel, then the final status and what result answers."""
    handle = fal_client.submit(APP, arguments=arguments)
    while not isinstance(handle.status(), fal_client.InProgress):
        time.sleep(0.05)
    fal_client.cancel(APP, handle.request_id)
    while not isinstance(status := handle.status(with_logs=True), fal_client.Completed):
        time.sleep(0.1)
    try:
        fal_client.result(APP, handle.request_id)
        answer = None
    except fal_client.client.FalClientHTTPError as error:
        answer = {"status": error.status_code, "message": str(error)}
    return {"request_id": handle.request_id, "final": status_json(status), "result_error": answer}


def with_webhook(arguments: dict) -> dict:
    """submit with a webhook URL (`arguments["webhook"]`), then the result."""
    webhook = arguments.pop("webhook")
    handle = fal_client.submit(APP, arguments=arguments, webhook_url=webhook)
    return {"request_id": handle.request_id, "result": handle.get()}


def submit_many(arguments: dict) -> dict:
    """submit each of `arguments["inputs"]` (one may carry a `webhook`); the request ids, in order."""
    ids = []
    for given in arguments["inputs"]:
        webhook = given.pop("webhook", None)
        ids.append(fal_client.submit(APP, arguments=given, webhook_url=webhook).request_id)
    return {"request_ids": ids}


def follow_many(arguments: dict) -> dict:
    """status (with logs) of each of `arguments["request_ids"]` until completed, then its result: what a client
    that did not submit them (another instance) sees."""
    followed = []
    for request_id in arguments["request_ids"]:
        while not isinstance(status := fal_client.status(APP, request_id, with_logs=True), fal_client.Completed):
            time.sleep(0.2)
        followed.append({"request_id": request_id, "logs": [log["message"] for log in status.logs or []],
                         "result": fal_client.result(APP, request_id)})
    return {"followed": followed}


def result(arguments: dict) -> dict:
    return {"result": fal_client.result(APP, arguments["request_id"])}


def invalid(arguments: dict) -> dict:
    endpoint = arguments.pop("endpoint", APP)
    try:
        fal_client.submit(endpoint, arguments=arguments)
    except fal_client.client.FalClientHTTPError as error:
        return {"status": error.status_code, "detail": error.response.json()["detail"]}
    return {"status": 200}


def encoded_image_to_video(arguments: dict) -> dict:
    """image to video with a JPEG file sent as `encode_image` makes it (the client's way to send a local file)."""
    from PIL import Image

    image_url = fal_client.encode_image(Image.open(arguments.pop("image")))
    result = fal_client.subscribe(f"{APP}/image-to-video", arguments={**arguments, "image_url": image_url})
    return {"result": result, "image_url_chars": len(image_url)}


def multiconditioning(arguments: dict) -> dict:
    """an image and a video pinned to frames, both as `encode_file` data URIs."""
    images = [{"image_url": fal_client.encode_file(arguments.pop("image")), "start_frame_number": 16}]
    videos = [{"video_url": fal_client.encode_file(arguments.pop("video")), "strength": 0.7}]
    return {"result": fal_client.run(f"{APP}/multiconditioning",
                                     arguments={**arguments, "images": images, "videos": videos})}


def low_priority_and_start_timeout(arguments: dict) -> dict:
    """a slow request, then one that must start within 2 s and a low-priority one ahead of a normal one; the slow
    one is cancelled once the late one has failed."""
    blocker = fal_client.submit(APP, arguments=arguments["slow"])
    late = fal_client.submit(APP, arguments=arguments["input"], start_timeout=2)
    low = fal_client.submit(APP, arguments=arguments["input"], priority="low")
    normal = fal_client.submit(APP, arguments=arguments["input"], priority="normal")
    positions = {"low": low.status().position, "normal": normal.status().position}
    try:
        late.get()
        late_error = None
    except fal_client.client.FalClientHTTPError as error:
        late_error = {"status": error.status_code, "detail": error.response.json()["detail"],
                      "timeout_type": error.response.headers.get("x-fal-request-timeout-type")}
    blocker.cancel()
    for handle in (low, normal):
        handle.get()
    return {"positions": positions, "late": late_error, "ids": {"low": low.request_id, "normal": normal.request_id}}


if __name__ == "__main__":
    scenario, arguments = sys.argv[1], json.loads(sys.argv[2])
    print("RESULT " + json.dumps(globals()[scenario](arguments)))
