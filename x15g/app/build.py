"""Compose the application a worker serves from the settings: static files by default, plus the
admin endpoints, the SPECweb99-like module, CGI directories and a WSGI app where configured."""

from __future__ import annotations

from x15g.app.admin import ServingContext
from x15g.app.responder import Responder
from x15g.app.router import Route, Router
from x15g.config import Settings
from x15g.diskio import DiskIO
from x15g.static.responder import StaticResponder


def build_app(settings: Settings, disk: DiskIO, state: ServingContext | None = None) -> Router:
    """The router for one worker process; `state` is the worker's serving context (counters,
    connections, draining, metrics, periodic) that the admin endpoints report on. With
    --isolate the dynamic applications are started in their handler processes here, once the
    routes are known."""
    routes: list[Route] = []
    type_overrides: dict[str, str] = {}
    if settings.specweb:
        from x15g.specweb.responder import CgiSpecwebResponder, SpecwebResponder

        if settings.isolate:
            from x15g.isolate.responder import isolated

            dynamic: Responder = isolated(settings, "specweb")
        else:
            dynamic = SpecwebResponder(settings, disk)
            refreshers = getattr(state, "refreshers", None)  # a worker's caches kept fresh ahead of time
            if refreshers is not None:
                refreshers.extend(dynamic.refreshers)
        routes.append(Route(b"/specweb99", dynamic, exact=True))
        routes.append(Route(b"/cgi-bin/specweb99", CgiSpecwebResponder(settings), exact=True))
        type_overrides[settings.specweb_urlroot] = "text/plain"
    for spec in settings.cgi_dir:
        from x15g.cgi.runner import CgiResponder

        prefix, _, directory = spec.partition("=")
        prefix = "/" + prefix.strip("/") + "/"
        routes.append(Route(prefix.encode(), CgiResponder(settings, prefix, directory=directory)))
    static = StaticResponder(settings, disk, type_overrides=type_overrides)
    refreshers = getattr(state, "refreshers", None)  # a worker's caches kept fresh ahead of time
    if refreshers is not None:
        refreshers.append(static.cache)
    if settings.admin_prefix:
        from x15g.app.admin import AdminResponder
        from x15g.observability import metrics

        admin = AdminResponder(settings, disk, state, [static.cache], metrics.run_dir, getattr(state, "worker_id", 0))
        routes.append(Route(settings.admin_prefix.encode(), admin))
        periodic = getattr(state, "periodic", None)  # a worker's once-a-second jobs
        if periodic is not None:
            periodic.append(admin.publish)
    router = _with_wsgi(settings, settings.wsgi, routes, static) if settings.wsgi else Router(routes, static)
    if settings.isolate:  # the handlers are told the routes: which later requests are theirs
        from x15g.isolate.responder import start_isolated

        start_isolated(router, state)
    return router


def _with_wsgi(settings: Settings, spec: str, routes: list[Route], static: StaticResponder) -> Router:
    """Mount the WSGI app: at a prefix it owns `/prefix` and `/prefix/...`; at `/` a static file
    that exists wins for GET/HEAD and everything else goes to the app (see the README guide)."""
    import logging

    from x15g.app.wsgi import StaticOrApp, WsgiResponder, app_inside_root, load_app

    wsgi: Responder
    if settings.isolate:  # the app is imported by its handler processes only, never here
        from x15g.isolate.responder import isolated

        wsgi = isolated(settings, "wsgi")
    else:
        app = load_app(spec)
        if app_inside_root(app, settings.root):
            logging.getLogger("x15g.wsgi").warning(
                "the WSGI app's source lies under --root %s: its files can be downloaded", settings.root)
        wsgi = WsgiResponder(settings, app, settings.wsgi_prefix)
    prefix = settings.wsgi_prefix.rstrip("/").encode()
    if not prefix:
        # StaticOrApp types its app as a WsgiResponder; an IsolatedResponder serves the same way
        return Router(routes, StaticOrApp(static, wsgi))  # type: ignore[arg-type]
    routes += [Route(prefix, wsgi, exact=True), Route(prefix + b"/", wsgi)]
    return Router(routes, static)
