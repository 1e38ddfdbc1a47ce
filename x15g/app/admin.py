"""The admin endpoints under `--admin-prefix` (default `/-/`): health, status and metrics.

- `health`: 200 `ok` while the worker serves, 503 while it drains (a load balancer stops sending).
- `status`: JSON for people and scripts: version, uptime, workers, connections, requests, bytes,
  cache, and one entry per worker.
- `metrics`: Prometheus text format 0.0.4, summed over all workers (see observability/metrics.py).

`--admin-access loopback` answers only peers in 127.0.0.0/8 and ::1 (an IPv4-mapped loopback
counts); everyone else, unix-socket peers included, gets the same 404 as for a missing file, so
the endpoints are not advertised. Behind a proxy on the same host every request comes from
loopback: block the prefix in the proxy (the guide shows how).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import time
from typing import Any, Collection, Iterable, Protocol

from gevent.lock import Semaphore

from x15g import __version__
from x15g.config import Settings
from x15g.diskio import DiskIO
from x15g.errors import HTTPError
from x15g.http.messages import Request, Response
from x15g.http.writer import simple_response_head
from x15g.observability import metrics
from x15g.observability.counters import Counters

log = logging.getLogger("x15g.admin")
_NO_STORE = (("Cache-Control", "no-store"),)
_ALLOW = (("Allow", "GET, HEAD"),)


class ConnectionView(Protocol):
    """What the admin endpoints read of one open connection."""

    @property
    def idle(self) -> bool: ...


class ServingContext(Protocol):
    """A worker's serving context as the admin endpoints and metrics read it: its counters, request
    metrics, open connections and whether it drains. `x15g/server/worker.py` provides one;
    `StandaloneState` stands in outside a worker."""

    @property
    def counters(self) -> Counters: ...

    @property
    def metrics(self) -> metrics.RequestMetrics: ...

    @property
    def connections(self) -> Collection[ConnectionView]: ...

    @property
    def draining(self) -> bool: ...


class CacheStats(Protocol):
    """The numbers a cache reports (`x15g/static/filecache.py`): hits, misses, entries, memory,
    open_fds, evictions."""

    hits: int
    misses: int


class StandaloneState:
    """What the admin responder reads when no worker context is given (tests, tools)."""

    def __init__(self) -> None:
        self.counters = Counters()
        self.metrics = metrics.RequestMetrics()
        self.connections: set[ConnectionView] = set()
        self.draining = False


def is_loopback(peer: str) -> bool:
    """True for `127.x.y.z:port`, `[::1]:port` and `[::ffff:127.x.y.z]:port`; False for `unix`."""
    if peer.startswith("["):
        host = peer[1:peer.find("]")]
    else:
        host = peer.rpartition(":")[0]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


class AdminResponder:
    """Answers `<prefix>health`, `<prefix>status` and `<prefix>metrics` (GET and HEAD)."""

    streams_body = True  # needs no request body: answered before one is read

    def __init__(self, settings: Settings, disk: DiskIO, state: ServingContext | None = None, caches: Iterable[CacheStats] = (),
                 run_dir: str | None = None, worker_id: int = 0) -> None:
        self.prefix = settings.admin_prefix.encode()
        self.loopback_only = settings.admin_access == "loopback"
        self.disk = disk
        self.state: ServingContext = state if state is not None else StandaloneState()
        self.caches = list(caches)
        self.run_dir = run_dir
        self.worker_id = worker_id
        self.started = time.time()
        # One snapshot write at a time, taken in order: a file never goes back to older numbers.
        self._publishing = Semaphore()
        self._pages = {b"health": self._health, b"status": self._status, b"metrics": self._metrics}

    def respond(self, request: Request) -> Response:
        if self.loopback_only and not is_loopback(request.peer):
            raise HTTPError(404, "not found")
        page = self._pages.get(request.path[len(self.prefix):])
        if page is None:
            raise HTTPError(404, "not found")
        if request.method not in ("GET", "HEAD"):
            raise HTTPError(405, "method not allowed", headers=_ALLOW)
        status, content_type, body = page()
        head = simple_response_head(status, content_type, len(body), _NO_STORE)
        return Response(status, head, body, len(body), send_body=request.method == "GET")

    # --- periodic publishing (the worker calls this once a second) ---

    def snapshot(self) -> dict[str, Any]:
        return metrics.worker_snapshot(self.state, self.caches, self.worker_id)

    def publish(self) -> dict[str, Any]:
        """Write this worker's snapshot to the run directory, off the hub; returns it."""
        with self._publishing:
            snap = self.snapshot()
            if self.run_dir:
                try:
                    self.disk.run(metrics.publish, self.run_dir, snap)
                except OSError as exc:  # e.g. the master removed the directory while we stop
                    log.debug("metrics not published: %s", exc)
            return snap

    # --- pages ---

    def _gather(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """(master record, snapshots of every worker not yet retired, this one's included).

        This worker publishes first and then reads every file, its own included, so whichever
        worker answers the next scrape sees numbers at least as large (counters never decrease)."""
        own = self.publish()
        if not self.run_dir:
            return {"pid": os.getpid(), "started": self.started}, [own]
        master, snaps = self.disk.run(metrics.read_run_dir, self.run_dir)
        if not any(s.get("pid") == own["pid"] for s in snaps):
            snaps.append(own)  # the write failed: count the live numbers
        return master or {"pid": os.getppid(), "started": self.started}, snaps

    def _health(self) -> tuple[int, str, bytes]:
        if self.state.draining:
            return 503, "text/plain; charset=utf-8", b"draining\n"
        return 200, "text/plain; charset=utf-8", b"ok\n"

    def _status(self) -> tuple[int, str, bytes]:
        master, snaps = self._gather()
        total = metrics.aggregate(snaps, master.get("retired"))
        counters, cache = total["counters"], total["cache"]
        started = master.get("started", self.started)
        document = {
            "version": __version__,
            "master_pid": master.get("pid"),
            "uptime": round(time.time() - started, 3),
            "workers": len(metrics.fresh(snaps)),
            "connections": {"open": counters.get("connections_open", 0), "idle": counters.get("connections_idle", 0)},
            "requests": counters.get("requests", 0),
            "responses": {k: counters.get(f"responses_{k}", 0) for k in metrics.STATUS_CLASSES},
            "bytes": counters.get("bytes_sent", 0),
            "bodies": {"memory": counters.get("bodies_memory", 0), "sendfile": counters.get("bodies_sendfile", 0)},
            "ready_answers": counters.get("ready_answers", 0),  # repeated heads answered without the cache lookup
            "keepalive_idle_closes": counters.get("idle_closes", 0),
            "timeouts": {kind: counters.get(f"timeouts_{kind}", 0) for kind in ("header", "body", "send")},
            "cache": cache,
            "per_worker": [_worker_entry(s) for s in sorted(metrics.fresh(snaps), key=lambda s: (s["worker_id"], s["pid"]))],
        }
        body = (json.dumps(document, indent=1) + "\n").encode()
        return 200, "application/json", body

    def _metrics(self) -> tuple[int, str, bytes]:
        master, snaps = self._gather()
        live = metrics.fresh(snaps)
        processes = [(str(s["worker_id"]), s["pid"], s.get("process", {})) for s in live]
        if master.get("process"):
            processes.append(("master", master["pid"], master["process"]))
        text = metrics.render_prometheus(metrics.aggregate(snaps, master.get("retired")), len(live),
                                         master.get("started", self.started), processes)
        return 200, metrics.CONTENT_TYPE, text.encode()


def _worker_entry(snap: dict[str, Any]) -> dict[str, Any]:
    counters = snap["counters"]
    return {
        "pid": snap["pid"],
        "worker_id": snap["worker_id"],
        "uptime": round(time.time() - counters.get("started", time.time()), 3),
        "draining": snap.get("draining", False),
        "connections": {"open": counters.get("connections_open", 0), "idle": counters.get("connections_idle", 0)},
        "requests": counters.get("requests", 0),
        "bytes": counters.get("bytes_sent", 0),
        "cache": snap["cache"],
        "process": snap.get("process", {}),  # cpu_seconds, rss_bytes, open_fds
    }
