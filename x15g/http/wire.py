"""A response's bytes on the wire: the one place a head is finished (Date, Connection) and joined
to a small body.

`assemble` returns `(data, head_len, more, body)`: `data` is the head (the response's header
block, maybe `Transfer-Encoding: chunked`, the Date line, the Connection tail) with a body of up
to INLINE_BODY bytes joined to it for one `send`; `head_len` how many of its bytes are head;
`more` the in-memory body parts that follow it in the same `sendmsg` (a larger body, or a list
of bytes parts: not copied); `body` what follows by other means (a FileRange, a list of parts
with file ranges, a StreamedBody), or None.

A response that answers many requests (a cached file's 200 and HEAD; an answer the ready store
keeps) carries `Response.wires`, and its wire bytes are assembled once per Date second and
Connection tail instead of once per request: the X15 idea of ready-made headers, kept per
response and so used whatever the request head looked like.
"""

from __future__ import annotations

from typing import Any

from x15g.http.messages import Response

# A body up to this size is joined to its head for one send (a copy for one answer, or once a
# second for a response with `wires`); larger ones follow the head in the same sendmsg, no copy.
INLINE_BODY = 4096
CHUNKED = b"Transfer-Encoding: chunked\r\n"

Wire = tuple[bytes, int, tuple[bytes, ...], Any]  # (data, head_len, more, body): see the module doc


def assemble(response: Response, date: bytes, tail: bytes, sends: bool, chunked: bool = False) -> Wire:
    """The wire bytes of `response` for a Date line and a Connection tail; `sends`: whether the
    body goes out (not for HEAD), `chunked`: add `Transfer-Encoding: chunked` (a StreamedBody of
    unknown length to an HTTP/1.1 client)."""
    wires = response.wires
    if wires is not None and sends == response.send_body and not chunked:
        made = wires.get(tail)
        if made is not None and made[0] is date:
            return made[1]
        wire = _assemble(response, date, tail, sends, False)
        wires[tail] = (date, wire)
        return wire
    return _assemble(response, date, tail, sends, chunked)


def _assemble(response: Response, date: bytes, tail: bytes, sends: bool, chunked: bool) -> Wire:
    head = response.head + CHUNKED + date + tail if chunked else response.head + date + tail
    if not sends:
        return head, len(head), (), None
    body = response.body
    if isinstance(body, bytes):
        if len(body) > INLINE_BODY:
            return head, len(head), (body,), None
        return (head + body if body else head), len(head), (), None
    if isinstance(body, list) and all(type(part) is bytes for part in body):
        return head, len(head), tuple(body), None  # type: ignore[arg-type]  # all bytes, as checked
    return head, len(head), (), body
