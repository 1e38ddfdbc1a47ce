"""Range parsing and multipart layout on byte literals (RFC 9110 §14)."""

from __future__ import annotations

import pytest

from x15g.http.ranges import (
    IGNORE,
    UNSATISFIABLE,
    coalesce,
    content_range,
    multipart_pieces,
    parse_range,
    unsatisfied_range,
)


@pytest.mark.parametrize(
    "value, size, expected",
    [
        (b"bytes=0-0", 100, [(0, 0)]),  # one byte is a 206, never a 416
        (b"bytes=0-99", 100, [(0, 99)]),
        (b"bytes=10-", 100, [(10, 99)]),
        (b"bytes=10-1000", 100, [(10, 99)]),
        (b"bytes=-10", 100, [(90, 99)]),
        (b"bytes=-1000", 100, [(0, 99)]),
        (b"bytes=99-99", 100, [(99, 99)]),
        (b"BYTES=1-2", 100, [(1, 2)]),  # range units are case-insensitive
        (b"bytes= 1-2 , 5-6", 100, [(1, 2), (5, 6)]),
        (b"bytes=1-2,,5-6", 100, [(1, 2), (5, 6)]),
        (b"bytes=5-6,1-2", 100, [(1, 2), (5, 6)]),
        (b"bytes=0-4,5-9", 100, [(0, 9)]),  # adjacent ones merge
        (b"bytes=0-50,20-30,40-60", 100, [(0, 60)]),  # overlapping ones merge
        (b"bytes=0-0,-1", 100, [(0, 0), (99, 99)]),
        (b"bytes=200-300,0-1", 100, [(0, 1)]),  # unsatisfiable members are dropped
        (b"bytes=1-2", 0, IGNORE),  # empty file: the whole (empty) 200
        (b"bytes=100-", 100, UNSATISFIABLE),
        (b"bytes=100-200", 100, UNSATISFIABLE),
        (b"bytes=-0", 100, UNSATISFIABLE),
        (b"bytes=100-,200-", 100, UNSATISFIABLE),
        (b"bytes=99999999999999999999999-", 100, UNSATISFIABLE),
        (b"bytes=0-99999999999999999999999", 100, [(0, 99)]),
        (b"bytes=5-1", 100, IGNORE),  # last < first: invalid field
        (b"bytes=a-b", 100, IGNORE),
        (b"bytes=1", 100, IGNORE),
        (b"bytes=", 100, IGNORE),
        (b"bytes=-", 100, IGNORE),
        (b"bytes=+1-2", 100, IGNORE),
        (b"bytes=1-2,x", 100, IGNORE),
        (b"items=1-2", 100, IGNORE),  # unknown unit
        (b"bytes 1-2", 100, IGNORE),
        (b"", 100, IGNORE),
    ],
)
def test_parse_range(value: bytes, size: int, expected: object) -> None:
    assert parse_range(value, size) == expected


def test_too_many_ranges_are_ignored() -> None:
    many = b"bytes=" + b",".join(b"%d-%d" % (i * 2, i * 2) for i in range(101))
    assert parse_range(many, 1000) == IGNORE
    hundred = b"bytes=" + b",".join(b"%d-%d" % (i * 2, i * 2) for i in range(100))
    assert len(parse_range(hundred, 1000)) == 100


def test_many_overlapping_ranges_collapse_to_one() -> None:
    value = b"bytes=" + b",".join([b"0-"] * 50)
    assert parse_range(value, 10_000) == [(0, 9999)]


def test_coalesce_keeps_disjoint_ranges() -> None:
    assert coalesce([(10, 20), (0, 5), (22, 30)]) == [(0, 5), (10, 20), (22, 30)]


def test_content_range_values() -> None:
    assert content_range(0, 0, 10) == "bytes 0-0/10"
    assert unsatisfied_range(10) == "bytes */10"


def test_multipart_pieces_layout() -> None:
    pieces, total = multipart_pieces([(0, 1), (5, 7)], 10, "text/plain", "BOUND")
    data = b"0123456789"
    body = b"".join(p if isinstance(p, bytes) else data[p[0] : p[0] + p[1]] for p in pieces)
    assert body == (
        b"--BOUND\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/10\r\n\r\n01"
        b"\r\n--BOUND\r\nContent-Type: text/plain\r\nContent-Range: bytes 5-7/10\r\n\r\n567"
        b"\r\n--BOUND--\r\n"
    )
    assert total == len(body)
    assert [p for p in pieces if isinstance(p, tuple)] == [(0, 2), (5, 3)]
