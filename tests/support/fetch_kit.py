"""Local web servers and helpers for the `fetch` tests (a test module opts in with
`pytest_plugins = ["support.fetch_kit"]` for the `web` and `other_web` fixtures)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

import fetch
from fetch import policy
from support.local_web import LocalWeb

GOOD = b"\x10\x00\x00\x00\x00\x00\x00\x00{}" + bytes(range(256)) * 40
"""A small file whose first bytes read as a safetensors header."""


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
