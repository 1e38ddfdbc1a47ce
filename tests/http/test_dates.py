"""Unit tests of HTTP date formatting, parsing and the per-second Date cache."""

from __future__ import annotations

import time

import pytest

from x15g.http.dates import DateCache, http_date, parse_http_date

SAMPLE = 784111777  # RFC 9110 §5.6.7 example: Sun, 06 Nov 1994 08:49:37 GMT


def test_http_date_imf_fixdate() -> None:
    assert http_date(SAMPLE) == b"Sun, 06 Nov 1994 08:49:37 GMT"
    assert http_date(SAMPLE + 0.999) == b"Sun, 06 Nov 1994 08:49:37 GMT"
    assert http_date(0) == b"Thu, 01 Jan 1970 00:00:00 GMT"


@pytest.mark.parametrize("value", [
    b"Sun, 06 Nov 1994 08:49:37 GMT",  # IMF-fixdate
    b"Sunday, 06-Nov-94 08:49:37 GMT",  # obsolete RFC 850
    b"Sun Nov  6 08:49:37 1994",  # obsolete asctime
    b" Sun, 06 Nov 1994 08:49:37 GMT ",
])
def test_parse_all_three_forms(value: bytes) -> None:
    assert parse_http_date(value) == SAMPLE


@pytest.mark.parametrize("value", [
    b"", b"yesterday", b"Sun, 06 Nov 1994 08:49:37 UTC", b"Sun, 6 Nov 1994 08:49:37 GMT",
    b"Sun, 06 Nov 1994 08:49 GMT", b"Sun, 31 Feb 1994 08:49:37 GMT",
    b"Sun, 06 Nov 1994 24:49:37 GMT", b"Sun, 06 Foo 1994 08:49:37 GMT",
    b"sun, 06 nov 1994 08:49:37 gmt", b"Sunday, 06-Nov-1994 08:49:37 GMT",
    b"Sun Nov 6 08:49:37 1994", b"784111777",
])
def test_parse_invalid(value: bytes) -> None:
    assert parse_http_date(value) is None


@pytest.mark.parametrize("ts", [0, 1, SAMPLE, 951782400, 1700000000, 2147483647, 4102444800])
def test_round_trip(ts: int) -> None:
    assert parse_http_date(http_date(ts)) == ts


def test_rfc850_two_digit_year_not_far_future() -> None:
    # RFC 9110 §5.6.7: a year more than 50 years ahead is taken as the most recent past one.
    this_year = time.gmtime().tm_year
    yy = (this_year + 60) % 100
    parsed = parse_http_date(b"Monday, 01-Jan-%02d 00:00:00 GMT" % yy)
    assert parsed is not None
    assert time.gmtime(parsed).tm_year <= this_year + 50


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        return self.now


def test_date_cache_formats_once_per_second() -> None:
    clock = FakeClock(SAMPLE + 0.1)
    cache = DateCache(clock)
    first = cache.header()
    assert first == b"Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
    clock.now = SAMPLE + 0.9
    assert cache.header() is first  # the same cached object within the second
    clock.now = SAMPLE + 1.0
    assert cache.header() == b"Date: Sun, 06 Nov 1994 08:49:38 GMT\r\n"


def test_date_cache_default_clock_is_now() -> None:
    value = DateCache().header()[6:-2]
    parsed = parse_http_date(value)
    assert parsed is not None and abs(parsed - time.time()) < 5
