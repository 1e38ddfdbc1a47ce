"""SPECweb99-like load for x15g (or any server with the same operations), validated byte for byte.

Run (see also `make loadtest`, `make loadtest-ui` and tools/loadtest_run.py):

    locust -f loadtests/specweb99.py --config loadtests/locust.conf --host http://127.0.0.1:8000 \
        --headless -u 20 -r 10 --specweb-dirs 3 --summary-json summary.json

Each locust user is one simulated connection (specweb99-like.md §4): it draws the operation
(§3.1) and the file (§3.2), keeps HTTP/1.1 connections for k requests (§3.3), paces itself to
400 kbit/s (§4) and checks every answer byte for byte against files it rebuilds itself (§7).
Failed checks are locust failures named after the check ("static body mismatch", ...).
The master (or the single local process) sends Reset before the run (§7.1), stops the run after
warm-up + measurement + ramp-down, checks post.log (§7.5) and prints the summary (§8); the exit
code is 0 for a valid run and 1 otherwise.

Distributed: `locust -f loadtests/specweb99.py --master ...` plus `locust -f loadtests/specweb99.py
--worker --master-host HOST` on each load machine. Workers get the run parameters from the master
and send their per-user tallies and POST records back when the run stops; each user is counted
once (keyed by worker index and user index).

Options (also as LOCUST_SPECWEB_* environment variables or in locust.conf): --specweb-dirs D
(0 = the §2.1 formula for N), --specweb-seed (file-content seed, the generator's --seed),
--specweb-run-seed (request RNG; 0 = random, printed in the summary), --specweb-warmup,
--specweb-measure, --specweb-rampdown (seconds), --summary-json PATH.
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
import time
from pathlib import Path

import gevent
from gevent.event import Event
from locust import FastHttpUser, constant, events, task
from locust.runners import MasterRunner, WorkerRunner

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # so `loadtests.*` imports work

from loadtests import specweb_control as control  # noqa: E402
from loadtests.specweb_checks import AdExpectation, check_cad, check_dynamic, check_post, check_static  # noqa: E402
from loadtests.specweb_workload import (  # noqa: E402
    CAD, CGI, CGI_PATH, DYN, POST, STATIC, URLROOT, ConnectionPlan, Target, cad_cookie, pacing_sleep,
    post_body, user_id, user_rng)
from x15g.specweb.tables import select_ad  # noqa: E402

log = logging.getLogger("specweb99")
STOP_GRACE = 2.0  # s after the ramp-down before users are stopped: in-flight requests finish
FINAL_WAIT = 30.0  # s the master waits for the workers' final reports
_POST_IDS = itertools.count()


class _State:
    """Per-process run state (one object per locust process)."""

    def __init__(self) -> None:
        self.ready = Event()
        self.collector: control.Collector | None = None
        self.summary: dict | None = None
        self.started_workers: set[str] = set()
        self.reports: dict[str, dict] = {}
        self.clock: gevent.Greenlet | None = None
        self.user_counter = itertools.count()

    def begin(self, params: control.RunParams) -> None:
        """Start a new run with `params` (fresh tables, tally and records)."""
        self.collector = control.Collector(params)
        self.summary = None
        self.reports = {}
        self.started_workers = set()
        self.user_counter = itertools.count()
        self.ready.set()


STATE = _State()


@events.init_command_line_parser.add_listener
def _options(parser) -> None:
    group = parser.add_argument_group("SPECweb99-like")
    group.add_argument("--specweb-dirs", type=int, default=0, env_var="LOCUST_SPECWEB_DIRS",
                       help="directories D of the file set on the server (0: the spec formula for N)")
    group.add_argument("--specweb-seed", type=int, default=1999, env_var="LOCUST_SPECWEB_SEED",
                       help="file-content seed the file set was generated with")
    group.add_argument("--specweb-run-seed", type=int, default=0, env_var="LOCUST_SPECWEB_RUN_SEED",
                       help="seed of the request streams (0: pick one and print it)")
    group.add_argument("--specweb-warmup", type=float, default=30, env_var="LOCUST_SPECWEB_WARMUP",
                       help="warm-up seconds (not measured)")
    group.add_argument("--specweb-measure", type=float, default=120, env_var="LOCUST_SPECWEB_MEASURE",
                       help="measurement interval seconds")
    group.add_argument("--specweb-rampdown", type=float, default=10, env_var="LOCUST_SPECWEB_RAMPDOWN",
                       help="ramp-down seconds after the measurement (not measured)")
    group.add_argument("--summary-json", default="", env_var="LOCUST_SUMMARY_JSON",
                       help="write the SPECweb99-like summary to this JSON file")


@events.init.add_listener
def _init(environment, **_kw) -> None:
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        runner.register_message("specweb_params", _on_params)
    if isinstance(runner, MasterRunner):
        runner.register_message("specweb_started", _on_worker_started)
        runner.register_message("specweb_final", _on_worker_final)
    if environment.web_ui:
        @environment.web_ui.app.route("/specweb/summary")
        def _summary_route():
            return STATE.summary or {"state": "no finished run yet"}


def _target_users(environment) -> int:
    opts, runner = environment.parsed_options, environment.runner
    shape = environment.shape_class
    return max(getattr(runner, "target_user_count", 0) or 0, getattr(opts, "num_users", 0) or 0,
               getattr(shape, "max_users", 0) or 0, 1)


@events.test_start.add_listener
def _test_start(environment, **_kw) -> None:
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        runner.send_message("specweb_started", {"worker": runner.client_id})
        return
    opts = environment.parsed_options
    run_seed = opts.specweb_run_seed or int.from_bytes(os.urandom(4), "big")
    params = control.plan_run(environment.host, _target_users(environment), opts.specweb_dirs, opts.specweb_seed,
                              run_seed, opts.specweb_warmup, opts.specweb_measure, opts.specweb_rampdown)
    for problem in params.problems:
        log.error("%s", problem)
    STATE.begin(params)
    if isinstance(runner, MasterRunner):
        runner.send_message("specweb_params", control.params_to_wire(params))
    if STATE.clock is not None:
        STATE.clock.kill(block=False)
    STATE.clock = gevent.spawn(_run_clock, environment, params.t_end)
    log.info("SPECweb99-like run: N=%d D=%d run seed %d, warm-up %ss, measurement %ss, ramp-down %ss",
             params.N, params.D, params.run_seed, params.warmup, params.measure, params.rampdown)


def _run_clock(environment, t_end: float) -> None:
    """Stop the run itself after warm-up + measurement + ramp-down (and quit when headless)."""
    gevent.sleep(max(0.0, t_end - time.time()) + STOP_GRACE)
    runner = environment.runner
    if runner.state in ("stopped", "stopping", "cleanup"):
        return
    STATE.clock = None
    runner.stop()
    if environment.parsed_options.headless:
        runner.quit()


def _on_params(environment, msg, **_kw) -> None:
    STATE.begin(control.params_from_wire(msg.data))


def _on_worker_started(environment, msg, **_kw) -> None:
    STATE.started_workers.add(msg.data["worker"])


def _on_worker_final(environment, msg, **_kw) -> None:
    STATE.reports[msg.data["worker"]] = msg.data["report"]


@events.test_stop.add_listener
def _test_stop(environment, **_kw) -> None:
    runner, col = environment.runner, STATE.collector
    if col is None:
        return
    if isinstance(runner, WorkerRunner):
        runner.send_message("specweb_final", {"worker": runner.client_id, "report": col.final_report()})
        return
    if isinstance(runner, MasterRunner):
        deadline = time.time() + FINAL_WAIT
        while not STATE.started_workers <= set(STATE.reports) and time.time() < deadline:
            gevent.sleep(0.1)
        reports = list(STATE.reports.values())
        missing = sorted(STATE.started_workers - set(STATE.reports))
        workers = len(STATE.started_workers)
    else:
        reports, missing, workers = [col.final_report()], [], 1
    STATE.summary = control.finish(col.params, reports, workers, missing)
    control.publish(STATE.summary, environment.parsed_options.summary_json)


@events.quitting.add_listener
def _quitting(environment, **_kw) -> None:
    """Exit code: 0 for a valid run, 1 for an invalid one or a run that produced no summary."""
    if isinstance(environment.runner, WorkerRunner):
        return
    valid = bool(STATE.summary and STATE.summary["valid"])
    environment.process_exit_code = 0 if valid else 1


class SpecwebUser(FastHttpUser):
    """One simulated SPECweb99-like connection (§4): one request at a time, paced to 400 kbit/s."""

    wait_time = constant(0)
    network_timeout = control.HTTP_TIMEOUT
    connection_timeout = control.HTTP_TIMEOUT
    max_retries = 0
    concurrency = 1

    def __init__(self, environment) -> None:
        super().__init__(environment)
        self.client.client.cookiejar = None  # cookies are ours to send (§5.5): a stray one would make a CAD GET

    def on_start(self) -> None:
        """Wait for the run parameters, then take a user index, an RNG stream and a meter."""
        STATE.ready.wait()
        col = STATE.collector
        runner = self.environment.runner
        worker = max(0, getattr(runner, "worker_index", 0))
        local = next(STATE.user_counter)
        self.index = worker * 100_000 + local  # unique across workers; logged as POST `client`
        self.rng = user_rng(col.params.run_seed, worker, local)
        self.plan = ConnectionPlan(self.rng)
        self.uid = user_id(self.index, col.params.N)
        self.last_ad = self.rng.randrange(360)  # §6.4: a new user's first L is random
        self.meter = col.tally.add_user("%d:%d" % (worker, local), time.time())
        self.col = col

    @task
    def one_request(self) -> None:
        """Draw, send, validate and account one request, then sleep out the line-speed pacing."""
        col = self.col
        if col is not STATE.collector or time.time() >= col.params.t_end:
            gevent.sleep(0.5)  # ramp-down is over (or a new run began): wait to be stopped
            return
        op = col.workload.operation(self.rng)
        target = col.workload.target(self.rng)
        last = self.plan.next_request()
        started, perf = time.time(), time.perf_counter()
        error, nbytes, latency = self._exchange(op, target, last)
        done = time.time()
        sleep = pacing_sleep(nbytes, time.perf_counter() - perf)
        col.tally.record(self.meter, op, started, done, nbytes, sleep, latency, error)
        if sleep:
            gevent.sleep(sleep)

    def _exchange(self, op: str, target: Target, last: bool) -> tuple[str | None, int, float]:
        """Send one request; (failed check or None, bytes received, latency ms)."""
        headers = {"Accept-Encoding": "identity"}
        if last:
            headers["Connection"] = "close"
        method, body, url = "GET", None, URLROOT + target.path
        qs = URLROOT + target.path
        post_key = None
        want = None
        if op in (CAD, POST):
            headers["Cookie"] = cad_cookie(self.uid, self.last_ad)
        if op == CAD:
            a, w, x = select_ad(self.col.user_dems[self.uid - 10000], self.last_ad, self.col.ads, self.col.params.now)
            near = abs(self.col.params.now - self.col.ads.expv[a]) <= 2
            want = AdExpectation(a, w, x, near)
        if op == POST:
            method, url = "POST", DYN
            body = post_body(target, self.index)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            post_key = next(_POST_IDS)
            self.col.pending[post_key] = (target.d, target.cls, target.num, self.index, self.uid)
        elif op != STATIC:
            url = (CGI_PATH if op == CGI else DYN) + "?" + qs
        error, nbytes, latency = None, 0, 0.0
        try:
            with self.client.request(method, url, name=op, data=body, headers=headers, catch_response=True,
                                     allow_redirects=False) as resp:
                error = self._validate(op, target, resp, qs, want)
                nbytes = _response_bytes(resp)
                if post_key is not None:
                    rec = self.col.pending.pop(post_key)
                    if resp.status_code == 200:
                        self.col.posts.append(rec)
                if error:
                    _log_failure(error, method, url, resp)
                    resp.failure(error)
                else:
                    resp.success()
                latency = resp.request_meta.get("response_time") or 0.0
        finally:
            if last or error:
                self._new_connection()
        return error, nbytes, latency

    def _validate(self, op: str, target: Target, resp, qs: str, want: AdExpectation | None) -> str | None:
        status = resp.status_code
        if status == 0:  # no HTTP answer: reset, refused or timed out (§7.6)
            return f"{op} connection error"
        content = resp.content or b""
        cookies = resp.headers.getlist("set-cookie") if resp.headers is not None else []
        files = self.col.files
        expected = files.get(target.d, target.cls, target.num)
        if op == STATIC:
            return check_static(status, content, expected)
        if op == CAD:
            error = check_cad(status, cookies, content, qs.encode(), DYN.encode(), files,
                              (target.d, target.cls, target.num), want)
            self.last_ad = want.ad  # §7.4: after each CAD reply, L = A
            return error
        if op == POST:
            return check_post(status, cookies, content, DYN.encode(), self.uid, expected)
        script = CGI_PATH if op == CGI else DYN
        return check_dynamic(op, status, cookies, content, qs.encode(), script.encode(), expected)

    def _new_connection(self) -> None:
        """Drop the pooled socket so the next request opens a new TCP connection (§3.3)."""
        self.client.client.clientpool.close()
        self.plan.abandon()


_FAILURES_LOGGED: dict[str, int] = {}


def _log_failure(error: str, method: str, url: str, resp) -> None:
    """Log the first few failures of each check with what came back, to make them debuggable."""
    seen = _FAILURES_LOGGED[error] = _FAILURES_LOGGED.get(error, 0) + 1
    if seen <= 3:
        body = resp.content or b""
        log.warning("%s: %s %s -> %s, %d bytes, Set-Cookie %s, body starts %r", error, method, url,
                    resp.status_code, len(body), resp.headers.getlist("set-cookie") if resp.headers else [],
                    body[:120])


def _response_bytes(resp) -> int:
    """Bytes received: the status line, header lines, blank line and body (§4's R)."""
    if resp.headers is None:
        return len(resp.content or b"")
    head = 17 + sum(len(k) + len(v) + 4 for k, v in resp.headers.items()) + 2
    return head + len(resp.content or b"")
