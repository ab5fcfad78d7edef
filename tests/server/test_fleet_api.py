"""The fleet mode on this machine: a throwaway PostgreSQL and three real ComfyUI workers with the tiny models on
the CPU, sharing one storage folder, every instance behind one API key, driven by the service's official clients
and plain HTTP.

Any instance answers for any request (its status stream too, and files uploaded through another); idle workers
take the next job, best priority first, never one past its X-Fal-Request-Timeout; a worker killed mid-job loses nothing;
cancels reach the worker running the job; a restart of everything (PostgreSQL included) keeps results, runs the
waiting jobs and prunes the ones past the retention; keys are asked by every instance and a LoRA URL's secret
reaches only the worker; bad database settings answer 503 with the reason while ComfyUI's UI keeps working.
The third worker runs in the first test only, then serves as the single server the fleet's videos are compared
with.
"""

from __future__ import annotations

import io
import json
import shutil
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from PIL import Image

from support import service_kit, tiny, tiny_lora
from support.fleet_kit import (
    FAST,
    QUEUE,
    call,
    client_result,
    decoded_frames,
    fetch,
    fleet_server,
    in_history,
    js_clients,
    rows,
    runs_on,
    start_js,
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
SLOW = {**service_kit.SMALL, "resolution": "720p", "number_of_steps": 100, "enable_safety_checker": True}
"""Long enough to be caught running (and stopped), on any CPU."""
MEDIUM = {**service_kit.SMALL, "number_of_steps": 12, "enable_safety_checker": True}
KEY = "fleet-key"
"""`api_keys` of every instance."""
SETTINGS = {"lease_seconds": LEASE_SECONDS, "api_keys": [KEY], "default_enable_safety_checker": False}
"""Every instance's: the safety checker (5 of the 6 s of a 1-step job on the tiny models) has its own tests."""
PER_CLIENT = 5
"""Requests each client submits through each instance: 3 instances × 2 clients × 5 = 30."""
SEEDS = 3
"""Distinct inputs among them (each compared with the single server's video for it)."""


def answer(server, route: str) -> tuple[int, dict, dict]:
    """(HTTP status, headers, JSON body) of a GET."""
    request = urllib.request.Request(server.url + route, headers=server.key_header())
    try:
        with urllib.request.urlopen(request, timeout=60, context=server.ssl_context) as response:
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
    route = urllib.request.Request(f"{server.url}{QUEUE}/requests/{request_id}/status/stream?logs=1",
                                   headers=server.key_header())
    with urllib.request.urlopen(route, timeout=240, context=server.ssl_context) as response:
        text = response.read().decode()
        return dict(response.headers), [json.loads(line[len("data: "):]) for line in text.splitlines()
                                        if line.startswith("data: ")]


def config_of(server) -> dict:
    return json.loads((server.workdir / "user" / "ltxv097_api.json").read_text())


def fleet_inputs(first: int, webhook: str | None = None) -> list[dict]:
    """`PER_CLIENT` of the cheapest requests, numbered from `first` (seed and prompt cycle over `SEEDS`)."""
    inputs = [{"prompt": f"fleet {n % SEEDS}", **FAST, "seed": n % SEEDS} for n in range(first, first + PER_CLIENT)]
    if webhook:
        inputs[0]["webhook"] = webhook
    return inputs


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
    """Three workers (A, B, C) on one database and one storage folder, each asking for the key (started one after
    the other: a server started from a thread would die with that thread, see comfy_server._die_with_parent)."""
    storage = tmp_path_factory.mktemp("storage")
    first = fleet_server(tmp_path_factory.mktemp("a"), pg.url, storage, tls=tls, **SETTINGS)
    servers = [first] + [fleet_server(tmp_path_factory.mktemp(name), pg.url, storage, tls=tls, models_from=first,
                                      **SETTINGS) for name in "bc"]
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LTX097_URL_ALLOW_HOSTS", f"127.0.0.1:{web.port}")
        # one compute thread each: three ComfyUIs whose torch threads each want every core spin against each other
        # (a 1-step job took 15 s instead of 5 on 2 cores)
        env.setenv("OMP_NUM_THREADS", "1")
        try:
            for server in servers:
                server.api_key = KEY
                start_member(server)
            yield servers
        finally:
            for server in servers:
                server.stop()


@pytest.fixture
def pair(fleet):
    """A and B: the fleet once C left it (the first test makes it a single server)."""
    fleet[2].stop()
    return fleet[:2]


def test_thirty_requests_through_both_clients_over_three_instances_equal_a_single_servers(fleet, pg, tls, web,
                                                                                          tmp_path):
    """Each instance takes 5 requests from `fal-client` and 5 from `@fal-ai/client`, all at once; each request's
    status (with logs) and result are asked of another instance, by the same client; every worker runs some, and
    each video equals the one a single server makes for the same input (then C leaves the fleet)."""
    web.routes["/hook"] = LocalWeb.static(200, b"{}", {"Content-Type": "application/json"})
    clients = js_clients(tmp_path)
    javascript = [start_js(clients, "fleet.mjs", server, tls[0], other_url=fleet[(number + 1) % 3].url,
                           inputs=json.dumps(fleet_inputs(number * PER_CLIENT)))
                  for number, server in enumerate(fleet)]
    submits = [start_python_client(server, tls[0], "submit_many",
                                   {"inputs": fleet_inputs(number * PER_CLIENT,
                                                           f"{web.url}/hook" if number == 0 else None)})
               for number, server in enumerate(fleet)]
    submitted = [client_result(process)[0]["request_ids"] for process in submits]
    follows = [start_python_client(fleet[(number + 2) % 3], tls[0], "follow_many", {"request_ids": ids})
               for number, ids in enumerate(submitted)]
    seen = {}  # request id -> (the instance asked, its result, the log lines of its final status)
    for number, process in enumerate(follows):
        for followed in client_result(process)[0]["followed"]:
            seen[followed["request_id"]] = (fleet[(number + 2) % 3], followed["result"], followed["logs"])
    for number, process in enumerate(javascript):
        for followed in client_result(process)[0]:
            seen[followed["requestId"]] = (fleet[(number + 1) % 3], followed["data"], followed["logs"])
    assert len(seen) == 3 * 2 * PER_CLIENT
    videos = {}
    for asked, output, logs in seen.values():
        assert output["prompt"] == f"fleet {output['seed']}" and output["video"]["url"].startswith(asked.url + "/")
        assert logs[0] == "encode: prompt and negative prompt (T5)" and "pass 1: step 1/1" in logs, logs
        videos.setdefault(output["seed"], set()).add(decoded_frames(fetch(asked, output["video"]["url"]),
                                                                    asked.workdir))
    workers = rows(pg.url, "SELECT DISTINCT worker FROM ltxv097_jobs WHERE request_id = ANY(%s::uuid[])", list(seen))
    assert sorted(sum(runs_on(server, worker) for (worker,) in workers) for server in fleet) == [1, 1, 1], workers
    hooked = submitted[0][0]
    web.finish("/hook")
    hook = json.loads(web.bodies["/hook"])
    assert hook["request_id"] == hooked and hook["status"] == "OK" and web.hits["/hook"] == 1  # once, by whoever
    assert hook["payload"]["seed"] == 0 and hook["payload"]["video"]["url"].startswith(fleet[0].url + "/")
    # every instance signs (and checks) result URLs with one secret, the first to start made it (test_pg_queue.py)
    assert rows(pg.url, "SELECT name, length(value) FROM ltxv097_secrets") == [("gate", 64)]
    a, _, single = fleet
    facts = service_kit.mp4_facts(fetch(a, call(a, f"{QUEUE}/requests/{hooked}")[1]["video"]["url"]), a.workdir)
    assert facts == {"frames": 9, "width": 480, "height": 480, "fps": 12.0}

    single.stop()  # C becomes a single server (no database): the same inputs give the same videos
    config = config_of(single)
    del config["database_url"], config["storage_dir"]
    (single.workdir / "user" / "ltxv097_api.json").write_text(json.dumps(config))
    single.start()
    try:
        alone = [call(single, QUEUE, {"prompt": f"fleet {seed}", **FAST, "seed": seed}, "POST")[1]["request_id"]
                 for seed in range(SEEDS)]
        for seed, request_id in enumerate(alone):
            assert wait_until(single, request_id, ("COMPLETED",)).get("error") is None
            output = call(single, f"{QUEUE}/requests/{request_id}")[1]
            assert videos[seed] == {decoded_frames(fetch(single, output["video"]["url"]), single.workdir)}, seed
    finally:
        single.stop()  # the other tests run on A and B


def test_priorities_start_timeouts_and_cancels_through_another_instance(pair, pg, web):
    a, b = pair
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
    assert [in_history(server, low["request_id"]) for server in pair] == [None, None]
    assert [in_history(server, normal["request_id"]) for server in pair] == [None, None]
    for request_id in running:  # stopped mid-run by ComfyUI's interrupt, on the worker that ran it
        assert sorted(map(str, (in_history(server, request_id) for server in pair))) == ["None", "error"]
        assert call(a, f"{QUEUE}/requests/{request_id}/cancel", {}, "PUT")[1] == {"status": "ALREADY_COMPLETED"}
    assert in_history(a, late["request_id"]) is None and in_history(b, late["request_id"]) is None
    assert (web.hits["/late"], web.hits["/cancelled"]) == (1, 1)  # once each, whichever instance ended it


def test_an_upload_through_one_instance_serves_a_request_and_a_stream_of_another(pair, pg):
    """The file uploaded through A is read by B, which takes the request; A streams its status and answers it."""
    a, b = pair
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
    assert events[-1].get("error") is None, (events[-1], [server.log_tail(3000) for server in pair])
    messages = [line["message"] for event in events for line in event["logs"]]
    assert "encode: conditioning media (VAE)" in messages and len(messages) == len(set(messages)), messages
    code, headers, output = answer(a, f"{QUEUE}/requests/{request_id}")
    assert code == 200 and headers.get("x-fal-request-id") == request_id and output["prompt"] == "from an upload"
    assert len(fetch(a, output["video"]["url"])) == output["video"]["file_size"]
    shared = urllib.request.Request(file_url.replace(a.url, b.url), headers=b.key_header())  # keys: asked for it
    with urllib.request.urlopen(shared, timeout=30, context=b.ssl_context) as response:
        assert response.read() == picture.getvalue()  # B serves A's upload from the shared folder
    missing = call(a, f"{QUEUE}/requests/00000000-0000-4000-8000-000000000000/status/stream")
    assert missing[0] == 404 and "not found" in missing[1]["detail"]  # JSON errors on the fleet's routes too


def test_every_instance_asks_for_the_key_and_a_lora_urls_secret_reaches_only_the_worker(pair, pg, web, tmp_path):
    """Submitted with the key through A, answered through B with the key and 401 without it anywhere; the LoRA URL's
    query string (a presigned URL's signature) is downloaded by whichever worker runs it, and is in none of
    /history, the job's row, its log lines, the servers' logs or the mp4."""
    a, b = pair
    transformer = tiny.reference_transformer(tiny.transformer_config())
    lora = tiny_lora.random_lora(tiny_lora.linear_modules(transformer), rank=4, seed=3)
    tiny_lora.write_lora(tmp_path / "style.safetensors", lora, tiny_lora.FORMATS[0], alpha=4.0)
    route = "/style.safetensors?X-Amz-Signature=s3cr3t-lora"
    web.routes[route] = LocalWeb.static(200, (tmp_path / "style.safetensors").read_bytes())
    body = {"prompt": "with a private LoRA", **FAST, "loras": [{"path": web.url + route}]}
    assert call(a, QUEUE, body, "POST", key=False)[0] == 401
    code, submitted = call(a, QUEUE, body, "POST")
    assert code == 200, submitted
    request_id = submitted["request_id"]
    for server in pair:
        for asked in (f"/requests/{request_id}/status", f"/requests/{request_id}"):
            code, refused = call(server, QUEUE + asked, key=False)
            assert code == 401 and "detail" in refused, (server.url, asked, refused)
    final = wait_until(b, request_id, ("COMPLETED",))
    assert final.get("error") is None and web.hits[route] == 1, (final, [server.log_tail(3000) for server in pair])
    code, output = call(b, f"{QUEUE}/requests/{request_id}")
    assert code == 200 and output["prompt"] == "with a private LoRA", output
    places = {"mp4": fetch(b, output["video"]["url"]).decode("latin-1"),
              "row": json.dumps(rows(pg.url, "SELECT prompt, settings, result, error, sealed FROM ltxv097_jobs "
                                             "WHERE request_id = %s", request_id)),
              "log lines": json.dumps(status(b, request_id, logs=True)["logs"])}
    for server in pair:
        places[f"{server.url} history"] = json.dumps(server.history(request_id))
        places[f"{server.url} log"] = server.log_text()
    assert any("/style.safetensors" in places[f"{server.url} history"] for server in pair)  # the worker's
    for place, text in places.items():
        assert "s3cr3t" not in text, place


def test_a_killed_worker_loses_nothing_and_a_full_restart_keeps_results(pair, pg):
    a, b = pair
    killed = call(a, QUEUE, {"prompt": "survives a crash", **MEDIUM, "seed": 5}, "POST")[1]["request_id"]
    wait_until(b, killed, ("IN_PROGRESS",))
    worker, _ = worker_of(pg.url, killed)
    victim, survivor = (a, b) if runs_on(a, worker) else (b, a)
    victim.process.kill()  # SIGKILL: no goodbye, the lease just stops being renewed
    victim.process.wait()
    final = wait_until(survivor, killed, ("COMPLETED",))
    assert final.get("error") is None, (final, [server.log_tail(3000) for server in pair])
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
    # Meanwhile a request that ended longer ago than the retention (a week by default) shows up with its mp4 in
    # the shared storage: the restarted instances prune it at their first housekeeping.
    expired = str(uuid.uuid4())
    stored = Path(config_of(a)["storage_dir"]) / "ltxv097_api" / "results" / expired / "old.mp4"
    stored.parent.mkdir(parents=True)
    stored.write_bytes(b"an old result")
    settings = {"seed": 1, "prompt": "long ago", "server_url": a.url, "webhook_url": None}
    result = {"video": {"path": f"ltxv097_api/results/{expired}/old.mp4", "file_name": "old.mp4", "file_size": 13},
              "prompt": "long ago"}
    rows(pg.url, "INSERT INTO ltxv097_jobs (request_id, state, prompt, settings, result, queued_at, started_at, "
                 "finished_at) VALUES (%s, 'completed', '{}', %s, %s, now() - interval '200 hours', "
                 "now() - interval '200 hours', now() - interval '199 hours') RETURNING 1",
         expired, json.dumps(settings), json.dumps(result))
    pg.stop()
    pg.start()
    for server in pair:
        start_member(server)
    for request_id in (interrupted, waiting):
        final = wait_until(victim, request_id, ("COMPLETED",))
        assert final.get("error") is None, (final, [server.log_tail(3000) for server in pair])
    for server in pair:  # the finished result is still served, by any instance
        again = call(server, f"{QUEUE}/requests/{killed}")[1]
        assert again["seed"] == 5 and again["video"]["file_name"] == output["video"]["file_name"]
        assert len(fetch(server, again["video"]["url"])) == output["video"]["file_size"]
    names = {name for (name,) in rows(pg.url, "SELECT name FROM ltxv097_workers")}
    assert any(runs_on(victim, name) for name in names)  # the killed worker rejoined under a new name
    for server in pair:  # pruned: unknown to every instance, as fal answers an expired request
        code, gone = call(server, f"{QUEUE}/requests/{expired}/status")
        assert code == 404 and expired in gone["detail"], (code, gone)
        assert call(server, f"{QUEUE}/requests/{expired}")[0] == 404
    assert not stored.exists() and not stored.parent.exists()


def test_running_instances_ride_out_a_database_restart(pair, pg):
    a, b = pair
    pg.stop()
    code, answer = call(a, f"{QUEUE}/requests/00000000-0000-4000-8000-000000000000/status")
    assert code == 503 and "job database cannot be reached" in answer["detail"], answer
    assert pg.password not in answer["detail"]
    pg.start()
    code, body = call(a, QUEUE, {"prompt": "after the restart", **FAST}, "POST")  # broken pool connections replaced
    assert code == 200, body
    final = wait_until(b, body["request_id"], ("COMPLETED",))
    assert final.get("error") is None, (final, [server.log_tail(3000) for server in pair])


def test_a_gateway_only_instance_and_a_job_no_worker_can_run(pair, pg):
    """B restarts as a gateway only, with a checkpoint that A lacks: A refuses the job (ComfyUI's validation),
    no live worker is left to run it, and it fails naming the refusal; B never ran anything."""
    a, b = pair
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


def test_bad_database_settings_answer_503_and_the_ui_keeps_working(pair, pg, monkeypatch):
    a, _ = pair
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
