"""Run control of the SPECweb99-like suite: Reset and Fetch (§7.1, §7.5), run parameters, the
per-process collector and the master's finishing step (post-log check, summary, JSON).

The master (or the local runner) resets the server and broadcasts `RunParams` to the workers; each
process measures into its own `Collector`. The run's phases are ramp-up (until all N users run,
or `rampup_limit` s), warm-up, measurement and ramp-down; the master fixes the start of the
measurement interval when the ramp-up ends and broadcasts it. At the end the workers send their
tallies and POST records, and the master merges them, fetches post.log and writes the summary.
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from loadtests.specweb_checks import FileCache, PostRecord, check_post_log, parse_post_log
from loadtests.specweb_summary import NOT_STARTED, Tally, format_summary, machine, summarize, timing_mode
from loadtests.specweb_workload import DYN, URLROOT, Workload, reset_query
from x15g.specweb.fileset import DIR_BYTES, directory_count
from x15g.specweb.postlog import header
from x15g.specweb.tables import Ads, cadgen, parse_ads, parse_users, upfgen
from x15g.specweb.wrap import wrap_parts

log = logging.getLogger("specweb99")
HTTP_TIMEOUT = 30.0  # §7.6: a request that takes longer is an error


@dataclass
class RunParams:
    """What every process needs to generate and check the same requests (sent master -> workers)."""

    N: int
    D: int
    seed: int
    run_seed: int
    now: int
    pttime: int
    exp: tuple[int, int]
    t0: float
    warmup: float
    measure: float
    rampdown: float
    host: str
    rampup_limit: float = 120.0
    static_only: bool = False
    measure_start: float = math.inf  # set when the ramp-up ends (all N users run, or rampup_limit)
    urlroot: str = URLROOT
    dyn: str = DYN
    problems: list[str] = field(default_factory=list)

    @property
    def window(self) -> tuple[float, float]:
        """[start, end) of the measurement interval in time.time() seconds (inf until known)."""
        if self.measure_start == math.inf:
            return NOT_STARTED
        return self.measure_start, self.measure_start + self.measure

    @property
    def t_end(self) -> float:
        """When the ramp-down ends (inf while the ramp-up lasts)."""
        return self.window[1] + self.rampdown

    def phase(self, now: float) -> str:
        """The run phase at `now`: ramp-up, warm-up, measurement, ramp-down or post-log check."""
        ws, we = self.window
        if ws == math.inf:
            return "ramp-up"
        if now < ws:
            return "warm-up (%.0f s left)" % (ws - now)
        if now < we:
            return "measurement (%.0f s left)" % (we - now)
        if now < self.t_end:
            return "ramp-down (%.0f s left)" % (self.t_end - now)
        return "post-log check"

    def report_fields(self, workers: int) -> dict[str, Any]:
        """The §8 run description fields of the summary."""
        fileset = self.D * DIR_BYTES
        return {"N": self.N, "D": self.D, "fileset_bytes": fileset,
                "fits_in_ram": fileset < machine()["ram_bytes"], "warmup": self.warmup,
                "measure": self.measure, "rampdown": self.rampdown,
                "timing": timing_mode(self.warmup, self.measure, self.rampdown), "run_seed": self.run_seed,
                "seed": self.seed, "host": self.host, "workers": workers, "static_only": self.static_only,
                "problems": list(self.problems)}


def http_get(host: str, target: str) -> tuple[int, bytes]:
    """One GET on a fresh connection (housekeeping only; the load goes through FastHttpUser)."""
    parts = urlsplit(host)
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=HTTP_TIMEOUT)
    try:
        conn.request("GET", target, headers={"Connection": "close"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def unwrap(body: bytes, qs: bytes, script: bytes) -> bytes | None:
    """X from WRAP(qs, X) whatever SERVER_SOFTWARE and REMOTE_ADDR say, or None if not wrapped."""
    head = wrap_parts(qs, b"", b"", script)[0].split(b"SERVER_SOFTWARE = ")[0]
    qs_line = b"\n<p>SCRIPT_NAME = " + script + b"\n<p>QUERY_STRING = " + qs + b"\n<pre>\n"
    tail = wrap_parts(qs, b"", b"", script)[1]
    at = body.find(qs_line)
    if not body.startswith(head) or at < 0 or not body.endswith(tail):
        return None
    return body[at + len(qs_line):len(body) - len(tail)]


def reset_server(host: str, users: int, pttime: int, exp: tuple[int, int], now: int,
                 urlroot: str = URLROOT, dyn: str = DYN) -> list[str]:
    """§7.1: Reset, require WRAP(qs, ""), then require an empty post.log. Returns problems."""
    qs = reset_query(users, pttime, exp[0], exp[1], now, urlroot)
    try:
        status, body = http_get(host, dyn + "?" + qs)
        if status != 200 or unwrap(body, qs.encode(), dyn.encode()) != b"":
            return ["Reset answered %d with an unexpected body" % status]
        status, body = http_get(host, dyn + "?command/Fetch")
        if status != 200 or unwrap(body, b"command/Fetch", dyn.encode()) != header(0):
            return ["post.log not empty after Reset (status %d)" % status]
    except OSError as e:
        return ["Reset failed: %s" % e]
    return []


def fetch_post_log(host: str, dyn: str = DYN) -> bytes | None:
    """The post.log bytes from command/Fetch, or None if the reply is not a wrapped 200."""
    try:
        status, body = http_get(host, dyn + "?command/Fetch")
    except OSError as e:
        log.error("command/Fetch failed: %s", e)
        return None
    return unwrap(body, b"command/Fetch", dyn.encode()) if status == 200 else None


def plan_run(host: str, users: int, dirs: int, seed: int, run_seed: int, warmup: float, measure: float,
             rampdown: float, rampup_limit: float = 120.0, static_only: bool = False) -> RunParams:
    """Pick the Reset parameters (§7.1), reset the server (not for a static-only run) and return
    the run's parameters."""
    rng = random.Random(run_seed)
    now = int(time.time())
    pttime = max(1, int(warmup + measure + rampdown))
    exp = (rng.randint(0, 359), rng.randint(0, 359))
    problems = [] if static_only else reset_server(host, users, pttime, exp, now)
    return RunParams(N=users, D=dirs or directory_count(users), seed=seed, run_seed=run_seed, now=now,
                     pttime=pttime, exp=exp, t0=time.time(), warmup=warmup, measure=measure,
                     rampdown=rampdown, host=host, rampup_limit=rampup_limit, static_only=static_only,
                     problems=problems)


class Collector:
    """One process's view of the current run: parameters, tables, file cache, tally, POST records."""

    def __init__(self, params: RunParams) -> None:
        self.params = params
        self.workload = Workload(params.D, params.static_only)
        self.user_dems: list[int] = parse_users(upfgen(params.N, params.N))
        self.ads: Ads = parse_ads(cadgen(params.pttime, params.N, params.exp[0], params.exp[1], params.now))
        self.files = FileCache(params.seed)
        self.tally = Tally(window=params.window)
        self.posts: list[PostRecord] = []
        self.pending: dict[int, PostRecord] = {}
        self.in_flight = 0  # requests sent and not yet tallied
        self.cpu_window: list[float] = []  # process CPU seconds at the start and end of the interval

    def begin_measurement(self, start: float) -> None:
        """The ramp-up is over: the measurement interval starts at `start`."""
        self.params.measure_start = start
        self.tally.set_window(self.params.window)

    def cpu_seconds(self) -> float:
        """This process's CPU seconds inside the measurement interval (so far)."""
        if not self.cpu_window:
            return 0.0
        end = self.cpu_window[1] if len(self.cpu_window) > 1 else time.process_time()
        return end - self.cpu_window[0]

    def live_report(self, now: float) -> dict[str, Any]:
        """This process's tally and live counters, for the master's live summary."""
        users, conforming = self.tally.conforming_now(now)
        return {"tally": self.tally.to_wire(), "users_now": users, "conforming_now": conforming,
                "cpu_s": self.cpu_seconds()}

    def final_report(self) -> dict[str, Any]:
        """This process's tally and POST records, for the master."""
        return {"tally": self.tally.to_wire(), "posts": [list(p) for p in self.posts],
                "pending": [list(p) for p in self.pending.values()], "cpu_s": self.cpu_seconds()}


def live_summary(params: RunParams, reports: list[dict[str, Any]], workers: int, users_at_start: int | None,
                 users_now: int, now: float) -> dict[str, Any]:
    """The provisional summary while the run goes on, from the processes' `live_report`s."""
    tally = Tally(window=params.window)
    for rep in reports:
        tally.merge(rep["tally"])
    run = params.report_fields(workers)
    run.update(users_at_start=users_at_start, users_now=users_now, phase=params.phase(now),
               conforming_now=sum(r["conforming_now"] for r in reports),
               client_cpu_s=sum(r["cpu_s"] for r in reports))
    return summarize(tally, run, None, now=now)


def finish(params: RunParams, reports: list[dict[str, Any]], workers: int, missing: list[str],
           users_at_start: int | None = None, users_now: int = 0, master_cpu_s: float = 0.0,
           conforming_now: int | None = None) -> dict[str, Any]:
    """Merge the process reports, check post.log (§7.5) and build the summary (§8)."""
    tally = Tally(window=params.window)
    posts: list[PostRecord] = []
    pending: list[PostRecord] = []
    for rep in reports:
        tally.merge(rep["tally"])
        posts += [tuple(p) for p in rep["posts"]]
        pending += [tuple(p) for p in rep["pending"]]
    run = params.report_fields(workers)
    run.update(users_at_start=users_at_start, users_now=users_now, phase="finished", conforming_now=conforming_now,
               client_cpu_s=master_cpu_s + sum(r.get("cpu_s", 0.0) for r in reports))
    run["problems"] += ["no final report from worker %s" % w for w in missing]
    if time.time() < params.window[1]:
        run["problems"].append("run stopped before the measurement interval ended")
    if params.static_only:
        summary = summarize(tally, run, [])
        summary["post_records"] = len(posts)
        return summary
    time.sleep(0.5)  # let a POST the server was still handling when its client stopped land first
    logdata = fetch_post_log(params.host, params.dyn)
    problems = ["post.log could not be fetched"] if logdata is None else check_post_log(
        logdata, posts, pending, params.urlroot)
    summary = summarize(tally, run, problems)
    summary["post_records"] = len(posts)
    if logdata is not None:
        try:
            summary["post_log_count"] = parse_post_log(logdata)[0]
        except ValueError:
            pass
    return summary


def publish(summary: dict[str, Any], path: str | None) -> None:
    """Print the summary for people and write it as JSON to `path` (if given)."""
    print(format_summary(summary), flush=True)
    if path:
        with open(path, "w") as f:
            json.dump(summary, f, indent=2, sort_keys=True)
            f.write("\n")


def params_to_wire(p: RunParams) -> dict[str, Any]:
    """RunParams as a plain dict for `runner.send_message`."""
    return asdict(p)


def params_from_wire(data: dict[str, Any]) -> RunParams:
    """Inverse of `params_to_wire`."""
    data = dict(data)
    data["exp"] = tuple(data["exp"])
    return RunParams(**data)
