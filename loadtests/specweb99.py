"""SPECweb99-like load for x15g (or any server with the same operations), validated byte for byte.

Run it with `x15g-loadtest` (loadtests/cli.py; `make loadtest`, `make loadtest-ui`), or with locust:

    locust -f $(x15g-loadtest --print-locustfile) --headless --host http://127.0.0.1:8000 \
        -u 20 -r 10 --specweb-dirs 3 --specweb-warmup 10 --specweb-measure 30 --summary-json summary.json

Each locust user is one simulated connection (specweb99-like.md §4): it draws the operation
(§3.1) and the file (§3.2), keeps HTTP/1.1 connections for k requests (§3.3), paces itself to
400 kbit/s (§4) and checks every answer byte for byte against files it rebuilds itself (§7),
through the lean client of specweb_client.py. Every request goes to locust's statistics under its
operation's name; a failed check is a locust failure named after the check ("static body
mismatch", ...). The master (or the single local process) sends Reset before the run (§7.1),
waits until all N users run (the ramp-up), then runs warm-up, measurement and ramp-down; after the
ramp-down it collects the workers' final reports, checks post.log (§7.5), prints the summary (§8)
and only then stops the run, so the web UI's SPECweb99 tab (specweb_ui.py) shows the final
verdict. The exit code is 0 for a valid run and 1 otherwise; the summary also goes into locust's
--html report and PREFIX_specweb99.csv beside its --csv files.

Distributed: `x15g-loadtest --expect-workers K --master-bind 0.0.0.0:5557 ...` (or locust's own
`--master`) plus `x15g-loadtest --worker MASTER` (`locust -f ... --worker --master-host MASTER`)
on each load machine. Workers get the run parameters and the start of the measurement interval
from the master, add their tallies to locust's stats reports every 3 s (the live tab) and send
their final tallies and POST records when asked; each user is counted once (keyed by worker index
and user index).

Options (also as LOCUST_SPECWEB_* environment variables or in locust.conf): --specweb-dirs D
(0 = the §2.1 formula for N), --specweb-seed (file-content seed, the generator's --seed),
--specweb-run-seed (request RNG; 0 = random, printed in the summary), --specweb-warmup,
--specweb-measure, --specweb-rampdown (seconds), --specweb-rampup-limit (seconds to wait for all N
users), --specweb-static-only, --summary-json PATH.
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
from locust import User, constant, events, task
from locust.exception import CatchResponseError
from locust.runners import MasterRunner, WorkerRunner

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # so `loadtests.*` imports work

from loadtests import specweb_control as control  # noqa: E402
from loadtests.specweb_report import inject_html, to_csv  # noqa: E402
from loadtests.specweb_summary import Tally  # noqa: E402
from loadtests.specweb_checks import AdExpectation, check_cad, check_dynamic, check_post, check_static  # noqa: E402
from loadtests.specweb_client import Answer, Connection, resolve  # noqa: E402
from loadtests.specweb_workload import (  # noqa: E402
    CAD, CGI, CGI_PATH, DYN, POST, STATIC, URLROOT, ConnectionPlan, Target, cad_cookie, pacing_sleep,
    post_body, user_id, user_rng)
from x15g.specweb.tables import select_ad  # noqa: E402

log = logging.getLogger("specweb99")
FINAL_WAIT = 30.0  # s the master waits for the workers' final reports
UI_LINGER = 5.0  # s the final summary is shown in the web UI (polled every 2 s) before the run stops
_POST_IDS = itertools.count()


class _State:
    """Per-process run state (one object per locust process)."""

    def __init__(self) -> None:
        self.ready = Event()
        self.collector: control.Collector | None = None
        self.summary: dict | None = None
        self.started_workers: set[str] = set()
        self.reports: dict[str, dict] = {}
        self.live: dict[str, dict] = {}
        self.clock: gevent.Greenlet | None = None
        self.user_counter = itertools.count()
        self.users_at_start: int | None = None
        self.final_sent = False

    def begin(self, params: control.RunParams) -> None:
        """Start a new run with `params` (fresh tables, tally and records)."""
        self.collector = control.Collector(params)
        self.summary = None
        self.reports = {}
        self.live = {}
        self.started_workers = set()
        self.user_counter = itertools.count()
        self.users_at_start = None
        self.final_sent = False
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
                       help="warm-up seconds (not measured), counted from when all N users run")
    group.add_argument("--specweb-measure", type=float, default=120, env_var="LOCUST_SPECWEB_MEASURE",
                       help="measurement interval seconds")
    group.add_argument("--specweb-rampdown", type=float, default=10, env_var="LOCUST_SPECWEB_RAMPDOWN",
                       help="ramp-down seconds after the measurement (not measured)")
    group.add_argument("--specweb-rampup-limit", type=float, default=0, env_var="LOCUST_SPECWEB_RAMPUP_LIMIT",
                       help="seconds to wait for all N users before the warm-up starts anyway and the run is "
                            "invalid (0: 60 s plus N / spawn rate, or the step shape's length)")
    group.add_argument("--specweb-static-only", action="store_true", default=False,
                       env_var="LOCUST_SPECWEB_STATIC_ONLY",
                       help="static GETs only, no Reset or post.log (a server without the dynamic module, "
                            "e.g. nginx); the verdict says the run is not SPECweb99-like")
    group.add_argument("--summary-json", default="", env_var="LOCUST_SUMMARY_JSON",
                       help="write the SPECweb99-like summary to this JSON file")


@events.init.add_listener
def _init(environment, **_kw) -> None:
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        runner.register_message("specweb_params", _on_params)
        runner.register_message("specweb_window", _on_window)
        runner.register_message("specweb_finish", _on_finish)
        runner.register_message("specweb_stopped", _on_stopped)
    if isinstance(runner, MasterRunner):
        runner.register_message("specweb_started", _on_worker_started)
        runner.register_message("specweb_final", _on_worker_final)
    if environment.web_ui:
        from loadtests import specweb_ui  # Flask only where there is a web UI
        specweb_ui.install(environment.web_ui, lambda: current_summary(environment))


def current_summary(environment) -> dict | None:
    """The final summary of the last run, or the live one of the run going on (None before any run)."""
    col, runner = STATE.collector, environment.runner
    if STATE.summary is not None or col is None:
        return STATE.summary
    now = time.time()
    if isinstance(runner, MasterRunner):
        reports = list(STATE.live.values())
        master = {"tally": Tally().to_wire(), "conforming_now": 0, "cpu_s": col.cpu_seconds()}
        reports.append(master)
        workers = len(STATE.started_workers)
    else:
        reports, workers = [col.live_report(now)], 1
    return control.live_summary(col.params, reports, workers, STATE.users_at_start, runner.user_count, now)


def _target_users(environment) -> int:
    opts, runner = environment.parsed_options, environment.runner
    shape = environment.shape_class
    return max(getattr(runner, "target_user_count", 0) or 0, getattr(opts, "num_users", 0) or 0,
               getattr(shape, "max_users", 0) or 0, 1)


def _rampup_limit(environment, users: int) -> float:
    """Seconds the ramp-up may take (--specweb-rampup-limit, else from the spawn rate or the shape)."""
    opts, shape = environment.parsed_options, environment.shape_class
    if opts.specweb_rampup_limit > 0:
        return opts.specweb_rampup_limit
    if shape is not None and hasattr(shape, "ramp_seconds"):
        return 60.0 + shape.ramp_seconds()
    rate = getattr(environment.runner, "spawn_rate", 0) or getattr(opts, "spawn_rate", 0) or 1.0
    return 60.0 + users / float(rate)


@events.test_start.add_listener
def _test_start(environment, **_kw) -> None:
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        runner.send_message("specweb_started", {"worker": runner.client_id})
        return
    opts = environment.parsed_options
    run_seed = opts.specweb_run_seed or int.from_bytes(os.urandom(4), "big")
    users = _target_users(environment)
    params = control.plan_run(environment.host, users, opts.specweb_dirs, opts.specweb_seed, run_seed,
                              opts.specweb_warmup, opts.specweb_measure, opts.specweb_rampdown,
                              _rampup_limit(environment, users), opts.specweb_static_only)
    for problem in params.problems:
        log.error("%s", problem)
    STATE.begin(params)
    if isinstance(runner, MasterRunner):
        runner.send_message("specweb_params", control.params_to_wire(params))
    if STATE.clock is not None:
        STATE.clock.kill(block=False)
    STATE.clock = gevent.spawn(_run_clock, environment, STATE.collector)
    log.info("SPECweb99-like run: N=%d D=%d run seed %d, ramp-up up to %.0fs, warm-up %ss, measurement %ss, "
             "ramp-down %ss%s", params.N, params.D, params.run_seed, params.rampup_limit, params.warmup,
             params.measure, params.rampdown, ", static only" if params.static_only else "")


def _sleep_until(t: float) -> None:
    gevent.sleep(max(0.0, t - time.time()))


def _run_clock(environment, col: control.Collector) -> None:
    """Drive the phases: ramp-up until all N users run, warm-up, measurement, ramp-down, then the
    final reports, the post-log check and the summary while the run still shows as running (so the
    web UI shows the verdict), then stop the run (and quit when headless)."""
    runner, params = environment.runner, col.params
    deadline = params.t0 + params.rampup_limit
    while runner.user_count < params.N and time.time() < deadline:
        gevent.sleep(0.2)
    start = time.time() + params.warmup
    col.begin_measurement(start)
    if isinstance(runner, MasterRunner):
        runner.send_message("specweb_window", {"start": start})
    gevent.spawn(_sample_cpu, col)
    _sleep_until(start)
    STATE.users_at_start = runner.user_count
    if STATE.users_at_start < params.N:
        log.warning("N not reached: %d users at the start of the measurement interval", STATE.users_at_start)
    _sleep_until(params.t_end)  # then the final reports, once the requests in flight are done (_drain)
    if runner.state in ("stopped", "stopping", "cleanup") or col is not STATE.collector:
        return
    _finish_run(environment, col, request=True)
    STATE.clock = None
    if not environment.parsed_options.headless:
        gevent.sleep(UI_LINGER)
    if runner.state not in ("stopped", "stopping", "cleanup"):
        runner.stop()
    if environment.parsed_options.headless:
        runner.quit()


def _sample_cpu(col: control.Collector) -> None:
    """Record this process's CPU time at the start and the end of the measurement interval."""
    ws, we = col.params.window
    _sleep_until(ws)
    col.cpu_window[:] = [time.process_time()]
    _sleep_until(we)
    if len(col.cpu_window) == 1:
        col.cpu_window.append(time.process_time())


def _drain(col: control.Collector, timeout: float = control.HTTP_TIMEOUT) -> None:
    """Wait (bounded) until no request of this process is in flight (none starts after the
    ramp-down), so its tally and POST records are complete."""
    deadline = time.time() + timeout
    while (col.in_flight or col.pending) and time.time() < deadline:
        gevent.sleep(0.1)


def _finish_run(environment, col: control.Collector, request: bool) -> None:
    """Collect the final reports (asking the workers for them if `request`) and publish the summary."""
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        if request:
            runner.send_message("specweb_finish", {})
        deadline = time.time() + FINAL_WAIT
        while not STATE.started_workers <= set(STATE.reports) and time.time() < deadline:
            gevent.sleep(0.1)
        reports = list(STATE.reports.values())
        missing = sorted(STATE.started_workers - set(STATE.reports))
        workers = len(STATE.started_workers)
        conforming_now = sum(r["conforming_now"] for r in STATE.live.values())
    else:
        if request:
            _drain(col)
        reports, missing, workers = [col.final_report()], [], 1
        conforming_now = col.tally.conforming_now(time.time())[1]
    master_cpu = col.cpu_seconds() if isinstance(runner, MasterRunner) else 0.0
    users_now = runner.user_count
    summary = control.finish(col.params, reports, workers, missing, STATE.users_at_start, users_now, master_cpu,
                             conforming_now)
    if col is STATE.collector and STATE.summary is None:
        STATE.summary = summary
        control.publish(summary, environment.parsed_options.summary_json)


def _on_params(environment, msg, **_kw) -> None:
    STATE.begin(control.params_from_wire(msg.data))


def _on_window(environment, msg, **_kw) -> None:
    col = STATE.collector
    if col is not None:
        col.begin_measurement(msg.data["start"])
        gevent.spawn(_sample_cpu, col)


def _send_final(environment, col: control.Collector) -> None:
    if not STATE.final_sent and col is STATE.collector:
        STATE.final_sent = True
        environment.runner.send_message("specweb_final", {"worker": environment.runner.client_id,
                                                          "report": col.final_report()})


def _on_finish(environment, msg, **_kw) -> None:
    col = STATE.collector
    if col is not None:
        # by this worker's own clock: one running behind the master's still has users sending
        gevent.spawn(lambda: (_sleep_until(col.params.t_end), _drain(col), _send_final(environment, col)))


def _on_stopped(environment, msg, **_kw) -> None:
    """The master stopped the run early: send the final report now (also when the master is
    quitting, SIGTERM or Ctrl-C, and this worker's own test_stop comes only after it waited)."""
    col = STATE.collector
    if col is not None:
        gevent.spawn(_send_final, environment, col)


def _on_worker_started(environment, msg, **_kw) -> None:
    STATE.started_workers.add(msg.data["worker"])


def _on_worker_final(environment, msg, **_kw) -> None:
    STATE.reports[msg.data["worker"]] = msg.data["report"]


@events.report_to_master.add_listener
def _report_to_master(client_id, data, **_kw) -> None:
    col = STATE.collector
    if col is not None and not STATE.final_sent:
        data["specweb"] = col.live_report(time.time())


@events.worker_report.add_listener
def _worker_report(client_id, data, **_kw) -> None:
    if "specweb" in data and STATE.collector is not None and STATE.summary is None:
        STATE.live[client_id] = data["specweb"]


@events.test_stop.add_listener
def _test_stop(environment, **_kw) -> None:
    """A run stopped before its end (Stop button, Ctrl-C): its summary is made now."""
    runner, col = environment.runner, STATE.collector
    if col is None:
        return
    if isinstance(runner, WorkerRunner):
        _send_final(environment, col)
        return
    if STATE.summary is None:
        if isinstance(runner, MasterRunner):
            runner.send_message("specweb_stopped", {})
        _finish_run(environment, col, request=False)


@events.quitting.add_listener
def _quitting(environment, **_kw) -> None:
    """Exit code: 0 for a valid run, 1 for an invalid one or a run that produced no summary; the
    summary goes into the --html report and a PREFIX_specweb99.csv beside the --csv files."""
    if isinstance(environment.runner, WorkerRunner):
        return
    s, opts = STATE.summary, environment.parsed_options
    environment.process_exit_code = 0 if s and s["valid"] else 1
    if s is None:
        return
    if getattr(opts, "html_file", None) and os.path.exists(opts.html_file):
        report = Path(opts.html_file)
        report.write_text(inject_html(report.read_text(encoding="utf-8"), s), encoding="utf-8")
    if getattr(opts, "csv_prefix", None):
        Path(opts.csv_prefix + "_specweb99.csv").write_text(to_csv(s))


_ADDRESS: dict[str, tuple] = {}  # host URL -> (socket address, Host header), resolved once per process


class SpecwebUser(User):
    """One simulated SPECweb99-like connection (§4): one request at a time, paced to 400 kbit/s,
    through the lean client of loadtests/specweb_client.py; every request is reported to locust's
    statistics under its operation name, a failed check as a failure named after the check."""

    wait_time = constant(0)

    def on_start(self) -> None:
        """Wait for the run parameters, then take a user index, an RNG stream, a meter and a connection."""
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
        host = self.host or col.params.host
        if host not in _ADDRESS:
            _ADDRESS[host] = resolve(host)
        address, self.host_header = _ADDRESS[host]
        self.conn = Connection(address, control.HTTP_TIMEOUT)
        self.fire = self.environment.events.request.fire

    def on_stop(self) -> None:
        self.conn.close()

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
        col.in_flight += 1  # counted until tallied: the final report waits for it (_drain)
        try:
            error, nbytes, latency = self._exchange(op, target, last, started, perf)
            elapsed = time.perf_counter() - perf  # request, answer and validation: the busy time (§4)
            sleep = pacing_sleep(nbytes, elapsed)
            col.tally.record(self.meter, op, started, started + elapsed, nbytes, sleep, latency, error)
        finally:
            col.in_flight -= 1
        if sleep:
            gevent.sleep(sleep)

    def _exchange(self, op: str, target: Target, last: bool, started: float,
                  perf: float) -> tuple[str | None, int, float]:
        """Send one request; (failed check or None, bytes received, latency ms)."""
        col = self.col
        path = target.path
        qs = URLROOT + path
        extra = b"Connection: close\r\n" if last else b""
        post_key = want = None
        if op == STATIC:
            method, url, body = "GET", qs, b""
        elif op == POST:
            method, url, body = "POST", DYN, post_body(target, self.index)
            extra += b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n" % len(body)
            post_key = next(_POST_IDS)
            col.pending[post_key] = (target.d, target.cls, target.num, self.index, self.uid)
        else:
            method, url, body = "GET", (CGI_PATH if op == CGI else DYN) + "?" + qs, b""
        if op in (CAD, POST):
            extra += b"Cookie: %s\r\n" % cad_cookie(self.uid, self.last_ad).encode()
        if op == CAD:
            a, w, x = select_ad(col.user_dems[self.uid - 10000], self.last_ad, col.ads, col.params.now)
            want = AdExpectation(a, w, x, abs(col.params.now - col.ads.expv[a]) <= 2)
        request = b"%s %s HTTP/1.1\r\nHost: %s\r\nAccept-Encoding: identity\r\n%s\r\n%s" % (
            method.encode(), url.encode(), self.host_header, extra, body)
        answer = None
        try:
            answer = self.conn.exchange(request)
        except OSError as e:
            failure: Exception | None = e
            error = f"{op} connection error"  # no HTTP answer: reset, refused or timed out (§7.6)
        latency = (time.perf_counter() - perf) * 1000.0
        if answer is not None:
            error = self._validate(op, target, answer, qs, want)
            failure = CatchResponseError(error) if error else None
            if post_key is not None:
                rec = col.pending.pop(post_key)
                if answer.status == 200:
                    col.posts.append(rec)
        elif post_key is not None:
            col.pending.pop(post_key)
        if error:
            example = _describe(method, url, answer, failure)
            col.tally.example(error, example)
            _log_failure(error, example)
        if last or error:
            self._new_connection()
        nbytes = answer.nbytes if answer is not None else 0
        self.fire(request_type=method, name=op, response_time=latency, response_length=nbytes,
                  exception=failure, context={}, url=url, start_time=started, response=None)
        return error, nbytes, latency

    def _validate(self, op: str, target: Target, answer: Answer, qs: str, want: AdExpectation | None) -> str | None:
        status, content = answer.status, answer.body
        files = self.col.files
        expected = files.get(target.d, target.cls, target.num)
        if op == STATIC:
            return check_static(status, content, expected)
        cookies = answer.values("set-cookie")
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
        """Close the socket so the next request opens a new TCP connection (§3.3)."""
        self.conn.close()
        self.plan.abandon()


_FAILURES_LOGGED: dict[str, int] = {}


def _describe(method: str, url: str, answer: Answer | None, failure: Exception | None) -> str:
    """What came back for a failed check: request, status, length, Set-Cookie and the body's start."""
    if answer is None:
        return "%s %s -> %s" % (method, url, failure)
    return "%s %s -> %s, %d bytes, Set-Cookie %s, body starts %r" % (
        method, url, answer.status, len(answer.body), answer.values("set-cookie"), bytes(answer.body[:80]))


def _log_failure(error: str, example: str) -> None:
    """Log the first few failures of each check with what came back, to make them debuggable."""
    seen = _FAILURES_LOGGED[error] = _FAILURES_LOGGED.get(error, 0) + 1
    if seen <= 3:
        log.warning("%s: %s", error, example)
