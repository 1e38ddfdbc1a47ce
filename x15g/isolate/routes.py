"""Which requests that follow on a connection a handler holds are its own (handler.py): the
worker's router rebuilt from its route table (responder.route_table), every other responder a
stand-in. Pure: no gevent, no sockets."""

from __future__ import annotations

import time
from typing import Any

from x15g.config import Settings
from x15g.http.messages import Request
from x15g.isolate import protocol

_monotonic = time.monotonic


class Routes:
    """At "/" (the WSGI app beside static files, app/wsgi.py StaticOrApp) a GET or HEAD is the
    app's when no file answers it, which only the worker can tell (a handler cannot see the
    document root as the worker does). So the worker's own decision is reused: a path it handed
    over for GET/HEAD is the app's for --cache-revalidate seconds (`window`), as long as the
    worker's cache keeps its 404/403.

    When that runs out, the first request for the path goes back to the worker, which decides
    again (and hands it over again at once, renewing it); the other connections go on for up to
    one more window meanwhile, instead of all coming back together (every held connection's
    records accounted and handed over at the same moment: a latency spike per window). So a
    file created there is served by the worker at most two windows later."""

    MEMO_PATHS = 4096  # paths remembered at the most (then forgotten all at once)

    def __init__(self, table: dict[str, Any], settings: Settings) -> None:
        from x15g.app.router import Route, Router

        self.mine = object()
        self.static_or_mine = object()
        other = object()
        owners = {protocol.MINE: self.mine, protocol.STATIC_OR_MINE: self.static_or_mine}
        self.router = Router([Route(prefix, owners.get(owner, other), exact)  # type: ignore[arg-type]
                              for prefix, exact, owner in table["routes"]],
                             owners.get(table["default"], other))  # type: ignore[arg-type]
        self.window = settings.cache_revalidate
        self.app_paths: dict[bytes, float] = {}  # path -> until when it is the app's (GET/HEAD at "/")
        self.asked: set[bytes] = set()  # expired paths one request took back to the worker

    def handed(self, request: Request) -> None:
        """Note the worker's decision for a request it handed over."""
        if self.window > 0 and (request.method == "GET" or request.method == "HEAD") \
                and self.router.owner(request) is self.static_or_mine:
            if len(self.app_paths) >= self.MEMO_PATHS:
                self.app_paths.clear()
                self.asked.clear()
            self.app_paths[request.path] = _monotonic() + self.window
            self.asked.discard(request.path)

    def owns(self, request: Request) -> bool:
        owner = self.router.owner(request)
        if owner is self.mine:
            return True
        if owner is not self.static_or_mine:
            return False
        if request.method != "GET" and request.method != "HEAD":
            return True  # every other method is the app's at "/"
        path = request.path
        until = self.app_paths.get(path, 0.0)
        now = _monotonic()
        if now < until:
            return True
        if now >= until + self.window:
            return False  # not known, or the worker did not hand it over again: a file answers it now
        if path in self.asked:
            return True  # one request is asking the worker again meanwhile
        self.asked.add(path)
        return False
