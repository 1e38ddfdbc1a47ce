"""What the worker's router holds for an application that runs in handler processes.

`respond` decides nothing: it returns a Response whose body is a take-over (the connection's
hand-over point), which passes the socket to the pool and reports the handler's outcome back to
the connection, to be logged and counted like any other answer, with the further requests the
handler answered on the connection while it held it (their heads parsed again here, by the one
strict parser: the handler is not trusted).
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from x15g.http.forwarded import TrustedProxies
from x15g.http.messages import Answered, Request, Response, TakeOverOutcome
from x15g.http.parser import Limits, parse_head
from x15g.isolate.pool import HandlerPool
from x15g.isolate.protocol import MINE, OTHER, STATIC_OR_MINE, Report

log = logging.getLogger("x15g.isolate")
KNOWN_HEADS = 4096  # distinct heads of further requests kept parsed (then forgotten all at once)


class IsolatedResponder:
    """The application of `pool`, answered in its handler processes."""

    def __init__(self, pool: HandlerPool) -> None:
        self.pool = pool
        settings = pool.settings
        self.limits = Limits.from_settings(settings)
        self.proxies = TrustedProxies(settings.forwarded_allow_ips) if settings.forwarded_allow_ips else None
        # Heads of further requests parsed before, shared by every connection: their Request
        # depends on the head alone, as the access log takes the client from the connection
        # (server/connection.py _account) unless a trusted proxy named it.
        self.known: dict[bytes, Request] | None = {} if self.proxies is None else None

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

    def answered(self, request: Request, further: list[Any]) -> tuple[Answered, ...]:
        """The access-log records of a report as the connection logs them; a head that does
        not parse as one whole request without a body is a handler's lie, logged and dropped.
        A head parsed before is not parsed again (clients repeat their heads byte for byte;
        a parse costs ~1.7 us a record)."""
        known = self.known if self.known is not None else {}  # behind a proxy: within this report
        out = []
        for f in further:
            head = f.head
            answered = known.get(head)
            if answered is None:
                answered = self._parsed(request, head)
                if answered is None:
                    continue
                if len(known) >= KNOWN_HEADS:
                    known.clear()
                known[head] = answered
            out.append(Answered(answered, f.status, f.sent, f.started, f.ended, f.request_id))
        return tuple(out)

    def _parsed(self, request: Request, head: bytes) -> Request | None:
        try:
            parsed = parse_head(head, self.limits)
        except Exception:
            parsed = None
        if parsed is None or parsed[1] != len(head) or parsed[0].has_body:
            log.error("isolated handler reported a request that is not one: %r", head[:80])
            return None
        answered = parsed[0]
        answered.peer = request.peer
        if self.proxies is not None:
            self.proxies.resolve(answered)
        return answered


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

    def _outcome(self, report: Report) -> TakeOverOutcome:
        further = self.responder.answered(self.request, report.further) if report.further else ()
        return TakeOverOutcome(report.status, report.sent, report.keep, report.leftover, further,
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
    and the worker's `state` (ServingContext: its `draining`)."""
    found = [r.responder for r in router.routes] + [router.default, getattr(router.default, "app", None)]
    seen = []
    for responder in found:
        if type(responder) is IsolatedResponder and responder not in seen:
            seen.append(responder)
            draining = (lambda: state.draining) if state is not None else None
            responder.pool.start(route_table(router, responder), draining)
