"""Unit tests of the Content-Length and chunked body decoders, on byte literals."""

from __future__ import annotations

import pytest

from x15g.errors import HTTPError, ProtocolError
from x15g.http.body import ChunkedBody, ContentLengthBody
from x15g.http.parser import Limits

LIMITS = Limits()


def feed_all(body, data: bytes, step: int | None = None) -> int:
    """Feed `data` in pieces of `step` bytes (all at once when None); return bytes consumed."""
    if step is None:
        return body.feed(data)
    consumed = 0
    for i in range(0, len(data), step):
        piece = memoryview(data[i:i + step])
        n = body.feed(piece)
        consumed += n
        if n < len(piece):
            break
    return consumed


@pytest.mark.parametrize("step", [None, 1, 3])
def test_content_length_body_and_leftover(step: int | None) -> None:
    body = ContentLengthBody(5)
    assert not body.done
    assert feed_all(body, b"helloGET /", step) == 5
    assert body.done and body.take() == b"hello" and body.take() == b""


def test_content_length_zero_is_done() -> None:
    body = ContentLengthBody(0)
    assert body.done and body.feed(b"abc") == 0


@pytest.mark.parametrize("step", [None, 1, 2, 5])
@pytest.mark.parametrize("raw, data, trailers", [
    (b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", b"hello world", {}),
    (b"A\r\n0123456789\r\n0\r\n\r\n", b"0123456789", {}),
    (b"a\r\n0123456789\r\n000\r\n\r\n", b"0123456789", {}),
    (b"0005\r\nhello\r\n0\r\n\r\n", b"hello", {}),
    (b"0\r\n\r\n", b"", {}),
    (b"5;a=b;c\r\nhello\r\n0;last\r\n\r\n", b"hello", {}),
    (b"5; some; parameters=stuff\r\nhello\r\n0\r\n\r\n", b"hello", {}),
    (b'5;foo="bar baz"\r\nhello\r\n0\r\n\r\n', b"hello", {}),
    (b'5;q="a \\"b\\" \\\\c"\r\nhello\r\n0\r\n\r\n', b"hello", {}),
    (b"5\r\nhello\r\n0\r\nVary: *\r\nX-Sum:  abc \r\n\r\n", b"hello",
     {b"vary": b"*", b"x-sum": b"abc"}),
    (b"5\r\nhello\r\n0\r\nA: 1\r\na: 2\r\n\r\n", b"hello", {b"a": b"1, 2"}),
])
def test_chunked_valid(raw: bytes, data: bytes, trailers: dict, step: int | None) -> None:
    body = ChunkedBody(LIMITS)
    leftover = b"GET / HTTP/1.1\r\n"
    assert feed_all(body, raw + leftover, step) == len(raw)
    assert body.done
    assert body.take() == data
    assert body.trailers == trailers


def test_chunked_incomplete_then_done() -> None:
    body = ChunkedBody(LIMITS)
    assert body.feed(b"5\r\nhel") == 6 and not body.done
    assert body.take() == b"hel"
    assert body.feed(b"lo\r\n0\r\n") == 7 and not body.done  # the final CRLF is missing
    assert body.feed(b"\r\nNEXT") == 2 and body.done
    assert body.take() == b"lo"


@pytest.mark.parametrize("raw", [
    b"-5\r\nhello\r\n0\r\n\r\n",
    b"+5\r\nhello\r\n0\r\n\r\n",
    b"0x5\r\nhello\r\n0\r\n\r\n",
    b"6_0\r\nhello\r\n0\r\n\r\n",
    b" 5\r\nhello\r\n0\r\n\r\n",
    b"5 \r\nhello\r\n0\r\n\r\n",
    b"5 ;a=b\r\nhello\r\n0\r\n\r\n",
    b"\r\nhello\r\n0\r\n\r\n",
    b";a=b\r\nhello\r\n0\r\n\r\n",
    b"g\r\nhello\r\n0\r\n\r\n",
    b"5;\r\nhello\r\n0\r\n\r\n",
    b"5;a=\r\nhello\r\n0\r\n\r\n",
    b'5;a="b\r\nhello\r\n0\r\n\r\n',
    b"5;a=b c\r\nhello\r\n0\r\n\r\n",
    b"5;a=\x00\r\nhello\r\n0\r\n\r\n",
    b"5;ext=val\rue\r\nhello\r\n0\r\n\r\n",
    b"5\n;\r\nhello\r\n0\r\n\r\n",
    b"5\r\r;ABCD\r\n34\r\nE\r\n0\r\n\r\n",
    b"5\r\nhelloX\r\n0\r\n\r\n",
    b"5\r\nhello\n0\r\n\r\n",
    b"5\r\nhello\r\n\r\n",
    b"1" * 17 + b"\r\n",
    b"5\r\nhello\r\n0\r\nContent-Length: 5\r\n\r\n",
    b"5\r\nhello\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"5\r\nhello\r\n0\r\nHost: evil\r\n\r\n",
    b"5\r\nhello\r\n0\r\nX : y\r\n\r\n",
    b"5\r\nhello\r\n0\r\n folded\r\n\r\n",
    b"5\r\nhello\r\n0\r\nno-colon\r\n\r\n",
    b"5\r\nhello\r\n0\r\nX: a\x07b\r\n\r\n",
    b"5\r\nhello\r\n0\r\nX: a\nb\r\n\r\n",
])
def test_chunked_malformed(raw: bytes) -> None:
    body = ChunkedBody(LIMITS)
    with pytest.raises(ProtocolError) as info:
        body.feed(raw)
    assert info.value.status == 400 and info.value.close


def test_chunk_extension_size_bounded() -> None:
    body = ChunkedBody(LIMITS)
    with pytest.raises(ProtocolError):
        body.feed(b"5;a=" + b"x" * 5000 + b"\r\nhello\r\n0\r\n\r\n")
    body = ChunkedBody(LIMITS)
    with pytest.raises(ProtocolError):  # never terminated: refused once the line is too long
        for _ in range(100):
            body.feed(b"5;" + b"x" * 100)


def test_chunked_body_too_large() -> None:
    body = ChunkedBody(Limits(max_body_size=8))
    body.feed(b"5\r\nhello\r\n")
    with pytest.raises(HTTPError) as info:
        body.feed(b"4\r\n")
    assert info.value.status == 413 and info.value.close


def test_chunked_trailers_bounded() -> None:
    body = ChunkedBody(Limits(max_header_count=2))
    with pytest.raises(ProtocolError) as info:
        body.feed(b"0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n")
    assert info.value.status == 431


def test_chunked_crlf_split_across_reads() -> None:
    body = ChunkedBody(LIMITS)
    for piece in (b"5\r", b"\nhello\r", b"\n0\r", b"\n\r", b"\n"):
        assert body.feed(piece) == len(piece)
    assert body.done and body.take() == b"hello"


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

CHUNKED = b"5;a=b\r\nhello\r\n6\r\n world\r\n0\r\nX: y\r\n\r\nNEXT"


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(CHUNKED) - 1), st.binary(max_size=3), st.integers(0, 2),
       st.integers(1, 8))
def test_mutated_chunked_never_crashes(at: int, insert: bytes, drop: int, step: int) -> None:
    raw = CHUNKED[:at] + insert + CHUNKED[at + drop:]
    body = ChunkedBody(LIMITS)
    try:
        consumed = feed_all(body, raw, step)
    except HTTPError:
        return
    assert consumed <= len(raw)
    if body.done:
        assert raw[consumed - 2:consumed] == b"\r\n"
