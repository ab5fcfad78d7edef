"""Who may call the API: `Authorization: Key <key>` against the configured keys, and the public-address warning."""

from __future__ import annotations

import hmac
from collections.abc import Iterable

LOCAL_ADDRESSES = frozenset({"127.0.0.1", "localhost", "::1"})


def key_accepted(authorization: str | None, keys: Iterable[str]) -> bool:
    """True when no keys are configured, or the header is `Key <k>` for one of them (constant-time compare)."""
    keys = tuple(keys)
    if not keys:
        return True
    scheme, _, value = (authorization or "").strip().partition(" ")
    if scheme.lower() != "key" or not value.strip():
        return False
    offered = value.strip().encode()
    return any(hmac.compare_digest(offered, key.encode()) for key in keys)


def public_without_key(listen_addresses: Iterable[str], keys: Iterable[str]) -> str | None:
    """A warning when ComfyUI listens beyond localhost and the API has no key; None otherwise."""
    public = [address for address in listen_addresses if address not in LOCAL_ADDRESSES]
    if not public or tuple(keys):
        return None
    return (f"ComfyUI listens on {', '.join(public)} and the LTX-Video API has no key: anyone who can reach this "
            "server can queue generations. Add \"api_keys\" to ltxv097_api.json in ComfyUI's user directory.")
