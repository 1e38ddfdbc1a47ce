"""The lazily read request body (server/bodyreader.py) as a state machine over a scripted recv."""

from __future__ import annotations

import pytest

from x15g.errors import HTTPError
from x15g.http.body import ChunkedBody, ContentLengthBody
from x15g.http.parser import Limits
from x15g.server.bodyreader import BodyReader


def reader(decoder, buffered: bytes, pieces: list[bytes], expect: bool = False) -> tuple[BodyReader, list[bytes]]:
    sent: list[bytes] = []
    feed = iter(pieces)
    return BodyReader(decoder, buffered, lambda: next(feed, b""), sent.append, expect), sent


def test_reads_in_the_sizes_asked_and_keeps_what_follows() -> None:
    body, _ = reader(ContentLengthBody(10), b"0123", [b"456789GET / HTTP/1.1"])
    assert body.read(2) == b"01" and body.read(5) == b"23456" and body.read() == b"789"
    assert body.done and body.leftover == b"GET / HTTP/1.1" and body.read(10) == b""


def test_lines_across_reads_of_a_chunked_body() -> None:
    body, _ = reader(ChunkedBody(Limits()), b"", [b"5\r\none\nt\r\n", b"6\r\nwo\nthr\r\n", b"2\r\nee\r\n0\r\n\r\n"])
    assert list(body) == [b"one\n", b"two\n", b"three"]
    assert body.readline() == b"" and body.done


def test_continue_goes_out_on_the_first_read_only_before_an_answer() -> None:
    body, sent = reader(ContentLengthBody(3), b"", [b"abc"], expect=True)
    assert sent == [] and body.read() == b"abc" and sent == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    late, sent = reader(ContentLengthBody(3), b"", [b"abc"], expect=True)
    late.answered = True
    assert late.discard() and sent == []


def test_discard_is_bounded_and_errors_mark_the_body_broken() -> None:
    body, _ = reader(ContentLengthBody(10), b"", [b"0123456789"])
    assert body.unread_within(10) and body.discard(10)
    big, _ = reader(ContentLengthBody(100), b"", [b"x" * 40] * 3)
    assert not big.unread_within(50) and not big.discard(50)
    short, _ = reader(ContentLengthBody(10), b"", [b"0123"])  # then EOF
    with pytest.raises(HTTPError) as error:
        short.read()
    assert error.value.status == 400 and short.broken and not short.unread_within()
    limits = Limits(max_body_size=4)
    too_big, _ = reader(ChunkedBody(limits), b"", [b"5\r\nhello\r\n0\r\n\r\n"])
    with pytest.raises(HTTPError) as error:
        too_big.read()
    assert error.value.status == 413 and too_big.broken
