"""The fleet mode on this machine: a throwaway PostgreSQL and two real ComfyUI workers with the tiny models on
the CPU, sharing one storage folder, driven by the service's official clients and plain HTTP.

Any instance answers for any request; idle workers take the next job; a worker killed mid-job loses nothing;
cancels reach the worker running the job; a restart of everything (PostgreSQL included) keeps results and runs
the waiting jobs; bad database settings answer 503 with the reason while ComfyUI's UI keeps working.
"""

from __future__ import annotations

import pytest

import service_kit
from fleet_kit import FAST, QUEUE, call, fetch, fleet_server, rows, status, wait_until
from pg_server import PgServer

LEASE_SECONDS = 3


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return service_kit.make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def pg():
    with PgServer() as server:
        yield server


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, tls, pg):
    """Two workers (A, B) on one database and one storage folder (started one after the other: a server started
    from a thread would die with that thread, see comfy_server._die_with_parent)."""
    storage = tmp_path_factory.mktemp("storage")
    first = fleet_server(tmp_path_factory.mktemp("a"), pg.url, storage, tls=tls, lease_seconds=LEASE_SECONDS)
    second = fleet_server(tmp_path_factory.mktemp("b"), pg.url, storage, tls=tls, models_from=first,
                          lease_seconds=LEASE_SECONDS)
    servers = [first, second]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()


def test_any_instance_answers_for_requests_the_others_took(fleet, pg):
    a, b = fleet
    submitted = []
    for number in range(6):
        gateway = fleet[number % 2]
        code, body = call(gateway, QUEUE, {"prompt": f"fleet {number}", **FAST, "seed": number % 3}, "POST")
        assert code == 200 and body["status"] == "IN_QUEUE", body
        submitted.append((gateway, body["request_id"]))
    for number, (gateway, request_id) in enumerate(submitted):
        other = b if gateway is a else a
        final = wait_until(other, request_id, ("COMPLETED",))
        assert final.get("error") is None, final
        code, output = call(other, f"{QUEUE}/requests/{request_id}")
        assert code == 200 and output["seed"] == number % 3 and output["prompt"] == f"fleet {number}"
        assert output["video"]["url"].startswith(other.url + "/")
        data = fetch(other, output["video"]["url"])
        assert len(data) == output["video"]["file_size"]
        facts = service_kit.mp4_facts(data, other.workdir)
        assert facts == {"frames": 9, "width": 480, "height": 480, "fps": 12.0}
    workers = rows(pg.url, "SELECT worker, count(*) FROM ltxv097_jobs GROUP BY worker")
    assert len(workers) == 2, workers  # both workers ran some
