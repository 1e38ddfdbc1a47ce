"""Conditional requests (pure, RFC 9110 §13).

`evaluate` applies the preconditions in the order of RFC 9110 §13.2.2 and answers PROCEED, 304 or
412; `range_applies` evaluates If-Range (§13.1.5). Entity-tags are compared as bytes including
their quotes; our own tags are strong (`"<mtime hex>-<size hex>"`). Times are whole seconds since
the epoch, the resolution of an HTTP-date.
"""

from __future__ import annotations

from x15g.http.dates import parse_http_date

PROCEED = 0
NOT_MODIFIED = 304
PRECONDITION_FAILED = 412

ANY = "*"


def parse_etags(value: bytes) -> list[tuple[bool, bytes]] | str:
    """`*` -> ANY, else the list of (weak, opaque-tag) of `1#entity-tag` (RFC 9110 §8.8.3).

    Commas may appear inside a quoted tag, so this scans instead of splitting. Parsing stops at the
    first malformed member: the members before it still count.
    """
    if value.strip() == b"*":
        return ANY
    tags: list[tuple[bool, bytes]] = []
    pos, end = 0, len(value)
    while pos < end:
        char = value[pos]
        if char in b" \t,":
            pos += 1
            continue
        weak = value.startswith(b"W/", pos)
        if weak:
            pos += 2
        if pos >= end or value[pos] != 0x22:  # DQUOTE
            break
        close = value.find(b'"', pos + 1)
        if close < 0:
            break
        tags.append((weak, value[pos : close + 1]))
        pos = close + 1
    return tags


def _strong_match(value: bytes, etag: bytes) -> bool:
    """If-Match: strong comparison, weak tags never match (RFC 9110 §8.8.3.2)."""
    tags = parse_etags(value)
    if isinstance(tags, str):  # ANY
        return True  # the representation exists, or we would not be evaluating (§13.1.1)
    return any(not weak and tag == etag for weak, tag in tags)


def _weak_match(value: bytes, etag: bytes) -> bool:
    """If-None-Match: weak comparison, W/ ignored on both sides (RFC 9110 §13.1.2)."""
    tags = parse_etags(value)
    if isinstance(tags, str):  # ANY
        return True
    opaque = etag[2:] if etag.startswith(b"W/") else etag
    return any(tag == opaque for _, tag in tags)


def evaluate(method: str, headers: dict[bytes, bytes], etag: bytes, last_modified: int) -> int:
    """PROCEED, NOT_MODIFIED (304) or PRECONDITION_FAILED (412), in RFC 9110 §13.2.2 order."""
    get_or_head = method == "GET" or method == "HEAD"
    value = headers.get(b"if-match")
    if value is not None:
        if not _strong_match(value, etag):
            return PRECONDITION_FAILED  # step 1
    else:
        value = headers.get(b"if-unmodified-since")
        if value is not None:
            date = parse_http_date(value)  # an invalid date is ignored (§13.1.4)
            if date is not None and last_modified > date:
                return PRECONDITION_FAILED  # step 2
    value = headers.get(b"if-none-match")
    if value is not None:
        if _weak_match(value, etag):
            return NOT_MODIFIED if get_or_head else PRECONDITION_FAILED  # step 3
    elif get_or_head:
        value = headers.get(b"if-modified-since")
        if value is not None:
            date = parse_http_date(value)  # invalid dates are ignored (§13.1.3)
            if date is not None and last_modified <= date:
                return NOT_MODIFIED  # step 4
    return PROCEED


def range_applies(if_range: bytes | None, etag: bytes, last_modified: int) -> bool:
    """Whether Range may be honoured given If-Range (RFC 9110 §13.1.5); True when absent.

    An entity-tag must match strongly (a weak tag never does); a date must equal Last-Modified
    exactly. Anything else means: ignore Range and send the whole representation.
    """
    if if_range is None:
        return True
    value = if_range.strip()
    if value.startswith(b'"') or value.startswith(b"W/"):
        return not value.startswith(b"W/") and value == etag
    date = parse_http_date(value)
    return date is not None and date == last_modified
