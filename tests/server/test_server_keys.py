"""With `api_keys` set, every route of the real server needs a key (issue 17, 2): the routes are read from the running
app's router (its sub-apps and static folders too), so a route ComfyUI or a pack adds later is tried as well.
Browsers log in once with a key at /ltxv097_login and carry a session cookie (pages, /ws); everything else gets
a 401 in JSON."""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import urllib.parse

import aiohttp
import pytest

from support import service_kit

KEY = "gate-test-key-0123456789"
LOGIN = "/ltxv097_login"
MUST_BE_THERE = {"/", "/prompt", "/api/prompt", "/queue", "/history", "/history/{prompt_id}", "/view", "/ws",
                 "/object_info", "/interrupt", "/upload/image", "/internal/logs", "/ltx097_test/routes",
                 f"/queue/{service_kit.APP_ID}", f"/{service_kit.APP_ID}",
                 "/ltxv097_api/files/{request_id}/{file_name}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = service_kit.api_server(tmp_path_factory.mktemp("keys_host"), config_changes={"api_keys": [KEY]})
    server.api_key = KEY
    with server:
        yield server


def call(server, method: str, path: str, headers: dict | None = None, body: bytes | None = None):
    """(status, headers, body) of one request; redirects are not followed."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def concrete(path: str) -> str:
    """A path that the route matches: every {placeholder} (and a static folder's *) becomes `x`."""
    return re.sub(r"\{[^}]*\}", "x", path).replace("/*", "/x")


def routes_of(server) -> list[dict]:
    routes = server.get_json("/ltx097_test/routes")
    paths = {route["path"] for route in routes}
    assert MUST_BE_THERE <= paths, sorted(MUST_BE_THERE - paths)
    assert any(path.startswith("/extensions/") and path.endswith("/*") for path in paths), "static folders listed"
    return routes


def test_every_route_of_the_app_needs_a_key(server):
    routes = routes_of(server)
    assert len(routes) > 60
    tried = []
    for route in routes:
        if route["path"].endswith(LOGIN):  # the login form itself (its own 401 is for a wrong key in the form)
            continue
        method = "GET" if route["method"] == "*" else route["method"]
        path = concrete(route["path"])
        status, _, body = call(server, method, path, {"Accept": "application/json"})
        assert status == 401, f"{method} {route['path']} answered {status} without a key"
        if method != "HEAD":
            assert "Authorization: Key" in json.loads(body)["detail"]
        status, _, _ = call(server, method, path, {"Authorization": "Key wrong-key"})
        assert status == 401, f"{method} {route['path']} answered {status} with a wrong key"
        status, headers, _ = call(server, method, path, {"Authorization": f"Key {KEY}"})
        assert status != 401 and not headers.get("Location", "").startswith(LOGIN), \
            f"{method} {route['path']} answered {status} with the key"
        tried.append((method, route["path"]))
    assert ("POST", "/prompt") in tried and ("GET", "/view") in tried and ("GET", "/ws") in tried


def test_a_browser_logs_in_with_a_key_and_keeps_a_session(server):
    status, headers, _ = call(server, "GET", "/queue?x=1", {"Accept": "text/html,application/xhtml+xml"})
    location = urllib.parse.urlsplit(headers["Location"])
    assert status == 302 and location.path == LOGIN
    assert urllib.parse.parse_qs(location.query) == {"next": ["/queue?x=1"]}
    status, _, page = call(server, "GET", f"{LOGIN}?next=%2Fqueue")
    assert status == 200 and b"type='password'" in page
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    status, _, page = call(server, "POST", LOGIN, form, urllib.parse.urlencode({"key": "nope"}).encode())
    assert status == 401 and b"not one of the keys of this server" in page
    status, headers, _ = call(server, "POST", LOGIN, form,
                              urllib.parse.urlencode({"key": KEY, "next": "//evil.example/"}).encode())
    assert status == 302 and headers["Location"] == "/", "never sent to another site"
    status, headers, _ = call(server, "POST", LOGIN, form,
                              urllib.parse.urlencode({"key": KEY, "next": "/queue"}).encode())
    assert status == 302 and headers["Location"] == "/queue"
    cookie = headers["Set-Cookie"].split(";", 1)[0]
    assert "HttpOnly" in headers["Set-Cookie"] and "SameSite=Strict" in headers["Set-Cookie"]
    for path in ("/", "/queue", "/history", "/object_info"):
        assert call(server, "GET", path, {"Cookie": cookie})[0] == 200, path
    name, _, value = cookie.partition("=")
    forged = f"{name}={value.split('.')[0]}.{'0' * 64}"
    assert call(server, "GET", "/queue", {"Cookie": forged})[0] == 401

    async def websocket(headers: dict) -> dict:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"{server.url}/ws", headers=headers) as socket:
                return json.loads((await socket.receive(timeout=30)).data)

    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        asyncio.run(websocket({}))
    assert refused.value.status == 401
    assert asyncio.run(websocket({"Cookie": cookie}))["type"] == "status"
    assert asyncio.run(websocket({"Authorization": f"Key {KEY}"}))["type"] == "status"
