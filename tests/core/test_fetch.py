"""The `fetch` package on its own (no ComfyUI): downloads against a local server on 127.0.0.1 with hostile routes
(trickles, junk floods, redirects), pacing, leftovers, data: URIs and webhooks (the address policy:
`test_fetch_policy.py`)."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path

import pytest

import fetch
from support.fetch_kit import GOOD, Interrupted, leftovers
from support.local_web import LocalWeb

pytest_plugins = ["support.fetch_kit"]


# downloads that work


@pytest.mark.parametrize("route", ["/length", "/no-length", "/chunked"])
def test_a_download_streams_to_its_destination(web, tmp_path, route):
    web.routes["/length"] = LocalWeb.static(200, GOOD)
    web.routes["/no-length"] = LocalWeb.static(200, GOOD, length=False)

    def chunked(request):
        LocalWeb._head(request, 200, {"Transfer-Encoding": "chunked"}, None)
        for start in range(0, len(GOOD), 3000):
            piece = GOOD[start:start + 3000]
            request.wfile.write(f"{len(piece):x};ext=1\r\n".encode() + piece + b"\r\n")
        request.wfile.write(b"0\r\nX-Trailer: 1\r\n\r\n")
    web.routes["/chunked"] = chunked
    heads, progress = [], []
    dest = tmp_path / "out" / "file.bin"
    result = fetch.download(web.url + route, dest, max_bytes=1 << 20, check_head=heads.append,
                            progress=lambda done, total: progress.append((done, total)))
    assert result == dest and dest.read_bytes() == GOOD
    assert heads == [GOOD[:16]]
    assert progress[-1] == (len(GOOD), len(GOOD) if route == "/length" else None)
    assert leftovers(dest.parent) == ["file.bin"]


def test_a_redirect_between_allowed_urls_is_followed(web, tmp_path):
    web.routes["/file"] = LocalWeb.static(200, GOOD)
    web.routes["/hop2"] = LocalWeb.redirect("/file", 307)
    web.routes["/hop1"] = LocalWeb.redirect(web.url + "/hop2", 301)
    assert fetch.download(web.url + "/hop1", tmp_path / "f", max_bytes=1 << 20).read_bytes() == GOOD
    for n in range(fetch.MAX_REDIRECTS + 1):
        web.routes[f"/loop{n}"] = LocalWeb.redirect(f"/loop{n + 1}")
    with pytest.raises(fetch.FetchError, match=r"more than 5 redirects"):
        fetch.download(web.url + "/loop0", tmp_path / "g", max_bytes=1 << 20)
    assert leftovers(tmp_path) == ["f"]


def test_https_checks_the_certificate_against_the_host_name(tmp_path, monkeypatch):
    """The connection goes to the checked address, the TLS handshake names the host (SNI) and verifies it."""
    import ssl

    pem = Path(__file__).parents[1] / "support" / "data" / "localhost.pem"  # self-signed, for the name localhost only
    web = LocalWeb(tls_pem=pem)
    try:
        web.routes["/f"] = LocalWeb.static(200, GOOD)
        monkeypatch.setenv(fetch.ALLOW_HOSTS_ENV, f"127.0.0.1:{web.port}")
        trusted = ssl.create_default_context
        monkeypatch.setattr(ssl, "create_default_context", lambda: trusted(cafile=str(pem)))
        dest = fetch.download(f"https://localhost:{web.port}/f", tmp_path / "f", max_bytes=1 << 20)
        assert dest.read_bytes() == GOOD and web.host_headers["/f"] == f"localhost:{web.port}"
        with pytest.raises(fetch.FetchError, match=r"the secure \(TLS\) connection could not be set up \(.*"
                                                   r"(IP address mismatch|doesn't match)"):
            fetch.download(f"https://127.0.0.1:{web.port}/f", tmp_path / "g", max_bytes=1 << 20)
        assert leftovers(tmp_path) == ["f"]
    finally:
        web.close()


# ------------------------------------------------------------------------------------------------------------------
# slow senders and cancel


def test_a_trickle_is_cut_by_the_minimum_rate(web, tmp_path):
    web.trickle("/slow", GOOD[:16], every=0.5, count=20)
    started = time.monotonic()
    with pytest.raises(fetch.FetchError, match=r"was stopped: it arrived at \d+ bytes/s over \d+ s, below the "
                                               r"minimum of 100 bytes/s"):
        fetch.download(web.url + "/slow", tmp_path / "f", max_bytes=1 << 20, min_rate=100, rate_window_s=2.0)
    assert time.monotonic() - started < 4.0
    assert leftovers(tmp_path) == []


def test_a_trickle_is_cut_by_the_deadline(web, tmp_path):
    web.trickle("/slow", GOOD[:16], every=0.05, count=100)  # fast enough for any rate rule, too slow to finish
    started = time.monotonic()
    with pytest.raises(fetch.FetchError, match=r"was stopped: it did not finish within 2 s"):
        fetch.download(web.url + "/slow", tmp_path / "f", max_bytes=1 << 20, deadline_s=1.5, min_rate=1)
    assert time.monotonic() - started < 3.0
    assert leftovers(tmp_path) == []


def test_the_minimum_rate_counts_each_windows_own_bytes():
    """A fast start does not pay for a stall later: the rate is the bytes of the last window over its span."""
    pace = fetch.pace.Pace("the download", "http://example.com/f", deadline_s=600, min_rate=100, window_s=2.0)
    pace.window_start -= 2.0
    pace.check(100_000)  # 50000 bytes/s over the first window
    pace.window_start -= 2.0
    with pytest.raises(fetch.FetchError, match=r"it arrived at 0 bytes/s over 2 s, below the minimum of 100"):
        pace.check(100_000)  # nothing more over the second


def test_the_default_deadline_grows_with_the_size():
    assert fetch.DEADLINE_FLOOR_S >= 60 and fetch.MIN_RATE_BYTES_S >= 1024
    assert fetch.pace.default_deadline(0) == fetch.DEADLINE_FLOOR_S
    assert fetch.pace.default_deadline(1 << 30) == fetch.DEADLINE_FLOOR_S + (1 << 30) / fetch.DEADLINE_BYTES_S


@pytest.mark.parametrize("route", ["/trickle", "/silent"])
def test_cancel_is_honoured_within_a_second(web, tmp_path, route):
    web.trickle("/trickle", GOOD[:16], every=0.7, count=10)
    web.silent("/silent", 6.0)
    calls = []
    stop_at = time.monotonic() + 1.0

    def cancel():
        calls.append(time.monotonic())
        if calls[-1] > stop_at:
            raise Interrupted()
    with pytest.raises(Interrupted):
        fetch.download(web.url + route, tmp_path / "f", max_bytes=1 << 20, cancel=cancel)
    assert calls[-1] - stop_at < 1.0, "cancel() ran less than once a second"
    assert time.monotonic() - stop_at < 1.5
    assert max(b - a for a, b in zip(calls, calls[1:])) < 1.0
    assert leftovers(tmp_path) == []


# ------------------------------------------------------------------------------------------------------------------
# junk, sizes, errors


@pytest.mark.parametrize("head", [b"<!DOCTYPE html><html><body>log in", b"\x80\x02}q\x00(X\x0e\x00\x00\x00",
                                  bytes.fromhex("9f3a51c2e8d47b06aa13c5e2f1097d44")])
def test_junk_is_refused_after_its_first_bytes(web, tmp_path, head):
    def check(first: bytes) -> None:
        if first[8:9] != b"{":
            raise ValueError(f"not safetensors: {first[:4]!r}")
    web.flood("/junk", head, total=32 << 20)
    with pytest.raises(ValueError, match="not safetensors"):
        fetch.download(web.url + "/junk", tmp_path / "f", max_bytes=64 << 20, check_head=check)
    web.finish("/junk")
    assert web.sent["/junk"] < 8 << 20, "the client read far past the first bytes"
    assert leftovers(tmp_path) == []


def test_sizes_truncation_and_http_errors(web, tmp_path):
    web.routes["/big"] = LocalWeb.static(200, GOOD)
    web.routes["/big-unknown"] = LocalWeb.static(200, GOOD, length=False)
    web.routes["/cut"] = LocalWeb.static(200, GOOD, cut_at=100)
    web.routes["/missing?token=hunter2"] = LocalWeb.static(404, b"no")
    with pytest.raises(fetch.FetchError, match=r"is 0.00\d+ MB, more than the 0.00\d+ MB allowed for the download "
                                               r"\(set X\)$"):
        fetch.download(web.url + "/big", tmp_path / "f", max_bytes=1000, limit_hint=" (set X)")
    with pytest.raises(fetch.FetchError, match=r"is larger than the .* allowed for the download; stopped"):
        fetch.download(web.url + "/big-unknown", tmp_path / "f", max_bytes=1000)
    with pytest.raises(fetch.FetchError, match=r"was cut short: 100 of \d+ bytes arrived"):
        fetch.download(web.url + "/cut", tmp_path / "f", max_bytes=1 << 20)
    with pytest.raises(fetch.FetchError) as error:
        fetch.download(web.url + "/missing?token=hunter2", tmp_path / "f", max_bytes=1 << 20, what="the LoRA")
    assert str(error.value) == f"the LoRA from {web.url}/missing failed: the server answered HTTP 404 Not Found"
    assert leftovers(tmp_path) == []


def test_leftover_parts_are_the_downloads_hidden_files_only(tmp_path):
    ours = tmp_path / ".lora.safetensors.k3j4h5g6.part"
    for path in (ours, tmp_path / ".notes.part", tmp_path / "lora.safetensors.part", tmp_path / "lora.safetensors"):
        path.write_bytes(b"x")
    assert fetch.leftover_parts(tmp_path) == [ours]
    assert fetch.leftover_parts(tmp_path / "missing") == []


def test_a_refused_complete_file_is_not_renamed_into_place(web, tmp_path):
    web.routes["/f"] = LocalWeb.static(200, GOOD)
    seen = []

    def check_file(path: Path) -> None:
        seen.append((path.parent, path.name.startswith(".f."), path.read_bytes() == GOOD))
        raise ValueError("incomplete")
    with pytest.raises(ValueError, match="incomplete"):
        fetch.download(web.url + "/f", tmp_path / "f", max_bytes=1 << 20, check_file=check_file)
    assert seen == [(tmp_path, True, True)] and leftovers(tmp_path) == []


def test_fetch_bytes_over_http(web):
    web.routes["/img"] = LocalWeb.static(200, b"\x89PNG....", {"Content-Type": "Image/PNG; charset=binary"})
    web.routes["/big"] = LocalWeb.static(200, bytes(5000))
    assert fetch.fetch_bytes(web.url + "/img", max_bytes=100) == (b"\x89PNG....", "image/png")
    with pytest.raises(fetch.FetchError, match=r"the image at .*/big is 0.00477 MB, more than the 0.000954 MB"):
        fetch.fetch_bytes(web.url + "/big", max_bytes=1000, what="the image")


def test_fetch_bytes_with_data_uris():
    data = bytes(range(200))
    uri = "data:image/png;base64," + base64.b64encode(data).decode()
    assert fetch.fetch_bytes(uri, max_bytes=200) == (data, "image/png")
    assert fetch.fetch_bytes("data:,hello%20world", max_bytes=100) == (b"hello world", "text/plain")
    with pytest.raises(fetch.FetchError, match=r"the image: the data: URI holds 0.000191 MB, more than the "
                                               r"9.44e-05 MB allowed"):
        fetch.fetch_bytes(uri, max_bytes=99, what="the image")
    with pytest.raises(fetch.FetchError, match="the data: URI says base64 but its data is not valid base64"):
        fetch.fetch_bytes("data:image/png;base64,AB$C", max_bytes=100)
    with pytest.raises(fetch.FetchError, match=r"has no ',' before its data"):
        fetch.fetch_bytes("data:image/png;base64", max_bytes=100)


def test_post_json(web, monkeypatch):
    web.routes["/hook?sig=1"] = LocalWeb.static(204, b"")
    web.routes["/moved"] = LocalWeb.redirect("http://169.254.169.254/")
    assert fetch.post_json(web.url + "/hook?sig=1", {"status": "done", "n": 1}) == 204
    assert json.loads(web.bodies["/hook?sig=1"]) == {"status": "done", "n": 1}
    assert fetch.post_json(web.url + "/moved", {}) == 302, "redirects are not followed"
    web.silent("/slow", 4.0)
    started = time.monotonic()
    with pytest.raises(fetch.FetchError, match=r"the webhook from .*/slow was stopped: it did not finish within 1 s"):
        fetch.post_json(web.url + "/slow", {}, timeout=1.0)
    assert time.monotonic() - started < 2.0
    with pytest.raises(fetch.FetchError, match=r"is not an http or https URL"):
        fetch.post_json("ftp://127.0.0.1/x", {})


def test_the_package_does_not_import_comfyui():
    import subprocess
    import sys

    code = ("import sys, fetch; bad = [m for m in sys.modules if m.split('.')[0] in "
            "('comfy', 'folder_paths', 'comfy_api', 'nodes', 'torch')]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(fetch.__file__).parents[1],
                   env={**os.environ, "PYTHONPATH": ""})
