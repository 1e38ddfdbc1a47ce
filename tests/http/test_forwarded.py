"""Trusted proxies (http/forwarded.py): who the client is, from whom headers are believed."""

from __future__ import annotations

import pytest

from x15g.http.forwarded import TrustedProxies
from x15g.http.messages import Request


def request(peer: str, **headers: str) -> Request:
    fields = {name.replace("_", "-").encode(): value.encode() for name, value in headers.items()}
    req = Request("GET", b"/", b"/", b"", 11, fields, True)
    req.peer = peer
    return req


def resolved(allow: tuple[str, ...], peer: str, **headers: str) -> tuple[str, str, str, bool]:
    req = request(peer, **headers)
    TrustedProxies(allow).resolve(req)
    return req.peer, req.scheme, req.request_id, req.forwarded


@pytest.mark.parametrize("allow, peer, headers, client", [
    (("127.0.0.1",), "127.0.0.1:5000", {"x_forwarded_for": "203.0.113.9"}, "203.0.113.9:0"),
    # walked from the right past trusted hops; a forged leftmost entry is never believed
    (("127.0.0.1", "10.0.0.0/8"), "127.0.0.1:5000", {"x_forwarded_for": "6.6.6.6, 203.0.113.9, 10.1.2.3"},
     "203.0.113.9:0"),
    (("*",), "192.0.2.1:1", {"x_forwarded_for": "6.6.6.6, 203.0.113.9"}, "6.6.6.6:0"),  # all trusted: leftmost
    (("127.0.0.1",), "127.0.0.1:5000", {"forwarded": 'for="[2001:db8::1]:4711";proto=https'}, "[2001:db8::1]:4711"),
    (("127.0.0.1",), "127.0.0.1:5000", {"forwarded": "for=unknown"}, "127.0.0.1:5000"),
    (("::1",), "[::1]:80", {"x_forwarded_for": "198.51.100.2"}, "198.51.100.2:0"),
    (("127.0.0.1",), "[::ffff:127.0.0.1]:80", {"x_forwarded_for": "198.51.100.2"}, "198.51.100.2:0"),
])
def test_a_trusted_peer_names_the_client(allow, peer, headers, client) -> None:
    assert resolved(allow, peer, **headers)[0] == client


def test_an_untrusted_peer_changes_nothing_but_is_marked() -> None:
    peer, scheme, request_id, forwarded = resolved(("10.0.0.0/8",), "127.0.0.1:5000", x_forwarded_for="1.2.3.4",
                                                   x_forwarded_proto="https", x_request_id="forged")
    assert (peer, scheme, request_id, forwarded) == ("127.0.0.1:5000", "http", "", True)


def test_scheme_and_request_id_from_a_trusted_peer() -> None:
    peer, scheme, request_id, _ = resolved(("127.0.0.1",), "127.0.0.1:5000", x_forwarded_proto="http, https",
                                           x_request_id="abc")
    assert (peer, scheme, request_id) == ("127.0.0.1:5000", "https", "abc")  # the nearest proxy's proto
    assert resolved(("127.0.0.1",), "127.0.0.1:5000", x_forwarded_proto="gopher")[1] == "http"


def test_without_forwarding_headers_nothing_is_looked_at() -> None:
    assert resolved(("*",), "unix") == ("unix", "http", "", False)
    assert not TrustedProxies(("127.0.0.1",)).trusts("")  # a unix-socket peer only with "*"
    assert TrustedProxies(("*",)).trusts("")
