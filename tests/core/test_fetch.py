"""The `fetch` package on its own (no ComfyUI): downloads against a local server on 127.0.0.1 with hostile routes
(trickles, junk floods, redirects to other ports and schemes), the address policy and its two settings, data: URIs
and webhooks."""

from __future__ import annotations

import base64
import ipaddress
import json
import logging
import os
import socket
import time
from pathlib import Path

import pytest

import fetch
from fetch import policy, tokens
from support.local_web import LocalWeb

GOOD = b"\x10\x00\x00\x00\x00\x00\x00\x00{}" + bytes(range(256)) * 40


class Interrupted(Exception):
    """Stands for ComfyUI's InterruptProcessingException."""


@pytest.fixture
def web(monkeypatch):
    """A local server; settings cleared, then only its own port is allowed."""
    monkeypatch.delenv(fetch.ALLOW_PRIVATE_ENV, raising=False)
    web = LocalWeb()
    monkeypatch.setenv(fetch.ALLOW_HOSTS_ENV, f"127.0.0.1:{web.port}")
    yield web
    web.close()


@pytest.fixture
def other_web():
    """A second local server on another port, which no setting allows."""
    web = LocalWeb()
    web.routes["/secret"] = LocalWeb.static(200, b"internal data")
    yield web
    web.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def refused(what: str, url: str) -> str:
    return str(policy.unreachable(what, url))


# ------------------------------------------------------------------------------------------------------------------
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


def test_check_url_refuses_before_anything_runs():
    fetch.check_url("https://example.com/a.safetensors?x=1")
    for url, message in (("ftp://example.com/a", "is not an http or https URL"),
                         ("https://u:hunter2@example.com/a", "has a user name or password"),
                         ("https://hunter2@example.com/a", "has a user name or password"),
                         ("https://:hunter2@example.com/a", "has a user name or password"),
                         ("http:///nohost", "has no host name"), ("http://example.com:99999/", "is not a valid URL")):
        with pytest.raises(fetch.FetchError, match=message) as error:
            fetch.check_url(url, "the input")
        assert str(error.value).startswith("the input: ") and "hunter2" not in str(error.value)


# ------------------------------------------------------------------------------------------------------------------
# addresses (SSRF)


@pytest.mark.parametrize("address, public", [
    ("93.184.216.34", True), ("2606:4700::1111", True), ("::ffff:93.184.216.34", True),
    ("127.0.0.1", False), ("10.2.3.4", False), ("172.16.0.1", False), ("172.31.255.255", False),
    ("192.168.1.1", False), ("169.254.169.254", False), ("100.64.0.1", False), ("0.0.0.0", False),
    ("224.0.0.1", False), ("239.255.255.250", False), ("240.0.0.1", False), ("255.255.255.255", False),
    ("::1", False), ("::", False), ("fc00::1", False), ("fd12:3456::1", False), ("fe80::1", False),
    ("ff02::1", False), ("::ffff:127.0.0.1", False), ("::ffff:169.254.169.254", False), ("::ffff:10.0.0.1", False),
    ("2002:7f00:1::", False), ("64:ff9b::a9fe:a9fe", False), ("64:ff9b::5db8:d822", True),
])
def test_only_public_addresses_count_as_public(address, public):
    assert fetch.is_public(ipaddress.ip_address(address)) is public


def test_local_addresses_are_refused_without_opt_in(web, tmp_path, monkeypatch):
    monkeypatch.delenv(fetch.ALLOW_HOSTS_ENV)
    web.routes["/f"] = LocalWeb.static(200, GOOD)
    for url in (web.url + "/f", f"http://localhost:{web.port}/f", f"http://[::ffff:127.0.0.1]:{web.port}/f",
                f"http://[::1]:{web.port}/f", "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/f",
                "http://0.0.0.0:1/f", f"http://2130706433:{web.port}/f"):
        with pytest.raises(fetch.FetchError) as error:
            fetch.download(url, tmp_path / "f", max_bytes=1 << 20)
        assert str(error.value) == refused("the download", url)
    with pytest.raises(fetch.FetchError, match="could not be fetched: the host is unreachable or not allowed"):
        fetch.fetch_bytes(web.url + "/f", max_bytes=1 << 20)
    with pytest.raises(fetch.FetchError, match="could not be fetched: the host is unreachable or not allowed"):
        fetch.post_json(web.url + "/f", {"a": 1})
    assert web.hits == {} and leftovers(tmp_path) == []


def test_refused_and_unreachable_read_the_same(web, tmp_path, monkeypatch):
    port = closed_port()
    url = f"http://127.0.0.1:{port}/x.safetensors"
    messages = []
    for allowed in ("", f"127.0.0.1:{port}"):  # refused by policy, then allowed but closed
        monkeypatch.setenv(fetch.ALLOW_HOSTS_ENV, allowed)
        with pytest.raises(fetch.FetchError) as error:
            fetch.download(url, tmp_path / "f", max_bytes=1 << 20)
        messages.append(str(error.value))
    monkeypatch.setattr(policy.socket, "getaddrinfo", lambda *a, **k: (_ for _ in ()).throw(socket.gaierror(-2)))
    with pytest.raises(fetch.FetchError) as error:
        fetch.download(url, tmp_path / "f", max_bytes=1 << 20)
    messages.append(str(error.value))
    assert messages == [refused("the download", url)] * 3
    assert "not allowed" in messages[0] and fetch.ALLOW_PRIVATE_ENV in messages[0]


def test_the_connection_goes_to_the_address_the_policy_checked(web, tmp_path, monkeypatch):
    """The name is resolved once, by the policy; the socket connects to that address (a second lookup could answer
    another address, DNS rebinding). Here the name only resolves through the policy's lookup."""
    web.routes["/f"] = LocalWeb.static(200, GOOD)
    real = socket.getaddrinfo
    looked_up = []

    def resolve(host, *args, **kwargs):
        looked_up.append(host)
        return real("127.0.0.1" if host == "rebind.invalid" else host, *args, **kwargs)

    monkeypatch.setattr(policy.socket, "getaddrinfo", resolve)
    monkeypatch.setenv(fetch.ALLOW_HOSTS_ENV, f"rebind.invalid:{web.port}")
    assert fetch.fetch_bytes(f"http://rebind.invalid:{web.port}/f", max_bytes=1 << 20)[0] == GOOD
    assert looked_up == ["rebind.invalid"] and web.host_headers["/f"] == f"rebind.invalid:{web.port}"


def test_redirects_are_checked_on_every_hop(web, other_web, tmp_path):
    web.routes["/to-other-port"] = LocalWeb.redirect(other_web.url + "/secret")
    web.routes["/to-localhost"] = LocalWeb.redirect(f"http://localhost:{other_web.port}/secret")
    web.routes["/to-metadata"] = LocalWeb.redirect("http://169.254.169.254/latest/meta-data/")
    web.routes["/to-ftp"] = LocalWeb.redirect("ftp://127.0.0.1/etc/passwd")
    web.routes["/to-file"] = LocalWeb.redirect("file:///etc/passwd")
    web.routes["/to-credentials"] = LocalWeb.redirect(f"http://admin:hunter2@127.0.0.1:{web.port}/f")
    for route in ("/to-other-port", "/to-localhost", "/to-metadata"):
        with pytest.raises(fetch.FetchError) as error:
            fetch.download(web.url + route, tmp_path / "f", max_bytes=1 << 20)
        assert str(error.value) == refused("the download", web.url + route)
    for route, scheme in (("/to-ftp", "ftp"), ("/to-file", "file")):
        with pytest.raises(fetch.FetchError, match=rf"the download \(redirected from {web.url}{route}\): {scheme}:"
                                                   rf".* is not an http or https URL"):
            fetch.download(web.url + route, tmp_path / "f", max_bytes=1 << 20)
    with pytest.raises(fetch.FetchError) as error:
        fetch.download(web.url + "/to-credentials", tmp_path / "f", max_bytes=1 << 20)
    assert "user name or password" in str(error.value) and "hunter2" not in str(error.value)
    assert other_web.hits == {} and leftovers(tmp_path) == []


def test_credentials_in_urls_are_refused_and_never_shown(web, tmp_path, caplog):
    web.routes["/f"] = LocalWeb.static(200, GOOD)
    caplog.set_level(logging.DEBUG)
    url = f"http://admin:hunter2@127.0.0.1:{web.port}/f?key=s3cr3t#frag"
    for call in (lambda: fetch.download(url, tmp_path / "f", max_bytes=1 << 20),
                 lambda: fetch.fetch_bytes(url, max_bytes=1 << 20), lambda: fetch.post_json(url, {})):
        with pytest.raises(fetch.FetchError) as error:
            call()
        message = str(error.value)
        assert "user name or password" in message and f"127.0.0.1:{web.port}/f" in message
        assert not any(secret in message for secret in ("admin", "hunter2", "key=", "s3cr3t", "frag"))
    assert "hunter2" not in caplog.text and web.hits == {}
    assert fetch.redact_url(url) == f"http://127.0.0.1:{web.port}/f"
    assert fetch.redact_url("HTTPS://u@[::1]:8443/a b?x=1") == "https://[::1]:8443/a b"
    assert fetch.redact_url("data:image/png;base64,AAAA") == "data:image/png,..."


def test_redact_text_redacts_every_url_in_a_text():
    text = json.dumps({"loras": json.dumps([{"path": "https://h.example/l.safetensors?token=s3cr3t"}]),
                       "note": "see HTTP://user:pw@h.example:8080/a?b=1#c, ftp://x/y?z=2 and "
                               "data:image/png;base64,QUFB"})
    shown = fetch.redact_text(text)
    assert not any(secret in shown for secret in ("s3cr3t", "token", "user", "pw@", "b=1", "z=2"))
    assert "https://h.example/l.safetensors" in shown and "http://h.example:8080/a" in shown
    assert json.loads(json.loads(shown)["loras"]) == [{"path": "https://h.example/l.safetensors"}]


def test_tokens_from_the_environment_go_in_a_header_to_their_host_only(web, other_web, tmp_path, monkeypatch):
    web.routes["/f"] = LocalWeb.static(200, GOOD)
    web.routes["/away"] = LocalWeb.redirect(f"http://localhost:{other_web.port}/g")
    other_web.routes["/g"] = LocalWeb.static(200, GOOD)
    monkeypatch.setenv(fetch.ALLOW_HOSTS_ENV, f"127.0.0.1:{web.port},localhost:{other_web.port}")
    assert fetch.host_token_variable("127.0.0.1") == "LTX097_TOKEN_127_0_0_1"
    with pytest.raises(fetch.FetchError) as refused:
        fetch.check_url("https://user:token@h.example/l.safetensors")
    assert "HF_TOKEN" in str(refused.value) and "LTX097_TOKEN_<HOST>" in str(refused.value)
    assert "query" not in str(refused.value), "the message no longer suggests tokens in the query string"
    assert fetch.fetch_bytes(web.url + "/f", max_bytes=1 << 20)[0] == GOOD
    assert web.authorizations["/f"] == "", "no token set: no header"
    monkeypatch.setenv("LTX097_TOKEN_127_0_0_1", "t0ken")
    fetch.download(web.url + "/f", tmp_path / "f", max_bytes=1 << 20)
    assert web.authorizations["/f"] == "Bearer t0ken"
    assert fetch.fetch_bytes(web.url + "/away", max_bytes=1 << 20)[0] == GOOD
    assert web.authorizations["/away"] == "Bearer t0ken" and other_web.authorizations["/g"] == "", \
        "a redirect to another host does not carry the token"
    monkeypatch.setenv(fetch.ALLOW_HOSTS_ENV, "")
    monkeypatch.setenv(fetch.ALLOW_PRIVATE_ENV, "1")
    fetch.fetch_bytes(web.url + "/f", max_bytes=1 << 20)
    assert web.authorizations["/f"] == "", "plain http only to a host the user listed"
    monkeypatch.setenv(fetch.HF_TOKEN_ENV, "hf_x")
    for url, header in (("https://huggingface.co/a/b/resolve/main/l.safetensors", {"Authorization": "Bearer hf_x"}),
                        ("https://hf.co/x", {"Authorization": "Bearer hf_x"}), ("https://evil.example/x", {}),
                        ("http://huggingface.co/x", {}), ("https://huggingface.co.evil.example/x", {})):
        assert tokens.auth_headers(policy.parse_url(url)) == header, url


def test_sealed_urls_keep_their_secret_part_in_memory():
    url = "https://h.example/l.safetensors?sig=s3cr3t"
    sealed = fetch.seal_url(url, "request-1")
    assert "s3cr3t" not in sealed and sealed.startswith("https://h.example/l.safetensors#")
    assert fetch.redact_url(sealed) == "https://h.example/l.safetensors"
    assert fetch.unseal_url(sealed) == url and fetch.unseal_url("https://h.example/x") == "https://h.example/x"
    assert fetch.seal_url("https://h.example/plain.safetensors", "request-1") == "https://h.example/plain.safetensors"
    fetch.release("request-1")
    with pytest.raises(fetch.FetchError, match="kept in the server's memory only and is gone") as error:
        fetch.unseal_url(sealed)
    assert "s3cr3t" not in str(error.value)


def test_the_opt_in_settings(web, tmp_path, monkeypatch):
    web.routes["/f"] = LocalWeb.static(200, GOOD)
    url = f"http://localhost:{web.port}/f"
    for hosts in (f"localhost:{web.port}", "LOCALHOST", f" other.lan , 127.0.0.1:{web.port}"):
        monkeypatch.setenv(fetch.ALLOW_HOSTS_ENV, hosts)
        assert fetch.fetch_bytes(url, max_bytes=1 << 20)[0] == GOOD
        assert web.host_headers["/f"] == f"localhost:{web.port}", "the request names the host, not the address"
    monkeypatch.setenv(fetch.ALLOW_HOSTS_ENV, f"localhost:{web.port + 1},127.0.0.2")
    with pytest.raises(fetch.FetchError, match="unreachable or not allowed"):
        fetch.fetch_bytes(url, max_bytes=1 << 20)
    monkeypatch.setenv(fetch.ALLOW_PRIVATE_ENV, "1")
    assert fetch.fetch_bytes(url, max_bytes=1 << 20)[0] == GOOD
    monkeypatch.setenv(fetch.ALLOW_PRIVATE_ENV, "maybe")
    with pytest.raises(fetch.FetchError, match=r"LTX097_ALLOW_PRIVATE_URLS='maybe' is not a yes/no value; set it to 1"):
        fetch.fetch_bytes(url, max_bytes=1 << 20)
    monkeypatch.setenv(fetch.ALLOW_PRIVATE_ENV, "0")
    monkeypatch.setenv(fetch.ALLOW_HOSTS_ENV, "127.0.0.1:http")
    with pytest.raises(fetch.FetchError, match=r"LTX097_URL_ALLOW_HOSTS entry '127.0.0.1:http' has an invalid port; "
                                               r"entries are host\[:port\]"):
        fetch.fetch_bytes(url, max_bytes=1 << 20)
    assert web.hits["/f"] == 4


# ------------------------------------------------------------------------------------------------------------------
# fetch_bytes and post_json


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
