"""Trusted proxies (`--forwarded-allow-ips`): who the client really is behind a reverse proxy.

Only when the connection's peer is trusted are its forwarding headers believed: RFC 7239
`Forwarded` when present, else `X-Forwarded-For` and `X-Forwarded-Proto`. The address list is
walked from the right (the hop nearest to us) past every trusted address, like nginx's realip
module with `real_ip_recursive on` and uvicorn's proxy-headers mode: the first untrusted address
is the client, so a client cannot pose as another by sending its own header through the proxy.
The result rewrites `Request.peer` (then the access log, `--admin-access loopback`, CGI and WSGI
all see the client) and `Request.scheme`; a trusted peer's `X-Request-ID` becomes the request's
ID. From an untrusted peer the headers change nothing.
"""

from __future__ import annotations

import ipaddress
from typing import Iterable, Union

from x15g.http.messages import Request

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
_SCHEMES = {"http": "http", "https": "https"}
_CACHE_SIZE = 1024


def peer_host(peer: str) -> str:
    """The address part of "host:port" or "[v6]:port" ("" for a unix-socket peer)."""
    if peer.startswith("["):
        return peer[1:peer.find("]")]
    if peer == "unix":
        return ""
    return peer.rpartition(":")[0]


def format_peer(host: str, port: str = "0") -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


class TrustedProxies:
    """The trusted set and the rewrite of a request that came through one of them."""

    def __init__(self, allow: Iterable[str]) -> None:
        items = tuple(allow)
        self.everyone = "*" in items
        self.networks: tuple[Network, ...] = tuple(ipaddress.ip_network(i, strict=False) for i in items if i != "*")
        self._trusted: dict[str, bool] = {}

    def trusts(self, host: str) -> bool:
        """Is `host` (an address as text; "" for a unix-socket peer) a trusted proxy?"""
        known = self._trusted.get(host)
        if known is not None:
            return known
        if self.everyone:
            trusted = True
        elif not host:
            trusted = False  # a unix-socket peer is trusted only with "*"
        else:
            address = _address(host)
            trusted = address is not None and any(address in net for net in self.networks)
        if len(self._trusted) >= _CACHE_SIZE:
            self._trusted.clear()
        self._trusted[host] = trusted
        return trusted

    def resolve(self, request: Request) -> None:
        """Rewrite `request.peer`, `request.scheme` and `request.request_id` from its forwarding
        headers if its peer is trusted; mark it `forwarded` when it carries any (its answer then
        depends on who sent it, so it is never stored as a ready answer)."""
        headers = request.headers
        if not (b"forwarded" in headers or b"x-forwarded-for" in headers or b"x-forwarded-proto" in headers
                or b"x-request-id" in headers):
            return
        request.forwarded = True
        if not self.trusts(peer_host(request.peer)):
            return
        request_id = headers.get(b"x-request-id")
        if request_id:
            request.request_id = request_id.decode("latin-1")[:200]
        if b"forwarded" in headers:
            self._apply(request, _parse_forwarded(headers[b"forwarded"].decode("latin-1")))
            return
        proto = headers.get(b"x-forwarded-proto", b"").decode("latin-1").rpartition(",")[2].strip().lower()
        if proto in _SCHEMES:  # the value the nearest proxy set
            request.scheme = _SCHEMES[proto]
        fors = headers.get(b"x-forwarded-for", b"").decode("latin-1").split(",")
        hops = [(node, "") for node in fors if node.strip()]
        self._apply(request, hops)

    def _apply(self, request: Request, hops: list[tuple[str, str]]) -> None:
        """Walk `hops` (for, proto) from the right past trusted proxies; the next one is the client."""
        chosen = None
        for node, proto in reversed(hops):
            host, port = _split_node(node)
            if _address(host) is None:
                break  # "unknown", an obfuscated name: nothing to believe beyond it
            chosen = (host, port, proto)
            if not self.trusts(host):
                break
        if chosen is None:
            return
        host, port, proto = chosen
        request.peer = format_peer(host, port or "0")
        if proto in _SCHEMES:
            request.scheme = _SCHEMES[proto]


def _split_node(node: str) -> tuple[str, str]:
    """RFC 7239 §6 node: `1.2.3.4`, `1.2.3.4:80`, `[v6]`, `[v6]:80`, or a bare v6 (X-Forwarded-For)."""
    node = node.strip().strip('"')
    if node.startswith("["):
        host, _, rest = node[1:].partition("]")
        return host, rest[1:] if rest.startswith(":") and rest[1:].isdigit() else ""
    if node.count(":") == 1:
        host, _, port = node.partition(":")
        return host, port if port.isdigit() else ""
    return node, ""


def _parse_forwarded(value: str) -> list[tuple[str, str]]:
    """RFC 7239 `Forwarded`: one (for, proto) per comma-separated element, lower-cased proto."""
    hops = []
    for element in value.split(","):
        pairs = {}
        for pair in element.split(";"):
            name, eq, text = pair.partition("=")
            if eq:
                pairs[name.strip().lower()] = text.strip().strip('"')
        hops.append((pairs.get("for", ""), pairs.get("proto", "").lower()))
    return hops
