"""Preconditions in RFC 9110 §13.2.2 order, and If-Range, on byte literals."""

from __future__ import annotations

import pytest

from x15g.http.conditional import ANY, NOT_MODIFIED, PRECONDITION_FAILED, PROCEED, evaluate, parse_etags, range_applies

ETAG = b'"5f3a-400"'
LM = 784111777  # Sun, 06 Nov 1994 08:49:37 GMT
LM_TEXT = b"Sun, 06 Nov 1994 08:49:37 GMT"
BEFORE = b"Sun, 06 Nov 1994 08:49:36 GMT"
AFTER = b"Sun, 06 Nov 1994 08:49:38 GMT"


@pytest.mark.parametrize(
    "value, expected",
    [
        (b"*", ANY),
        (b' * ', ANY),
        (b'"a"', [(False, b'"a"')]),
        (b'W/"a", "b"', [(True, b'"a"'), (False, b'"b"')]),
        (b'"a,b" , "c"', [(False, b'"a,b"'), (False, b'"c"')]),
        (b'"a", bogus, "c"', [(False, b'"a"')]),
        (b'"unterminated', []),
        (b"", []),
    ],
)
def test_parse_etags(value: bytes, expected: object) -> None:
    assert parse_etags(value) == expected


@pytest.mark.parametrize(
    "method, headers, expected",
    [
        ("GET", {}, PROCEED),
        # If-None-Match: weak comparison; GET/HEAD -> 304, others -> 412
        ("GET", {b"if-none-match": ETAG}, NOT_MODIFIED),
        ("HEAD", {b"if-none-match": b'W/"5f3a-400"'}, NOT_MODIFIED),
        ("GET", {b"if-none-match": b'"x", "5f3a-400"'}, NOT_MODIFIED),
        ("GET", {b"if-none-match": b"*"}, NOT_MODIFIED),
        ("GET", {b"if-none-match": b'"other"'}, PROCEED),
        ("POST", {b"if-none-match": ETAG}, PRECONDITION_FAILED),
        # If-Modified-Since: GET/HEAD only, ignored with If-None-Match, invalid dates ignored
        ("GET", {b"if-modified-since": LM_TEXT}, NOT_MODIFIED),
        ("GET", {b"if-modified-since": AFTER}, NOT_MODIFIED),
        ("GET", {b"if-modified-since": BEFORE}, PROCEED),
        ("GET", {b"if-modified-since": b"yesterday"}, PROCEED),
        ("POST", {b"if-modified-since": LM_TEXT}, PROCEED),
        ("GET", {b"if-none-match": b'"other"', b"if-modified-since": LM_TEXT}, PROCEED),
        # If-Match: strong comparison, weak never matches, * matches an existing file
        ("GET", {b"if-match": ETAG}, PROCEED),
        ("GET", {b"if-match": b"*"}, PROCEED),
        ("GET", {b"if-match": b'W/"5f3a-400"'}, PRECONDITION_FAILED),
        ("GET", {b"if-match": b'"other"'}, PRECONDITION_FAILED),
        # If-Unmodified-Since: only without If-Match; invalid dates ignored
        ("GET", {b"if-unmodified-since": BEFORE}, PRECONDITION_FAILED),
        ("GET", {b"if-unmodified-since": LM_TEXT}, PROCEED),
        ("GET", {b"if-unmodified-since": b"garbage"}, PROCEED),
        ("GET", {b"if-match": ETAG, b"if-unmodified-since": BEFORE}, PROCEED),
        # order: If-Match failure wins over If-None-Match
        ("GET", {b"if-match": b'"other"', b"if-none-match": ETAG}, PRECONDITION_FAILED),
        ("GET", {b"if-match": ETAG, b"if-none-match": ETAG}, NOT_MODIFIED),
    ],
)
def test_evaluate(method: str, headers: dict[bytes, bytes], expected: int) -> None:
    assert evaluate(method, headers, ETAG, LM) == expected


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, True),
        (ETAG, True),
        (b'W/"5f3a-400"', False),  # a weak tag never validates a range
        (b'"other"', False),
        (LM_TEXT, True),
        (AFTER, False),  # a date must match exactly
        (BEFORE, False),
        (b"not a date", False),
    ],
)
def test_range_applies(value: bytes | None, expected: bool) -> None:
    assert range_applies(value, ETAG, LM) is expected
