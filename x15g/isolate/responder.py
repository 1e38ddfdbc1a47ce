"""What the worker's router holds for an application that runs in handler processes.

`respond` decides nothing: it returns a Response whose body is a take-over (the connection's
hand-over point), which passes the socket to the pool and reports the handler's outcome back to
the connection, to be logged and counted like any other answer, with the further requests the
handler answered on the connection while it held it (their tally, and their access-log records
as protocol.decode_report checked them: the handler is not trusted).
"""

from __future__ import annotations

from typing import Any, Callable

from x15g.http.messages import Request, Response, TakeOverOutcome
from x15g.isolate import launcher
from x15g.isolate.pool import HandlerPool
from x15g.isolate.protocol import MINE, OTHER, STATIC_OR_MINE, Report

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
            # here, the handler never reads the body. What follows the body is the reader's
            # (server/bodyreader.py) leftover, which the connection does not pass to a take-over.
            request.body = reader.read()
            request.body_reader = None
            after_body = getattr(reader, "leftover", b"")
        return Response(0, b"", HandOver(self, request, after_body))


class HandOver:
    """A take-over body: one request's hand-over to the pool."""

    __slots__ = ("responder", "request", "after_body")

    def __init__(self, responder: IsolatedResponder, request: Request, after_body: bytes = b"") -> None:
        self.responder = responder
        self.request = request
        self.after_body = after_body  # pipelined bytes a lazy body reader read past the body

    def take_over(self, fd: int, buffered: bytes, keep_alive: bool, served: int,
                  progress: Callable[[TakeOverOutcome], None] | None = None) -> TakeOverOutcome:
        """Runs in the connection's greenlet. The handler gets the bytes read after the request
        with the socket and gives back what it did not consume: one reader at a time. Its
        progress reports go to `progress` as they come."""
        on_report = None if progress is None else (lambda report: progress(self._outcome(report)))
        report = self.responder.pool.hand_over(self.request, fd, keep_alive, self.after_body + buffered, served,
                                               on_report)
        return self._outcome(report)

    @staticmethod
    def _outcome(report: Report) -> TakeOverOutcome:
        return TakeOverOutcome(report.status, report.sent, report.keep, report.leftover, tuple(report.further),
                               report.app_request_id, report.tally)


def route_table(router: Any, responder: IsolatedResponder) -> dict[str, Any]:
    """Which requests are `responder`'s, in the form the handlers rebuild the router from
    (handler.Routes): the router's routes in its order, each MINE or OTHER, and its default."""
    from x15g.app.wsgi import StaticOrApp

    def owner(what: Any) -> str:
        if what is responder:
            return MINE
        if type(what) is StaticOrApp and getattr(what, "app", None) is responder:  # built with --isolate
            return STATIC_OR_MINE
        return OTHER

    return {"routes": [(r.prefix, r.exact, owner(r.responder)) for r in router.routes],
            "default": owner(router.default)}


def isolated(settings: object, kind: str) -> IsolatedResponder:
    """The responder of a handler pool for `kind` ("wsgi" or "specweb"); start_isolated starts it."""
    return IsolatedResponder(HandlerPool(settings, kind))  # type: ignore[arg-type]


def start_isolated(router: Any, state: Any = None) -> None:
    """Start the handler pools of the isolated responders `router` mounts, each told its routes
    and the worker's `state` (ServingContext: its `draining`; its `closers` get the pools' close)."""
    found = [r.responder for r in router.routes] + [router.default, getattr(router.default, "app", None)]
    seen = []
    for responder in found:
        if type(responder) is IsolatedResponder and responder not in seen:
            seen.append(responder)
            draining = (lambda: state.draining) if state is not None else None
            responder.pool.start(route_table(router, responder), draining)
            closers = getattr(state, "closers", None)  # the worker's: run before it exits
            if closers is not None:
                closers.append(responder.pool.close)
    closers = getattr(state, "closers", None)
    if seen and closers is not None and launcher.current is not None:
        closers.append(launcher.current.close)  # after the pools: it reaps what they leave
