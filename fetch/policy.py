"""Which URLs the server may fetch: http(s) only, no credentials in the URL, and only public addresses unless the
user opts in.

A prompt (or an API request) carries URLs that the *server* fetches, so a URL could otherwise reach the machine's
own services (ComfyUI's endpoints included), the private network or a cloud metadata address. Addresses are
checked after DNS resolution and the connection goes to the checked address, so a name cannot resolve to one
address for the check and another for the connection. Two settings, read where ComfyUI runs, open this up:

- `LTX097_ALLOW_PRIVATE_URLS=1`: any address (loopback, private network, link-local, ...);
- `LTX097_URL_ALLOW_HOSTS=host[:port],...`: just these hosts (a name as written in the URL, or an IP address; with
  a port, only that port).

URLs with a user name or password (`https://user:pass@host/...`) are refused rather than stripped: the credentials
would otherwise end up in logs and the prompt history, and stripping them would fail later with a confusing
authentication error.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import urllib.parse
from dataclasses import dataclass

ALLOW_PRIVATE_ENV = "LTX097_ALLOW_PRIVATE_URLS"
ALLOW_HOSTS_ENV = "LTX097_URL_ALLOW_HOSTS"
SCHEMES = {"http": 80, "https": 443}

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class FetchError(ValueError):
    """A URL that cannot be fetched; the message is safe to show users (no credentials, no query string)."""


def redact_url(url: str) -> str:
    """`scheme://host[:port]/path`: the URL without user name, password, query string or fragment (a `data:` URI
    shows only its media type)."""
    try:
        parts = urllib.parse.urlsplit(str(url).strip())
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "(an invalid URL)"
    scheme = parts.scheme.lower()
    if not scheme:
        return "(an invalid URL)"
    if scheme == "data":
        return f"data:{parts.path.split(',', 1)[0].split(';', 1)[0]},..."
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    return f"{scheme}://{netloc}{parts.path}"


_URL_IN_TEXT = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>\\]+")


def redact_text(text: str) -> str:
    """`text` with every URL in it redacted (`redact_url`): for messages, logs, metadata and histories that may quote
    a URL."""
    return _URL_IN_TEXT.sub(lambda match: redact_url(match.group(0)), str(text))


@dataclass(frozen=True)
class Target:
    """A checked http(s) URL, split into what a connection needs."""

    url: str
    scheme: str
    host: str
    port: int
    path: str
    """Path and query, as sent in the request line."""

    @property
    def host_header(self) -> str:
        host = ascii_host(self.host)
        host = f"[{host}]" if ":" in host else host
        return host if self.port == SCHEMES[self.scheme] else f"{host}:{self.port}"


def parse_url(url: str, what: str = "the URL") -> Target:
    """Split an http(s) URL; refuse other schemes, credentials and malformed hosts or ports."""
    shown = redact_url(url)
    try:
        parts = urllib.parse.urlsplit(str(url).strip())
        port = parts.port
    except ValueError:
        raise FetchError(f"{what}: {shown} is not a valid URL (its host or port cannot be read)") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise FetchError(f"{what}: {shown} is not an http or https URL; only http(s) URLs are fetched")
    if parts.username is not None or parts.password is not None:
        raise FetchError(f"{what}: {shown} has a user name or password in it; such URLs are refused so that "
                         f"credentials never reach logs or the prompt history. Use a URL without them and put the "
                         f"token in the environment where ComfyUI runs: HF_TOKEN for Hugging Face, "
                         f"LTX097_TOKEN_<HOST> for other hosts (sent as an Authorization header)")
    if not parts.hostname:
        raise FetchError(f"{what}: {shown} has no host name")
    path = urllib.parse.quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
    if parts.query:
        path += "?" + urllib.parse.quote(parts.query, safe="/%:@!$&'()*+,;=-._~?")
    return Target(url=str(url).strip(), scheme=scheme, host=parts.hostname, port=port or SCHEMES[scheme], path=path)


def check_url(url: str, what: str = "the URL") -> None:
    """Raise `FetchError` unless `url` is an http(s) URL without credentials (no DNS lookup: for refusing a request
    before it runs; addresses are checked when it is fetched)."""
    parse_url(url, what)


def check_reachable(url: str, what: str = "the URL") -> None:
    """`check_url` plus the address rules (one DNS lookup, no connection): for refusing a request whose URL could
    never be fetched before it is queued."""
    allowed_addresses(parse_url(url, what), what, url)


def ascii_host(host: str) -> str:
    """The host name as DNS and TLS (SNI) take it: IDNA-encoded, or unchanged when it cannot be."""
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


# ------------------------------------------------------------------------------------------------------------------
# Addresses


def is_public(address: IPAddress) -> bool:
    """True for globally routable unicast addresses; IPv4 embedded in IPv6 (mapped, 6to4, NAT64, Teredo) is judged
    by the embedded address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is None and address.teredo is not None:
            embedded = address.teredo[1]
        if embedded is not None:
            return is_public(embedded)
    return address.is_global and not (address.is_multicast or address.is_reserved or address.is_unspecified
                                      or address.is_loopback or address.is_link_local or address.is_private)


def private_allowed() -> bool:
    """`LTX097_ALLOW_PRIVATE_URLS`: whether every address may be fetched."""
    raw = os.environ.get(ALLOW_PRIVATE_ENV, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise FetchError(f"{ALLOW_PRIVATE_ENV}='{os.environ[ALLOW_PRIVATE_ENV]}' is not a yes/no value; set it to 1 "
                     f"(fetch any address, including this machine and its private network) or 0 / unset (public "
                     f"addresses only)")


def allowed_hosts() -> list[tuple[str, int | None]]:
    """`LTX097_URL_ALLOW_HOSTS` as (host, port or None) pairs; hosts are lower-case names or IP addresses."""
    raw = os.environ.get(ALLOW_HOSTS_ENV, "")
    entries = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        host, port = item, None
        if item.startswith("["):
            host, _, rest = item[1:].partition("]")
            if rest:
                port = rest[1:] if rest.startswith(":") else "bad"
        elif item.count(":") == 1:
            host, port = item.split(":")
        try:
            number = None if port is None else int(port)
            if number is not None and not 0 < number < 65536:
                raise ValueError
        except ValueError:
            raise FetchError(f"{ALLOW_HOSTS_ENV} entry '{item}' has an invalid port; entries are host[:port] "
                             f"separated by commas (e.g. 127.0.0.1:8188,[::1]:9000,models.lan)") from None
        if not host:
            raise FetchError(f"{ALLOW_HOSTS_ENV} entry '{item}' has no host; entries are host[:port] separated by "
                             f"commas (e.g. 127.0.0.1:8188,models.lan)")
        entries.append((host.lower().rstrip("."), number))
    return entries


def _listed(target: Target, address: IPAddress, entries: list[tuple[str, int | None]]) -> bool:
    names = {target.host.lower().rstrip("."), str(address)}
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        names.add(str(address.ipv4_mapped))
    return any(host in names and port in (None, target.port) for host, port in entries)


def unreachable(what: str, url: str) -> FetchError:
    """The one message for a host that is refused, unknown, closed or silent: a prompt cannot tell them apart, so
    it cannot scan the server's network."""
    return FetchError(f"{what}: {redact_url(url)} could not be fetched: the host is unreachable or not allowed "
                      f"(addresses of this machine or a private network are refused unless {ALLOW_PRIVATE_ENV}=1 or "
                      f"{ALLOW_HOSTS_ENV} lists the host)")


def allowed_addresses(target: Target, what: str, origin: str) -> list[IPAddress]:
    """Resolve `target`'s host once and keep the addresses it may connect to (`origin`, the URL the user gave,
    is what messages name)."""
    every = private_allowed()
    entries = allowed_hosts()
    try:
        infos = socket.getaddrinfo(ascii_host(target.host), target.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise unreachable(what, origin) from None
    found: list[IPAddress] = []
    for family, _, _, _, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        address = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
        if address not in found and (every or is_public(address) or _listed(target, address, entries)):
            found.append(address)
    if not found:
        raise unreachable(what, origin)
    return found
