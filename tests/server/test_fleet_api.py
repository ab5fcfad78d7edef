"""The fleet mode on this machine: a throwaway PostgreSQL and two real ComfyUI workers with the tiny models on
the CPU, sharing one storage folder, driven by the service's official clients and plain HTTP.

Any instance answers for any request (its status stream too, and files uploaded through another); idle workers
take the next job, best priority first, never one past its X-Fal-Request-Timeout; a worker killed mid-job loses nothing;
cancels reach the worker running the job; a restart of everything (PostgreSQL included) keeps results and runs
the waiting jobs; bad database settings answer 503 with the reason while ComfyUI's UI keeps working.
"""

from __future__ import annotations

import io
import json
import shutil
import urllib.error
import urllib.request

import pytest
from PIL import Image

from support import service_kit
from support.fleet_kit import (
    FAST,
    QUEUE,
    call,
    client_result,
    decoded_frames,
    fetch,
    fleet_server,
    in_history,
    rows,
    runs_on,
    start_js_subscribe,
    start_member,
    start_python_client,
    status,
    wait_until,
    worker_of,
)
from support.local_web import LocalWeb
from support.pg_server import PgServer

LEASE_SECONDS = 10
"""Short enough for a crash test, long enough that a busy CPU never delays a renewal past it."""
SLOW = {**service_kit.SMALL, "number_of_steps": 40}
"""Long enough to be caught running (and stopped), on any CPU."""
MEDIUM = {**service_kit.SMALL, "number_of_steps": 12}


def answer(server, route: str) -> tuple[int, dict, dict]:
    """(HTTP status, headers, JSON body) of a GET."""
    try:
        with urllib.request.urlopen(server.url + route, timeout=60, context=server.ssl_context) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


def upload(server, data: bytes, content_type: str) -> str:
    """The storage API as `fal.storage.upload` calls it (initiate, then PUT the bytes); returns the file_url."""
    started = call(server, "/rest/storage/upload/initiate?storage_type=fal-cdn-v3",
                   {"content_type": content_type, "file_name": "frame.png"}, "POST")
    assert started[0] == 200, started
    put = urllib.request.Request(started[1]["upload_url"], data=data, method="PUT",
                                 headers={"Content-Type": content_type})
    with urllib.request.urlopen(put, timeout=60, context=server.ssl_context) as response:
        assert response.status == 200
    return started[1]["file_url"]


def stream_events(server, request_id: str) -> tuple[dict, list[dict]]:
    """(headers, the data events) of the status stream, read to its end."""
    route = f"{QUEUE}/requests/{request_id}/status/stream?logs=1"
    with urllib.request.urlopen(server.url + route, timeout=240, context=server.ssl_context) as response:
        text = response.read().decode()
        return dict(response.headers), [json.loads(line[len("data: "):]) for line in text.splitlines()
                                        if line.startswith("data: ")]


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return service_kit.make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def pg():
    with PgServer() as server:
        yield server


@pytest.fixture(scope="module")
def web():
    """A local web server for the webhook (the only private host the instances may reach)."""
    server = LocalWeb()
    yield server
    server.close()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, tls, pg, web):
    """Two workers (A, B) on one database and one storage folder (started one after the other: a server started
    from a thread would die with that thread, see comfy_server._die_with_parent)."""
    storage = tmp_path_factory.mktemp("storage")
    first = fleet_server(tmp_path_factory.mktemp("a"), pg.url, storage, tls=tls, lease_seconds=LEASE_SECONDS)
    second = fleet_server(tmp_path_factory.mktemp("b"), pg.url, storage, tls=tls, models_from=first,
                          lease_seconds=LEASE_SECONDS)
    servers = [first, second]
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LTX097_URL_ALLOW_HOSTS", f"127.0.0.1:{web.port}")
        try:
            for server in servers:
                start_member(server)
            yield servers
        finally:
            for server in servers:
                server.stop()


def test_any_instance_answers_for_requests_the_others_took(fleet, pg, tls, web, tmp_path):
    a, b = fleet
    web.routes["/hook"] = LocalWeb.static(200, b"{}", {"Content-Type": "application/json"})
    hooked = call(a, f"{QUEUE}?fal_webhook={web.url}/hook", {"prompt": "with a webhook", **FAST}, "POST")[1]
    python = start_python_client(b, tls[0], "queue_steps", {"prompt": "from fal-client", **FAST, "seed": 9})
    javascript = start_js_subscribe(a, tls[0], FAST, tmp_path)
    submitted = []
    for number in range(6):
        gateway = fleet[number % 2]
        code, body = call(gateway, QUEUE, {"prompt": f"fleet {number % 3}", **FAST, "seed": number % 3}, "POST")
        assert code == 200 and body["status"] == "IN_QUEUE", body
        submitted.append((gateway, body["request_id"]))
    for number, (gateway, request_id) in enumerate(submitted):
        other = b if gateway is a else a
        final = wait_until(other, request_id, ("COMPLETED",))
        assert final.get("error") is None, (final, [server.log_tail(3000) for server in fleet])
        code, output = call(other, f"{QUEUE}/requests/{request_id}")
        assert code == 200 and output["seed"] == number % 3 and output["prompt"] == f"fleet {number % 3}"
        assert output["video"]["url"].startswith(other.url + "/")
        data = fetch(other, output["video"]["url"])
        assert len(data) == output["video"]["file_size"]
        facts = service_kit.mp4_facts(data, other.workdir)
        assert facts == {"frames": 9, "width": 480, "height": 480, "fps": 12.0}
    seen, _ = client_result(python)  # status with logs polled from B while whichever worker ran it
    messages = [log["message"] for log in seen["statuses"][-1]["logs"]]
    assert messages[0] == "encode: prompt and negative prompt (T5)" and "pass 1: step 1/1" in messages
    assert seen["result"]["seed"] == 9 and len(fetch(b, seen["result"]["video"]["url"])) == \
        seen["result"]["video"]["file_size"]
    subscribed, printed = client_result(javascript)  # the documented subscribe, its live log lines printed
    assert subscribed["data"]["prompt"] == "A red fox trots through fresh snow at dawn"
    assert any(line.startswith("encode: prompt and negative prompt (T5) ") for line in printed.splitlines())
    wait_until(b, hooked["request_id"], ("COMPLETED",))
    web.finish("/hook")
    hook = json.loads(web.bodies["/hook"])
    assert hook["request_id"] == hooked["request_id"] and hook["status"] == "OK"
    assert hook["payload"] == call(a, f"{QUEUE}/requests/{hooked['request_id']}")[1]  # the URL names A, as called
    workers = rows(pg.url, "SELECT worker, count(*) FROM ltxv097_jobs GROUP BY worker")
    assert len(workers) == 2, workers  # both workers ran some
    # both instances sign (and check) result URLs with one secret, the first to start made it (test_pg_queue.py)
    assert rows(pg.url, "SELECT name, length(value) FROM ltxv097_secrets") == [("gate", 64)]
    videos = {}
    for number, (gateway, request_id) in enumerate(submitted):  # the same input gives the same video anywhere
        output = call(gateway, f"{QUEUE}/requests/{request_id}")[1]
        videos.setdefault(number % 3, set()).add(decoded_frames(fetch(gateway, output["video"]["url"]),
                                                                gateway.workdir))
    assert [len(same) for same in videos.values()] == [1, 1, 1]
    assert web.hits["/hook"] == 1  # once, whichever instance ended it


def test_priorities_start_timeouts_and_cancels_through_another_instance(fleet, pg, web):
    a, b = fleet
    for route in ("/late", "/cancelled"):
        web.routes[route] = LocalWeb.static(200, b"{}", {"Content-Type": "application/json"})
    running = [call(a, QUEUE, {"prompt": f"long {n}", **SLOW}, "POST")[1]["request_id"] for n in range(2)]
    for request_id in running:
        wait_until(b, request_id, ("IN_PROGRESS",))
    low = call(b, f"{QUEUE}?fal_webhook={web.url}/cancelled", {"prompt": "low", **FAST}, "POST",
               {"X-Fal-Queue-Priority": "low"})[1]
    normal = call(a, QUEUE, {"prompt": "normal", **FAST}, "POST")[1]
    assert low["queue_position"] == 0 and normal["queue_position"] == 0
    assert status(a, low["request_id"])["queue_position"] == 1  # behind the normal one, fleet-wide
    assert status(b, normal["request_id"])["queue_position"] == 0
    bad = call(a, QUEUE, {"prompt": "p"}, "POST", {"X-Fal-Queue-Priority": "urgent"})
    assert bad[0] == 422 and [entry["loc"] for entry in bad[1]["detail"]] == [["header", "x-fal-queue-priority"]]
    late = call(b, f"{QUEUE}?fal_webhook={web.url}/late", {"prompt": "late", **FAST}, "POST",
                {"X-Fal-Request-Timeout": "2"})[1]
    assert status(a, late["request_id"])["queue_position"] == 1  # behind the normal one, ahead of the low one
    wait_until(a, late["request_id"], ("COMPLETED",))  # the busy workers never took it: it timed out waiting
    code, headers, body = answer(a, f"{QUEUE}/requests/{late['request_id']}")
    assert code == 504 and headers.get("x-fal-request-timeout-type") == "user", (code, headers, body)
    assert body["error_type"] == "request_timeout" and "did not start within 2 s" in body["detail"], body
    assert headers.get("x-fal-request-id") == late["request_id"]
    web.finish("/late")
    hook = json.loads(web.bodies["/late"])
    assert hook["request_id"] == late["request_id"] and hook["status"] == "ERROR"
    assert hook["payload"] == body
    for waiting in (low, normal):  # cancelled through the other instance, they never run
        assert call(a if waiting is low else b, f"{QUEUE}/requests/{waiting['request_id']}/cancel", {},
                    "PUT") == (202, {"status": "CANCELLATION_REQUESTED"})
    for request_id in running:  # each running job cancelled through the instance that does not run it
        worker, _ = worker_of(pg.url, request_id)
        other = b if runs_on(a, worker) else a
        assert call(other, f"{QUEUE}/requests/{request_id}/cancel", {}, "PUT")[0] == 202
    for request_id in running + [low["request_id"], normal["request_id"]]:
        final = wait_until(a, request_id, ("COMPLETED",))
        assert final["error_type"] == "request_cancelled", final
        assert call(b, f"{QUEUE}/requests/{request_id}")[0] == 499  # as fal answers a cancelled request
    web.finish("/cancelled")  # the low one, cancelled while waiting, with a webhook
    hook = json.loads(web.bodies["/cancelled"])
    assert hook["request_id"] == low["request_id"] and hook["payload"]["error_type"] == "request_cancelled"
    assert [in_history(server, low["request_id"]) for server in fleet] == [None, None]
    assert [in_history(server, normal["request_id"]) for server in fleet] == [None, None]
    for request_id in running:  # stopped mid-run by ComfyUI's interrupt, on the worker that ran it
        assert sorted(map(str, (in_history(server, request_id) for server in fleet))) == ["None", "error"]
        assert call(a, f"{QUEUE}/requests/{request_id}/cancel", {}, "PUT")[1] == {"status": "ALREADY_COMPLETED"}
    assert in_history(a, late["request_id"]) is None and in_history(b, late["request_id"]) is None
    assert (web.hits["/late"], web.hits["/cancelled"]) == (1, 1)  # once each, whichever instance ended it


def test_an_upload_through_one_instance_serves_a_request_and_a_stream_of_another(fleet, pg):
    """The file uploaded through A is read by B, which takes the request; A streams its status and answers it."""
    a, b = fleet
    picture = io.BytesIO()
    Image.linear_gradient("L").resize((96, 64)).convert("RGB").save(picture, "PNG")
    file_url = upload(a, picture.getvalue(), "image/png")
    assert file_url.startswith(a.url + "/")
    code, body = call(b, f"{QUEUE}/image-to-video", {"prompt": "from an upload", "image_url": file_url, **FAST},
                      "POST")
    assert code == 200, body
    request_id = body["request_id"]
    headers, events = stream_events(a, request_id)
    assert headers.get("x-fal-request-id") == request_id and headers["Content-Type"].startswith("text/event-stream")
    statuses = [event["status"] for event in events]
    assert statuses[-1] == "COMPLETED" and statuses.count("COMPLETED") == 1, statuses
    assert events[-1].get("error") is None, (events[-1], [server.log_tail(3000) for server in fleet])
    messages = [line["message"] for event in events for line in event["logs"]]
    assert "encode: conditioning media (VAE)" in messages and len(messages) == len(set(messages)), messages
    code, headers, output = answer(a, f"{QUEUE}/requests/{request_id}")
    assert code == 200 and headers.get("x-fal-request-id") == request_id and output["prompt"] == "from an upload"
    assert len(fetch(a, output["video"]["url"])) == output["video"]["file_size"]
    with urllib.request.urlopen(file_url.replace(a.url, b.url), timeout=30, context=b.ssl_context) as response:
        assert response.read() == picture.getvalue()  # B serves A's upload from the shared folder
    missing = call(a, f"{QUEUE}/requests/00000000-0000-4000-8000-000000000000/status/stream")
    assert missing[0] == 404 and "not found" in missing[1]["detail"]  # JSON errors on the fleet's routes too


def test_a_killed_worker_loses_nothing_and_a_full_restart_keeps_results(fleet, pg):
    a, b = fleet
    killed = call(a, QUEUE, {"prompt": "survives a crash", **MEDIUM, "seed": 5}, "POST")[1]["request_id"]
    wait_until(b, killed, ("IN_PROGRESS",))
    worker, _ = worker_of(pg.url, killed)
    victim, survivor = (a, b) if runs_on(a, worker) else (b, a)
    victim.process.kill()  # SIGKILL: no goodbye, the lease just stops being renewed
    victim.process.wait()
    final = wait_until(survivor, killed, ("COMPLETED",))
    assert final.get("error") is None, (final, [server.log_tail(3000) for server in fleet])
    worker, attempts = worker_of(pg.url, killed)
    assert attempts == 2 and runs_on(survivor, worker)
    assert in_history(survivor, killed) == "success"
    output = call(survivor, f"{QUEUE}/requests/{killed}")[1]

    # Everything stops (the survivor while running a job, with one waiting), PostgreSQL too; then all restart.
    interrupted = call(survivor, QUEUE, {"prompt": "interrupted", **MEDIUM}, "POST")[1]["request_id"]
    waiting = call(survivor, QUEUE, {"prompt": "waiting", **FAST}, "POST")[1]["request_id"]
    wait_until(survivor, interrupted, ("IN_PROGRESS",))
    survivor.stop()
    victim.stop()
    pg.stop()
    pg.start()
    for server in fleet:
        start_member(server)
    for request_id in (interrupted, waiting):
        final = wait_until(victim, request_id, ("COMPLETED",))
        assert final.get("error") is None, (final, [server.log_tail(3000) for server in fleet])
    for server in fleet:  # the finished result is still served, by any instance
        again = call(server, f"{QUEUE}/requests/{killed}")[1]
        assert again["seed"] == 5 and again["video"]["file_name"] == output["video"]["file_name"]
        assert len(fetch(server, again["video"]["url"])) == output["video"]["file_size"]
    names = {name for (name,) in rows(pg.url, "SELECT name FROM ltxv097_workers")}
    assert any(runs_on(victim, name) for name in names)  # the killed worker rejoined under a new name


def test_running_instances_ride_out_a_database_restart(fleet, pg):
    a, b = fleet
    pg.stop()
    code, answer = call(a, f"{QUEUE}/requests/00000000-0000-4000-8000-000000000000/status")
    assert code == 503 and "job database cannot be reached" in answer["detail"], answer
    assert pg.password not in answer["detail"]
    pg.start()
    code, body = call(a, QUEUE, {"prompt": "after the restart", **FAST}, "POST")  # broken pool connections replaced
    assert code == 200, body
    final = wait_until(b, body["request_id"], ("COMPLETED",))
    assert final.get("error") is None, (final, [server.log_tail(3000) for server in fleet])


def test_a_gateway_only_instance_and_a_job_no_worker_can_run(fleet, pg):
    """B restarts as a gateway only, with a checkpoint that A lacks: A refuses the job (ComfyUI's validation),
    no live worker is left to run it, and it fails naming the refusal; B never ran anything."""
    a, b = fleet
    b.stop()
    shutil.copy(b.model_path("checkpoints", b.models["checkpoint"]),
                b.model_path("checkpoints", "only_on_b.safetensors"))
    config = b.workdir / "user" / "ltxv097_api.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "gateway_only": True,
                                  "checkpoint": "only_on_b.safetensors"}))
    start_member(b)
    code, body = call(b, QUEUE, {"prompt": "needs a file only B has", **FAST}, "POST")
    assert code == 200, body
    final = wait_until(a, body["request_id"], ("COMPLETED",))
    assert final["error_type"] == "no_worker", final
    assert final["error"].startswith("no worker of the fleet can run this request: ") and \
        "only_on_b.safetensors" in final["error"], final
    logs = [line["message"] for line in status(b, body["request_id"], logs=True)["logs"]]
    assert any(line.startswith("worker ") and "cannot run this request" in line for line in logs), logs
    assert in_history(a, body["request_id"]) is None and in_history(b, body["request_id"]) is None
    flags = {name: runs_jobs for name, runs_jobs in rows(pg.url, "SELECT name, runs_jobs FROM ltxv097_workers")}
    assert [runs for name, runs in flags.items() if runs_on(b, name)] == [False]
    assert b.get_json("/history") == {}  # the gateway ran nothing


def test_bad_database_settings_answer_503_and_the_ui_keeps_working(fleet, pg, monkeypatch):
    a, _ = fleet
    a.stop()
    monkeypatch.setenv("LTX097_API_DATABASE_URL", pg.url_with(password="wrong-password"))  # wins over the file
    a.start()
    code, answer = call(a, QUEUE, {"prompt": "p"}, "POST")
    assert code == 503 and "password authentication failed" in answer["detail"], answer
    assert "wrong-password" not in answer["detail"] and "LTX097_API_DATABASE_URL" in answer["detail"]
    assert call(a, f"{QUEUE}/requests/00000000-0000-4000-8000-000000000000/status")[0] == 503
    assert "LTX097TextToVideo" in a.object_info()  # ComfyUI itself is up
    log = a.log_text()
    assert "password authentication failed" in log and "wrong-password" not in log
