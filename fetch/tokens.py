"""Tokens for private downloads, read from the environment and sent as an `Authorization: Bearer` header.

A token in a URL's query string would travel with the URL into prompts, histories and file metadata; a header does
not. `HF_TOKEN` (the variable `huggingface_hub` reads too) goes to `huggingface.co` and `hf.co`; any other host gets
its own variable, `LTX097_TOKEN_<HOST>` with the host name upper-cased and every character that is not a letter or
a digit written `_` (`LTX097_TOKEN_CIVITAI_COM` for `civitai.com`). A token is sent only to exactly that host (not
to where it redirects), and only over https, or over http to a host listed in `LTX097_URL_ALLOW_HOSTS` (your own
network).
"""

from __future__ import annotations

import os
import re

from .policy import Target, allowed_hosts

HF_TOKEN_ENV = "HF_TOKEN"
HF_HOSTS = frozenset({"huggingface.co", "hf.co"})
HOST_TOKEN_PREFIX = "LTX097_TOKEN_"


def host_token_variable(host: str) -> str:
    """The environment variable that holds the token for `host`."""
    return HOST_TOKEN_PREFIX + re.sub(r"[^A-Z0-9]", "_", host.upper().rstrip("."))


def token_for(target: Target) -> str | None:
    """The token to send to `target`'s host, or None."""
    host = target.host.lower().rstrip(".")
    if target.scheme != "https" and not any(listed == host for listed, _port in allowed_hosts()):
        return None
    token = os.environ.get(host_token_variable(host), "").strip()
    if not token and host in HF_HOSTS:
        token = os.environ.get(HF_TOKEN_ENV, "").strip()
    return token or None


def auth_headers(target: Target) -> dict[str, str]:
    token = token_for(target)
    return {"Authorization": f"Bearer {token}"} if token else {}
