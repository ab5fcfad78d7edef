"""The `fetch` address and secrets policy on its own (no ComfyUI): only public addresses unless a setting allows
more, the same message for refused and unreachable, redirects checked on every hop, credentials refused and never
shown, tokens from the environment, sealed URLs, the two settings."""

from __future__ import annotations

import ipaddress
import json
import logging
import socket

import pytest

import fetch
from fetch import policy, tokens
from support.fetch_kit import GOOD, closed_port, leftovers, refused
from support.local_web import LocalWeb

pytest_plugins = ["support.fetch_kit"]


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


