"""What the worker's router holds for an application that runs in handler processes.

`respond` decides nothing: it returns a Response whose body is a take-over (the connection's
hand-over point), which passes the socket to the pool and reports the handler's outcome back to
the connection, to be logged and counted like any other answer.
"""

from __future__ import annotations

from x15g.http.messages import Request, Response, TakeOverOutcome
from x15g.isolate.pool import HandlerPool


class IsolatedResponder:
    """The application of `pool`, answered in its handler processes."""

    def __init__(self, pool: HandlerPool) -> None:
        self.pool = pool

    streams_body = False  # the connection reads the whole body first: it travels with the request

    def respond(self, request: Request) -> Response:
        reader = request.body_reader
        after_body = b""
        if reader is not None:
            # Mounted behind a route that reads bodies lazily (StaticOrApp at "/"): read it all
            # here, the handler never reads the socket. What follows the body is the reader's
            # (server/bodyreader.py) leftover, which the connection does not pass to a take-over.
            request.body = reader.read()
            request.body_reader = None
            after_body = getattr(reader, "leftover", b"")
        return Response(0, b"", HandOver(self.pool, request, after_body))


class HandOver:
    """A take-over body: one request's hand-over to the pool."""

    __slots__ = ("pool", "request", "after_body")

    def __init__(self, pool: HandlerPool, request: Request, after_body: bytes = b"") -> None:
        self.pool = pool
        self.request = request
        self.after_body = after_body  # pipelined bytes a lazy body reader read past the body

    def take_over(self, fd: int, buffered: bytes, keep_alive: bool) -> TakeOverOutcome:
        """Runs in the connection's greenlet: the handler never reads the socket, so the bytes
        after this request (pipelined ones) stay with the connection."""
        status, sent, keep = self.pool.hand_over(self.request, fd, keep_alive)
        return TakeOverOutcome(status, sent, keep, self.after_body + buffered)


def isolated(settings: object, kind: str) -> IsolatedResponder:
    """Start the handler pool for `kind` ("wsgi" or "specweb") and return its responder."""
    pool = HandlerPool(settings, kind)  # type: ignore[arg-type]
    pool.start()
    return IsolatedResponder(pool)
