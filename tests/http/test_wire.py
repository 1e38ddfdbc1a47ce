"""http/wire.py (pure): a response's bytes on the wire, and their reuse for a shared response."""

from __future__ import annotations

from x15g.http.messages import FileRange, Response, StreamedBody
from x15g.http.wire import CHUNKED, INLINE_BODY, assemble

HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n"
DATE1 = b"Date: one\r\n"
DATE2 = b"Date: two\r\n"
KEEP = b"\r\n"
CLOSE = b"Connection: close\r\n\r\n"


def test_a_small_body_is_joined_to_its_head_and_head_len_counts_only_the_head() -> None:
    data, head_len, more, body = assemble(Response(200, HEAD, b"body", 4), DATE1, KEEP, True)
    assert data == HEAD + DATE1 + KEEP + b"body" and head_len == len(data) - 4
    assert more == () and body is None


def test_head_sends_no_body_and_a_large_body_follows_the_head_uncopied() -> None:
    assert assemble(Response(200, HEAD, b"body", 4), DATE1, CLOSE, False) == (HEAD + DATE1 + CLOSE, len(HEAD + DATE1 + CLOSE), (), None)
    large = b"x" * (INLINE_BODY + 1)
    data, head_len, more, body = assemble(Response(200, HEAD, large, len(large)), DATE1, KEEP, True)
    assert data == HEAD + DATE1 + KEEP and head_len == len(data) and more[0] is large and body is None
    parts = [b"a" * 10, b"b" * 20]  # bytes parts: sent after the head as they are
    assert assemble(Response(200, HEAD, parts, 30), DATE1, KEEP, True)[2:] == (tuple(parts), None)


def test_file_ranges_and_streams_follow_the_head_and_chunked_is_announced() -> None:
    part = FileRange(3, 0, 4)
    assert assemble(Response(200, HEAD, part, 4), DATE1, KEEP, True)[3] is part
    stream = StreamedBody(iter([b"a"]))
    data, _, _, body = assemble(Response(200, b"HTTP/1.1 200 OK\r\n", stream), DATE1, KEEP, True, chunked=True)
    assert data == b"HTTP/1.1 200 OK\r\n" + CHUNKED + DATE1 + KEEP and body is stream


def test_a_shared_response_is_assembled_once_per_date_and_tail() -> None:
    shared = Response(200, HEAD, b"body", 4, wires={})
    first = assemble(shared, DATE1, KEEP, True)
    assert assemble(shared, DATE1, KEEP, True) is first  # the same second: no new bytes
    closing = assemble(shared, DATE1, CLOSE, True)
    assert closing[0].endswith(CLOSE + b"body") and assemble(shared, DATE1, KEEP, True) is first
    later = assemble(shared, DATE2, KEEP, True)
    assert later is not first and later[0] == HEAD + DATE2 + KEEP + b"body"
    # A HEAD answered with a body-carrying shared response is assembled, not kept.
    assert assemble(shared, DATE2, KEEP, False)[0] == HEAD + DATE2 + KEEP
    assert assemble(shared, DATE2, KEEP, True) is later
