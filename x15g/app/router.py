"""Route a request to the responder that owns its path (longest configured prefix first).

The router also answers what belongs to no resource: unknown methods (501) and `OPTIONS *`
(RFC 9110 §9.3.7). Everything else is the responders' business.
"""

from __future__ import annotations

from typing import Sequence

from x15g.app.responder import Responder
from x15g.errors import HTTPError
from x15g.http.messages import Request, Response
from x15g.http.writer import build_head

# RFC 9110 §9 plus PATCH (RFC 5789): methods we know; a resource may still refuse them with 405.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "TRACE", "CONNECT", "PATCH"})
_OPTIONS_STAR = build_head(200, (("Allow", "GET, HEAD, POST, OPTIONS"),), 0)


class Route:
    """`prefix` matches the path exactly when `exact`, else as a prefix (ending with '/' or not)."""

    __slots__ = ("prefix", "exact", "responder")

    def __init__(self, prefix: bytes, responder: Responder, exact: bool = False) -> None:
        self.prefix = prefix
        self.exact = exact
        self.responder = responder

    def matches(self, path: bytes) -> bool:
        if self.exact:
            return path == self.prefix
        return path.startswith(self.prefix)


class Router:
    """Dispatch by path: the configured routes in order (longest prefix first), else `default`."""

    def __init__(self, routes: Sequence[Route], default: Responder) -> None:
        self.routes = sorted(routes, key=lambda r: (-len(r.prefix), not r.exact))
        self.default = default
        # Hot path: most requests match no route, so test every prefix in one C call first.
        self._any_prefix = tuple(route.prefix for route in self.routes)
        self._default_now = getattr(default, "respond_now", None)

    def respond(self, request: Request) -> Response:
        if request.method not in KNOWN_METHODS:
            raise HTTPError(501, f"method {request.method} is not implemented")
        if request.target == b"*":
            return Response(200, _OPTIONS_STAR, b"", 0)
        return self._responder(request.path).respond(request)

    def reads_body_lazily(self, request: Request) -> bool:
        """Whether the responder of `request` reads its body itself, when it needs it, from
        `request.body_reader` (`streams_body`), so the connection must not read it first: an
        answer that needs no body (405, 501, a static file) then goes out before the body."""
        owner = self.owner(request)
        return True if owner is None else getattr(owner, "streams_body", False)

    def owner(self, request: Request) -> Responder | None:
        """The responder that answers `request`; None when the router answers it itself (an
        unknown method, `OPTIONS *`). An isolated handler asks this of the requests that follow
        on a connection it holds (isolate/handler.py)."""
        if request.method not in KNOWN_METHODS or request.target == b"*":
            return None
        return self._responder(request.path)

    def _responder(self, path: bytes) -> Responder:
        if self._any_prefix and path.startswith(self._any_prefix):
            for route in self.routes:
                if route.matches(path):
                    return route.responder
        return self.default

    def respond_now(self, request: Request) -> Response | None:
        """The answer when the responder that owns the path can make it without blocking (an
        ImmediateResponder's respond_now); None sends the request to `respond` in the
        connection's greenlet."""
        if request.method not in KNOWN_METHODS or request.target == b"*":
            return None
        responder = self._responder(request.path)
        now = self._default_now if responder is self.default else getattr(responder, "respond_now", None)
        return now(request) if now is not None else None
