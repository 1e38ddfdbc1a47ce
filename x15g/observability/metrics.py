"""Request metrics, cross-worker aggregation and the Prometheus text exposition (format 0.0.4).

Each worker keeps its numbers in plain attributes (one hub thread, no locks): `Counters` for the
totals and a `RequestMetrics` for what needs a per-request observation (the duration histogram and
requests by method and status code). The observation is a bisect into fixed integer bucket bounds
(microseconds) and a few list increments, cheap enough for the hot path.

Aggregation across pre-forked workers: the master creates a per-run directory (under /dev/shm when
it exists, so it is memory, not disk) and every worker writes its snapshot there as JSON once a
second and before it answers a scrape (off the hub, through DiskIO, one write at a time). An admin
request answered by any worker sums every worker's file, its own just written.

Counters never go backwards for the master's life: when the master reaps a worker it adds the
worker's last snapshot to its `retired` totals in master.json (listing the pid) and only then
removes the worker's file; a reader reads the worker files before master.json and skips files of
pids already retired, so a worker is counted exactly once whatever the order. What the dead
worker did after its last publish (at most a second's worth) is lost, never counted twice.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from bisect import bisect_left
from typing import Any, Iterable

from x15g import __version__
from x15g.http.messages import Tallied

# Upper bounds of the duration buckets, in seconds (Prometheus `le`), and the same in whole
# microseconds for the hot-path bisect.
# A cached static answer takes 10-30 us, so the buckets start at 10 us.
BUCKETS: tuple[float, ...] = (0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                              0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BOUNDS_US = [round(b * 1_000_000) for b in BUCKETS]
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
# Methods are labels; anything else is counted as OTHER so a client cannot grow the label set.
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "TRACE", "CONNECT", "PATCH")
_KNOWN = frozenset(METHODS)
STALE_AFTER = 5.0  # seconds: a worker whose snapshot is older does not count in x15g_workers
MASTER_FILE = "master.json"
_CODES = 500  # by_method rows are indexed by status - 100 (100..599)
# Counter fields that are gauges: a retired worker's value is not kept.
_GAUGES = frozenset(("started", "connections_open", "connections_idle"))
_CACHE_GAUGES = frozenset(("entries", "memory", "open_fds"))


class RequestMetrics:
    """Per-worker duration histogram and request counts by (method, status code).

    Given the worker's `Counters`, `observe` also counts the request and its bytes there: one
    call per request instead of two. Responses by status class are derived from the code counts
    when a snapshot is taken, not on the hot path.
    """

    __slots__ = ("buckets", "sum_us", "by_method", "counters")

    def __init__(self, counters: Any = None) -> None:
        self.buckets = [0] * (len(_BOUNDS_US) + 1)  # the last one is +Inf
        self.sum_us = 0
        self.by_method: dict[str, list[int]] = {}
        self.counters = counters

    def observe(self, method: str, status: int, seconds: float, sent: int = 0) -> None:
        """Count one answered request that took `seconds` and sent `sent` body bytes (hot path)."""
        us = int(seconds * 1_000_000)
        self.buckets[bisect_left(_BOUNDS_US, us)] += 1
        self.sum_us += us
        row = self.by_method.get(method)
        if row is None:
            row = self._row(method)
        if not 100 <= status < 600:
            status = 599
        row[status - 100] += 1
        counters = self.counters
        if counters is not None:
            counters.requests += 1
            counters.bytes_sent += sent

    def add(self, tally: Tallied) -> None:
        """Add the requests a Tally observed elsewhere (an isolated handler): as if each had been
        observed here, in one go."""
        buckets = self.buckets
        for i, n in enumerate(tally.buckets):
            buckets[i] += n
        self.sum_us += tally.sum_us
        by_method = self.by_method
        for (method, status), n in tally.codes.items():
            row = by_method.get(method)
            if row is None:
                row = self._row(method)
            if not 100 <= status < 600:
                status = 599
            row[status - 100] += n
        counters = self.counters
        if counters is not None:
            counters.requests += tally.requests
            counters.bytes_sent += tally.bytes_sent

    def _row(self, method: str) -> list[int]:
        """The counts row of `method`, created on first use; unknown methods share OTHER."""
        if method not in _KNOWN:
            method = "OTHER"
        row = self.by_method.get(method)
        if row is None:
            row = self.by_method[method] = [0] * _CODES
        return row

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready: buckets, sum, and {method: {"200": count, ...}} (codes seen only)."""
        return {"buckets": list(self.buckets), "sum_us": self.sum_us,
                "by_method": {m: {str(i + 100): n for i, n in enumerate(row) if n} for m, row in self.by_method.items()}}


class Tally:
    """Requests answered where they are not counted: an isolated handler keeping a connection
    observes each as `RequestMetrics.observe` would, and a worker adds the whole batch to its
    metrics at once (`RequestMetrics.add`): the same buckets and counts, and one message per
    batch to the worker instead of one record per request."""

    __slots__ = ("buckets", "sum_us", "codes", "requests", "bytes_sent")

    def __init__(self) -> None:
        self.buckets = [0] * (len(_BOUNDS_US) + 1)
        self.sum_us = 0
        self.codes: dict[tuple[str, int], int] = {}  # (method, status): requests
        self.requests = 0
        self.bytes_sent = 0

    def observe(self, method: str, status: int, seconds: float, sent: int = 0) -> None:
        us = int(seconds * 1_000_000)
        self.buckets[bisect_left(_BOUNDS_US, us)] += 1
        self.sum_us += us
        codes = self.codes
        key = (method, status)
        codes[key] = codes.get(key, 0) + 1
        self.requests += 1
        self.bytes_sent += sent


def process_stats() -> dict[str, float]:
    """CPU seconds, resident bytes and open fds of this process (Linux /proc; zeros elsewhere)."""
    times = os.times()
    stats = {"cpu_seconds": times.user + times.system, "rss_bytes": 0, "open_fds": 0}
    try:
        with open("/proc/self/statm", "rb") as f:
            stats["rss_bytes"] = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        stats["open_fds"] = len(os.listdir("/proc/self/fd"))
    except (OSError, ValueError, IndexError):
        pass
    return stats


def worker_snapshot(state: Any, caches: Iterable[Any], worker_id: int = 0) -> dict[str, Any]:
    """Everything one worker reports: counters, open/idle connections, histogram, caches."""
    counters = state.counters.snapshot()
    requests = state.metrics.snapshot()
    for key in STATUS_CLASSES:
        counters["responses_" + key] = 0
    for codes in requests["by_method"].values():
        for code, count in codes.items():
            counters[f"responses_{code[0]}xx"] += count
    connections = list(state.connections)
    counters["connections_open"] = len(connections)
    counters["connections_idle"] = sum(1 for c in connections if c.idle)
    cache = {"hits": 0, "misses": 0, "entries": 0, "memory": 0, "open_fds": 0, "evictions": 0, "revalidations": 0,
             "refreshes": 0}
    for c in caches:
        for name in cache:
            cache[name] += int(getattr(c, name, 0))
    return {"pid": os.getpid(), "worker_id": worker_id, "time": time.time(), "draining": bool(state.draining),
            "counters": counters, "cache": cache, "requests": requests, "process": process_stats()}


def empty_total() -> dict[str, Any]:
    return {"counters": {}, "cache": {}, "requests": {"buckets": [0] * (len(_BOUNDS_US) + 1), "sum_us": 0, "by_method": {}}}


def add_snapshot(total: dict[str, Any], snap: dict[str, Any], gauges: bool = True) -> None:
    """Add one snapshot into `total` (in place); `gauges=False` keeps only what only grows."""
    counters, cache, req = total["counters"], total["cache"], total["requests"]
    for name, value in snap["counters"].items():
        if name != "started" and (gauges or name not in _GAUGES):
            counters[name] = counters.get(name, 0) + value
    for name, value in snap["cache"].items():
        if gauges or name not in _CACHE_GAUGES:
            cache[name] = cache.get(name, 0) + value
    source = snap["requests"]
    req["buckets"] = [a + b for a, b in zip(req["buckets"], source["buckets"])]
    req["sum_us"] += source["sum_us"]
    for method, codes in source["by_method"].items():
        row = req["by_method"].setdefault(method, {})
        for code, value in codes.items():
            row[code] = row.get(code, 0) + value


def aggregate(snapshots: list[dict[str, Any]], retired: dict[str, Any] | None = None) -> dict[str, Any]:
    """Sum worker snapshots, plus the `retired` totals of workers that exited (see MasterLedger)."""
    total = empty_total()
    if retired:
        add_snapshot(total, retired, gauges=False)
    for snap in snapshots:
        add_snapshot(total, snap)
    return total


# --- the per-run directory ---

# Set in the master before it forks (workers inherit it); None when nothing aggregates.
run_dir: str | None = None


def make_run_dir() -> str:
    """Master: create the directory workers publish to (master.json is MasterLedger's)."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    return tempfile.mkdtemp(prefix="x15g-", dir=base)


def remove_run_dir(path: str | None) -> None:
    if path:
        shutil.rmtree(path, ignore_errors=True)


def write_json(path: str, data: dict[str, Any]) -> None:
    """Blocking, atomic (write a temporary file, then rename) so readers never see half a file."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, separators=(",", ":"))
    os.replace(tmp, path)


def publish(run_dir: str, snapshot: dict[str, Any]) -> None:
    """Blocking: write this worker's snapshot as `worker-<pid>.json`."""
    write_json(os.path.join(run_dir, f"worker-{snapshot['pid']}.json"), snapshot)


def read_run_dir(run_dir: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Blocking: (master record, snapshots of workers not yet retired). The worker files are read
    before master.json: a worker retired meanwhile is then in the master's list and skipped."""
    workers: list[dict[str, Any]] = []
    try:
        names = sorted(os.listdir(run_dir))
    except OSError:
        return {}, workers
    for name in names:
        if name.startswith("worker-") and name.endswith(".json"):
            data = _read(os.path.join(run_dir, name))
            if data:
                workers.append(data)
    master = _read(os.path.join(run_dir, MASTER_FILE))
    retired = set(master.get("retired_pids", ()))
    return master, [w for w in workers if w.get("pid") not in retired]


def _read(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}  # removed meanwhile, or a stray file


def fresh(snapshots: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The snapshots of workers that published recently (the ones counted as running)."""
    now = time.time()
    return [s for s in snapshots if now - s.get("time", 0) < STALE_AFTER]


class MasterLedger:
    """The master's side of the metrics: keeps exited workers' totals, and its own process stats.

    Implements server.supervisor's `Ledger` protocol."""

    RETIRED_PIDS = 256  # only pids whose file may still be read matter; keep a bounded tail

    def __init__(self, run_dir: str) -> None:
        self.run_dir = run_dir
        self.started = time.time()
        self.retired = empty_total()
        self.retired_pids: list[int] = []
        self.write()

    def write(self) -> None:
        write_json(os.path.join(self.run_dir, MASTER_FILE), {
            "pid": os.getpid(), "started": self.started, "time": time.time(), "process": process_stats(),
            "retired": self.retired, "retired_pids": self.retired_pids})

    def worker_exited(self, pid: int) -> None:
        """Fold the worker's last snapshot into the retired totals, then remove its file."""
        path = os.path.join(self.run_dir, f"worker-{pid}.json")
        snap = _read(path)
        if snap:
            add_snapshot(self.retired, snap, gauges=False)
        self.retired_pids = (self.retired_pids + [pid])[-self.RETIRED_PIDS:]
        try:
            self.write()
        except OSError:
            return  # keep the worker's file: it is still counted from there
        for stale in (path, f"{path}.{pid}.tmp"):
            try:
                os.unlink(stale)
            except OSError:
                pass

    def tick(self) -> None:
        try:
            self.write()
        except OSError:
            pass


# --- Prometheus text exposition format 0.0.4 ---

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_COUNTERS = (
    ("response_bytes_total", "bytes_sent", "Body bytes sent to clients."),
    ("connections_accepted_total", "connections_total", "Connections accepted."),
    ("protocol_errors_total", "errors_protocol", "Requests refused by the parser (4xx before routing)."),
    ("keepalive_idle_closes_total", "idle_closes", "Keep-alive connections closed after idling for --keepalive-timeout (or a drain's grace)."),
    ("accept_errors_total", "accept_errors", "accept(2) failures."),
    ("ready_answers_total", "ready_answers", "Requests answered from ready bytes (repeated heads; no parse, no lookup)."),
    ("immediate_answers_total", "immediate_answers", "Requests parsed and answered in the event loop, no greenlet switch (cached answers)."),
)
_CACHE = (
    ("cache_hits_total", "hits", "counter", "Open-file cache hits."),
    ("cache_misses_total", "misses", "counter", "Open-file cache misses."),
    ("cache_evictions_total", "evictions", "counter", "Open-file cache evictions."),
    ("cache_revalidations_total", "revalidations", "counter", "Open-file cache revalidations a request waited for."),
    ("cache_refreshes_total", "refreshes", "counter",
     "Open-file cache entries in use revalidated ahead of time, off the request path."),
    ("cache_entries", "entries", "gauge", "Paths in the open-file caches."),
    ("cache_memory_bytes", "memory", "gauge", "Bytes of file bodies held in memory by the caches."),
    ("cache_open_fds", "open_fds", "gauge", "File descriptors held by the caches."),
)


_PROCESS = (
    ("process_cpu_seconds_total", "cpu_seconds", "counter", "User and system CPU time of the process."),
    ("process_resident_memory_bytes", "rss_bytes", "gauge", "Resident memory of the process."),
    ("process_open_fds", "open_fds", "gauge", "Open file descriptors of the process."),
)


def _family(out: list[str], name: str, kind: str, help_text: str) -> None:
    out.append(f"# HELP x15g_{name} {help_text}")
    out.append(f"# TYPE x15g_{name} {kind}")


def _number(value: float) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


def render_prometheus(total: dict[str, Any], workers: int, started: float,
                      processes: Iterable[tuple[str, int, dict[str, float]]] = ()) -> str:
    """The text a Prometheus server scrapes: aggregated `total` (see `aggregate`), and the
    `process_*` metrics of each (worker label, pid, process_stats()) in `processes`."""
    out: list[str] = []
    counters, cache, req = total["counters"], total["cache"], total["requests"]
    _family(out, "build_info", "gauge", "Version of the running server.")
    out.append(f'x15g_build_info{{version="{__version__}"}} 1')
    _family(out, "start_time_seconds", "gauge", "Unix time the master started.")
    out.append(f"x15g_start_time_seconds {_number(float(started))}")
    _family(out, "workers", "gauge", "Worker processes reporting.")
    out.append(f"x15g_workers {workers}")
    _family(out, "requests_total", "counter", "Requests answered, by method and status code.")
    for method in sorted(req["by_method"]):
        codes = req["by_method"][method]
        for code in sorted(codes):
            out.append(f'x15g_requests_total{{method="{method}",code="{code}"}} {codes[code]}')
    _family(out, "request_duration_seconds", "histogram", "Time from a complete request head to the last byte sent.")
    cumulative = 0
    for bound, value in zip(BUCKETS, req["buckets"]):
        cumulative += value
        out.append(f'x15g_request_duration_seconds_bucket{{le="{bound}"}} {cumulative}')
    cumulative += req["buckets"][-1]
    out.append(f'x15g_request_duration_seconds_bucket{{le="+Inf"}} {cumulative}')
    out.append(f"x15g_request_duration_seconds_sum {req['sum_us'] / 1_000_000}")
    out.append(f"x15g_request_duration_seconds_count {cumulative}")
    for name, key, help_text in _COUNTERS:
        _family(out, name, "counter", help_text)
        out.append(f"x15g_{name} {_number(counters.get(key, 0))}")
    _family(out, "timeouts_total", "counter", "Connections closed because a client was too slow, by what it was slow at.")
    out.append(f'x15g_timeouts_total{{kind="header"}} {counters.get("timeouts_header", 0)}')
    out.append(f'x15g_timeouts_total{{kind="body"}} {counters.get("timeouts_body", 0)}')
    out.append(f'x15g_timeouts_total{{kind="send"}} {counters.get("timeouts_send", 0)}')
    _family(out, "response_bodies_total", "counter", "Response bodies by how they were sent.")
    out.append(f'x15g_response_bodies_total{{kind="memory"}} {counters.get("bodies_memory", 0)}')
    out.append(f'x15g_response_bodies_total{{kind="sendfile"}} {counters.get("bodies_sendfile", 0)}')
    _family(out, "connections_open", "gauge", "Client connections open now.")
    out.append(f"x15g_connections_open {counters.get('connections_open', 0)}")
    _family(out, "connections_idle", "gauge", "Open connections idle between keep-alive requests.")
    out.append(f"x15g_connections_idle {counters.get('connections_idle', 0)}")
    for name, key, kind, help_text in _CACHE:
        _family(out, name, kind, help_text)
        out.append(f"x15g_{name} {cache.get(key, 0)}")
    processes = sorted(processes, key=lambda p: (p[0] != "master", p[0].zfill(6), p[1]))
    for name, key, kind, help_text in _PROCESS:
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} {kind}")
        for worker, pid, stats in processes:
            out.append(f'{name}{{worker="{worker}",pid="{pid}"}} {_number(stats.get(key, 0))}')
    return "\n".join(out) + "\n"
