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


def result(arguments: dict) -> dict:
    return {"result": fal_client.result(APP, arguments["request_id"])}


def invalid(arguments: dict) -> dict:
    try:
        fal_client.submit(APP, arguments=arguments)
    except fal_client.client.FalClientHTTPError as error:
        return {"status": error.status_code, "detail": error.response.json()["detail"]}
    return {"status": 200}


if __name__ == "__main__":
    scenario, arguments = sys.argv[1], json.loads(sys.argv[2])
    print("RESULT " + json.dumps(globals()[scenario](arguments)))
