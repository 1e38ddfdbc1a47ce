"""Accept-Encoding negotiation for sidecars (RFC 9110 §12.5.3)."""

from __future__ import annotations

import pytest

from x15g.static.precompressed import IDENTITY, choose, parse_accept_encoding

BOTH = ("br", "gzip")


@pytest.mark.parametrize(
    "value, available, expected",
    [
        (None, BOTH, IDENTITY),
        (b"", BOTH, IDENTITY),
        (b"gzip, deflate, br", BOTH, "br"),  # br preferred on a tie
        (b"gzip", BOTH, "gzip"),
        (b"x-gzip", BOTH, "gzip"),
        (b"br;q=0.5, gzip;q=0.8", BOTH, "gzip"),
        (b"br;q=0, gzip", BOTH, "gzip"),
        (b"br;q=0, gzip;q=0", BOTH, IDENTITY),
        (b"*", BOTH, "br"),
        (b"*;q=0.5, identity", BOTH, IDENTITY),  # identity has the higher q
        (b"gzip;q=0.5", BOTH, "gzip"),  # a named coding beats the implicit identity
        (b"identity", BOTH, IDENTITY),
        (b"deflate", BOTH, IDENTITY),
        (b"br", ("gzip",), IDENTITY),
        (b"GZIP ; Q=1.0", BOTH, "gzip"),
        (b"gzip;q=abc, br", BOTH, "br"),  # malformed q: that member is skipped
        (b"gzip;q=2", ("gzip",), IDENTITY),
    ],
)
def test_choose(value: bytes | None, available: tuple[str, ...], expected: str) -> None:
    assert choose(value, available) == expected


def test_parse_accept_encoding() -> None:
    assert parse_accept_encoding(b"gzip;q=0.5, br , *;q=0") == {"gzip": 0.5, "br": 1.0, "*": 0.0}
