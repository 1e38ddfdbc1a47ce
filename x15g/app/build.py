"""Compose the application a worker serves from the settings: static files by default, plus the
admin endpoints, the SPECweb99-like module, CGI directories and a WSGI app where configured."""

from __future__ import annotations

from x15g.app.router import Route, Router
from x15g.config import Settings
from x15g.diskio import DiskIO
from x15g.static.responder import StaticResponder


def build_app(settings: Settings, disk: DiskIO) -> Router:
    """The router for one worker process."""
    routes: list[Route] = []
    type_overrides: dict[str, str] = {}
    if settings.specweb:
        from x15g.specweb.responder import CgiSpecwebResponder, SpecwebResponder

        routes.append(Route(b"/specweb99", SpecwebResponder(settings, disk), exact=True))
        routes.append(Route(b"/cgi-bin/specweb99", CgiSpecwebResponder(settings), exact=True))
        type_overrides[settings.specweb_urlroot] = "text/plain"
    for spec in settings.cgi_dir:
        from x15g.app.cgi import CgiResponder

        prefix, _, directory = spec.partition("=")
        prefix = "/" + prefix.strip("/") + "/"
        routes.append(Route(prefix.encode(), CgiResponder(settings, prefix, directory=directory)))
    static = StaticResponder(settings, disk, type_overrides=type_overrides)
    return Router(routes, static)
