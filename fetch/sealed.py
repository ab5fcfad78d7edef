"""URLs whose secret part (query string, fragment) stays in this process: a sealed URL is the redacted URL plus a
reference, `https://host/path#ltx097-sealed=<id>`, safe to put in a prompt (ComfyUI's history and the mp4's
metadata show the prompt); `unseal_url` gives the full URL back to the code that fetches it.

The API seals the LoRA URLs of a request before queueing it and releases them when the request ends. Sealed
references live in memory only: after a restart they are gone, and so are the requests that used them.
"""

from __future__ import annotations

import secrets
import threading
import urllib.parse

from .policy import FetchError, redact_url

SEAL_MARK = "ltx097-sealed="

_vault: dict[str, tuple[str, str]] = {}
"""reference → (full URL, owner)."""
_lock = threading.Lock()


def seal_url(url: str, owner: str) -> str:
    """`url` itself when it has no query string or fragment; otherwise its sealed form, kept until `release(owner)`."""
    if redact_url(url) == url.strip() or not urllib.parse.urlsplit(url.strip()).scheme:
        return url
    reference = secrets.token_urlsafe(16)
    with _lock:
        _vault[reference] = (url.strip(), owner)
    return f"{redact_url(url)}#{SEAL_MARK}{reference}"


def unseal_url(url: str) -> str:
    """The full URL of a sealed one (any other URL is returned as it is)."""
    _, _, fragment = url.partition("#")
    if not fragment.startswith(SEAL_MARK):
        return url
    with _lock:
        entry = _vault.get(fragment[len(SEAL_MARK):])
    if entry is None:
        raise FetchError(f"{redact_url(url)}: the rest of this URL was kept in the server's memory only and is gone "
                         f"(the server restarted or the request ended); submit the request again")
    return entry[0]


def release(owner: str) -> None:
    """Forget every URL sealed for `owner` (its request ended)."""
    with _lock:
        for reference in [ref for ref, (_url, who) in _vault.items() if who == owner]:
            del _vault[reference]
