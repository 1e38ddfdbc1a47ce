"""HTTP dates (RFC 9110 §5.6.7): format IMF-fixdate, parse all three forms, cache `Date:`.

Senders MUST generate IMF-fixdate; recipients MUST accept the obsolete RFC 850 and asctime
forms too. The `Date` header line is formatted at most once per second (a cached bytes object).
"""

from __future__ import annotations

import calendar
import re
import time
from typing import Callable

_DAYS = (b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun")
_MONTHS = (b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct",
           b"Nov", b"Dec")
_MONTH_NUM = {m: i + 1 for i, m in enumerate(_MONTHS)}
_LONG_DAYS = (b"Monday", b"Tuesday", b"Wednesday", b"Thursday", b"Friday", b"Saturday",
              b"Sunday")

_DAY = b"(" + b"|".join(_DAYS) + b")"
_LONG_DAY = b"(" + b"|".join(_LONG_DAYS) + b")"
_MONTH = b"(" + b"|".join(_MONTHS) + b")"
_TIME = rb"(\d\d):(\d\d):(\d\d)"
# Sun, 06 Nov 1994 08:49:37 GMT
_IMF = re.compile(_DAY + rb", (\d\d) " + _MONTH + rb" (\d{4}) " + _TIME + rb" GMT")
# Sunday, 06-Nov-94 08:49:37 GMT
_RFC850 = re.compile(_LONG_DAY + rb", (\d\d)-" + _MONTH + rb"-(\d\d) " + _TIME + rb" GMT")
# Sun Nov  6 08:49:37 1994
_ASCTIME = re.compile(_DAY + rb" " + _MONTH + rb" ([ \d]\d) " + _TIME + rb" (\d{4})")


def http_date(ts: float) -> bytes:
    """Format a POSIX timestamp as IMF-fixdate, e.g. b"Sun, 06 Nov 1994 08:49:37 GMT"."""
    t = time.gmtime(ts)
    return b"%s, %02d %s %04d %02d:%02d:%02d GMT" % (
        _DAYS[t.tm_wday], t.tm_mday, _MONTHS[t.tm_mon - 1], t.tm_year, t.tm_hour, t.tm_min,
        t.tm_sec)


def _two_digit_year(yy: int, now: float | None = None) -> int:
    """RFC 9110 §5.6.7: a 2-digit year more than 50 years in the future means the past century."""
    this_year = time.gmtime(time.time() if now is None else now).tm_year
    year = this_year - this_year % 100 + yy
    if year > this_year + 50:
        year -= 100
    return year


def _timestamp(year: int, month: int, day: int, hh: int, mm: int, ss: int) -> int | None:
    if not (1 <= day <= calendar.monthrange(year, month)[1] and hh < 24 and mm < 60 and ss < 61):
        return None
    return calendar.timegm((year, month, day, hh, mm, min(ss, 59), 0, 0, 0))


def parse_http_date(value: bytes) -> int | None:
    """Parse an HTTP-date (IMF-fixdate, RFC 850 or asctime) to POSIX seconds; None if invalid."""
    value = value.strip(b" \t")
    m = _IMF.fullmatch(value)
    if m:
        _, day, mon, year, hh, mm, ss = m.groups()
        return _timestamp(int(year), _MONTH_NUM[mon], int(day), int(hh), int(mm), int(ss))
    m = _RFC850.fullmatch(value)
    if m:
        _, day, mon, yy, hh, mm, ss = m.groups()
        return _timestamp(_two_digit_year(int(yy)), _MONTH_NUM[mon], int(day), int(hh), int(mm),
                          int(ss))
    m = _ASCTIME.fullmatch(value)
    if m:
        _, mon, day, hh, mm, ss, year = m.groups()
        return _timestamp(int(year), _MONTH_NUM[mon], int(day.strip()), int(hh), int(mm), int(ss))
    return None


class DateCache:
    """The `Date: <IMF-fixdate>\\r\\n` header line, re-formatted at most once per second."""

    __slots__ = ("_clock", "_second", "_line")

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._second = -1
        self._line = b""

    def header(self) -> bytes:
        """The current Date header line (with its CRLF)."""
        second = int(self._clock())
        if second != self._second:
            self._second = second
            self._line = b"Date: " + http_date(second) + b"\r\n"
        return self._line
