"""Byte ranges: parse `Range: bytes=...` and describe 206/416 answers (pure, RFC 9110 §14).

`parse_range(value, size)` returns a list of inclusive `(start, end)` pairs (sorted, overlapping and
adjacent ones coalesced), or `UNSATISFIABLE` (answer 416 with `Content-Range: bytes */size`), or
`IGNORE` (a malformed field, an unknown unit or too many ranges: serve the whole 200, as
RFC 9110 §14.2 lets a server do). `multipart_pieces` lays out a `multipart/byteranges` body as
bytes and `(offset, count)` pieces so the caller can still send file data with sendfile.
"""

from __future__ import annotations

import os
from typing import Union

IGNORE = "ignore"
UNSATISFIABLE = "unsatisfiable"

# RFC 9110 §14.2: a server MAY ignore a Range with very many ranges (denial of service: CVE-2011-3192).
MAX_RANGES = 100
# Longer digit strings are not real positions; also avoids Python's int-from-str digit limit.
_MAX_DIGITS = 18
_HUGE = 10**19

Ranges = Union[list[tuple[int, int]], str]


def _number(text: bytes) -> int:
    """A non-empty run of DIGIT, or -1 when it is not one (RFC 9110 §14.1.2: 1*DIGIT)."""
    if not text or not text.isdigit():
        return -1
    if len(text) > _MAX_DIGITS:
        return _HUGE
    return int(text)


def _parse_spec(spec: bytes, size: int) -> tuple[int, int] | str | None:
    """One range-spec -> (start, end) clamped to `size`, None if unsatisfiable, IGNORE if invalid."""
    first, dash, last = spec.partition(b"-")
    if not dash:
        return IGNORE
    if not first:
        # suffix-range: the last N bytes (RFC 9110 §14.1.2); "-0" is unsatisfiable.
        length = _number(last)
        if length < 0:
            return IGNORE
        if length == 0 or size == 0:
            return None
        return (max(size - length, 0), size - 1)
    start = _number(first)
    if start < 0:
        return IGNORE
    if last:
        end = _number(last)
        if end < 0 or end < start:
            return IGNORE  # last-pos < first-pos makes the whole field invalid (§14.1.1)
    else:
        end = _HUGE
    if start >= size:
        return None
    return (start, min(end, size - 1))


def coalesce(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sort and merge overlapping or adjacent ranges (RFC 9110 §14.6 allows any order then)."""
    ranges = sorted(ranges)
    merged = [ranges[0]]
    for start, end in ranges[1:]:
        last_start, last_end = merged[-1]
        if start <= last_end + 1:
            if end > last_end:
                merged[-1] = (last_start, end)
        else:
            merged.append((start, end))
    return merged


def parse_range(value: bytes, size: int, max_ranges: int = MAX_RANGES) -> Ranges:
    """Evaluate a Range field value against a representation of `size` bytes.

    Returns a non-empty coalesced list of inclusive (start, end), or UNSATISFIABLE, or IGNORE.
    """
    unit, eq, range_set = value.partition(b"=")
    if not eq or unit.strip().lower() != b"bytes":
        return IGNORE  # unknown unit: ignore the field (RFC 9110 §14.2)
    if size == 0:
        # Only a suffix-range is satisfiable on an empty representation (§14.1.1) and no 206 can
        # describe it; ignoring Range and sending the empty 200 is always allowed (§14.2).
        return IGNORE
    found: list[tuple[int, int]] = []
    count = 0
    for spec in range_set.split(b","):
        spec = spec.strip(b" \t")
        if not spec:
            continue  # empty list elements are allowed and ignored (RFC 9110 §5.6.1)
        count += 1
        if count > max_ranges:
            return IGNORE
        parsed = _parse_spec(spec, size)
        if isinstance(parsed, str):  # IGNORE
            return IGNORE
        if parsed is not None:
            found.append(parsed)
    if count == 0:
        return IGNORE
    if not found:
        return UNSATISFIABLE
    if len(found) == 1:
        return found
    return coalesce(found)


def content_range(start: int, end: int, size: int) -> str:
    """The Content-Range value of one part: `bytes start-end/size` (RFC 9110 §14.4)."""
    return f"bytes {start}-{end}/{size}"


def unsatisfied_range(size: int) -> str:
    """The Content-Range value of a 416 answer: `bytes */size` (RFC 9110 §15.5.17)."""
    return f"bytes */{size}"


def new_boundary() -> str:
    """A fresh multipart boundary: random, so it cannot be predicted and planted in a file."""
    return os.urandom(12).hex()


def multipart_content_type(boundary: str) -> str:
    """The Content-Type of a multipart/byteranges answer (RFC 9110 §14.6)."""
    return f"multipart/byteranges; boundary={boundary}"


def multipart_pieces(
    ranges: list[tuple[int, int]], size: int, content_type: str, boundary: str
) -> tuple[list[bytes | tuple[int, int]], int]:
    """Lay out a multipart/byteranges body (RFC 9110 §14.6).

    Returns (pieces, total length): pieces are bytes (delimiters and part headers) and
    `(offset, count)` tuples standing for file data, in sending order.
    """
    pieces: list[bytes | tuple[int, int]] = []
    total = 0
    lead = b"--" + boundary.encode("ascii")
    type_line = b"\r\nContent-Type: " + content_type.encode("latin-1")
    for index, (start, end) in enumerate(ranges):
        part_head = (b"\r\n" if index else b"") + lead + type_line
        part_head += b"\r\nContent-Range: " + content_range(start, end, size).encode("ascii") + b"\r\n\r\n"
        pieces.append(part_head)
        pieces.append((start, end - start + 1))
        total += len(part_head) + end - start + 1
    tail = b"\r\n" + lead + b"--\r\n"
    pieces.append(tail)
    return pieces, total + len(tail)
