"""Conformance accounting and the run summary (specweb99-like.md §4, §8): pure, mergeable data.

Each locust process keeps one `Tally`: per simulated user its bits and wall time inside the
measurement interval (and over the whole run, for the live "conforming now"), per operation type
the measured count and a latency histogram, and over the whole run the request and
validation-error counts with the latest example of each failed check. Tallies travel to the master
as plain dicts (`to_wire`) and merge there (`merge`), each user keyed by (worker, user index) so it
is counted once. `summarize` turns the merged tally into the §8 report, live (provisional, post-log
check pending) or final; `format_summary` prints it for people.
"""

from __future__ import annotations

import math
import os
import platform
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from loadtests.specweb_workload import CONFORMING_BPS, OPERATIONS

MIN_CONFORMING_PCT = 95.0  # §4 validity rule 1
MAX_ERROR_PCT = 1.0  # §4 validity rule 2 [approx]
FULL_TIMING = (1200, 1200, 300)  # §4: warm-up, measurement, ramp-down of a compliant run
NOW_SPAN = 10.0  # s: "conforming now" is the rate over the requests of about the last 10 s
NOT_STARTED = (math.inf, math.inf)  # the window of a run whose N users are not all running yet


def latency_bucket(ms: float) -> int:
    """Round a latency like locust does: 1 ms below 100, 10 ms below 1000, then 100 ms."""
    if ms < 100:
        return int(round(ms))
    if ms < 1000:
        return int(round(ms, -1))
    return int(round(ms, -2))


@dataclass(slots=True)
class UserMeter:
    """One simulated connection's measured bits and seconds (busy + pacing sleep) (§4)."""

    started: float
    bits: float = 0.0
    seconds: float = 0.0
    requests: int = 0
    run_bits: float = 0.0  # over the whole run, for "conforming now"
    run_seconds: float = 0.0
    ramp_span: tuple[float, float, float] | None = None  # last (start, end, bits) before the window was known

    def rate(self) -> float:
        """Average bit rate over the measured wall time (0 when nothing was measured)."""
        return self.bits / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Tally:
    """Everything one process measured; window = [start, end) of the measurement interval."""

    window: tuple[float, float] = NOT_STARTED
    users: dict[str, UserMeter] = field(default_factory=dict)
    ops: Counter = field(default_factory=Counter)
    latency_sum: Counter = field(default_factory=Counter)
    latency: dict[str, Counter] = field(default_factory=dict)
    requests: int = 0
    errors: Counter = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)  # failed check -> its latest example
    _history: list[tuple[float, dict[str, tuple[float, float]]]] = field(default_factory=list)

    def add_user(self, key: str, now: float) -> UserMeter:
        """Register a simulated user started at `now`."""
        meter = self.users[key] = UserMeter(now)
        return meter

    def record(self, meter: UserMeter, op: str, started: float, done: float, nbytes: int, sleep: float,
               latency_ms: float, error: str | None) -> None:
        """Account one request that began at `started` and was validated at `done` (time.time())."""
        self.requests += 1
        end = done + sleep
        meter.run_bits += 8 * nbytes
        meter.run_seconds += end - started
        if error:
            self.errors[error] += 1
        # The request occupies [started, done + sleep] and delivers its bits evenly over that span;
        # only the part inside the measurement interval counts (§4: warm-up and ramp-down are not
        # measured), so a long paced sleep straddling a boundary is split, not lost or doubled.
        ws, we = self.window
        if ws == math.inf:  # ramp-up: a long paced span may still reach into the coming window
            meter.ramp_span = (started, end, 8.0 * nbytes)
            return
        self._count(meter, started, end, 8.0 * nbytes)
        if not ws <= done < we:
            return
        meter.requests += 1
        self.ops[op] += 1
        self.latency_sum[op] += latency_ms
        self.latency.setdefault(op, Counter())[latency_bucket(latency_ms)] += 1

    def _count(self, meter: UserMeter, started: float, end: float, bits: float) -> None:
        """Count the part of span [started, end] delivering `bits` that lies inside the window."""
        ws, we = self.window
        overlap = min(end, we) - max(started, ws)
        if overlap > 0:
            meter.bits += bits * overlap / (end - started)
            meter.seconds += overlap

    def set_window(self, window: tuple[float, float]) -> None:
        """The ramp-up is over: measure in `window`, counting the spans recorded before that reach into it."""
        self.window = window
        for meter in self.users.values():
            if meter.ramp_span is not None:
                self._count(meter, *meter.ramp_span)
                meter.ramp_span = None

    def example(self, check: str, text: str) -> None:
        """Keep `text` as the latest example of the failed check `check`."""
        self.examples[check] = text

    def conforming_now(self, now: float, span: float = NOW_SPAN) -> tuple[int, int]:
        """(users, users conforming over their requests of about the last `span` s).

        Compares each user's whole-run totals with a snapshot taken >= `span` s ago (the first one
        until then); a user with no request finished since (a long paced sleep) keeps its whole-run
        rate, a user with none at all does not conform. Call it every few seconds.
        """
        snap = {k: (u.run_bits, u.run_seconds) for k, u in self.users.items()}
        self._history.append((now, snap))
        while len(self._history) > 2 and self._history[1][0] <= now - span:
            del self._history[0]
        old = self._history[0][1]
        conforming = 0
        for k, (bits, seconds) in snap.items():
            bits0, seconds0 = old.get(k, (0.0, 0.0))
            if seconds > seconds0:
                rate = (bits - bits0) / (seconds - seconds0)
            else:
                rate = bits / seconds if seconds else 0.0
            conforming += rate >= CONFORMING_BPS
        return len(snap), conforming

    def to_wire(self) -> dict[str, Any]:
        """A JSON/msgpack-friendly copy (for `runner.send_message`)."""
        return {
            "users": {k: [u.started, u.bits, u.seconds, u.requests] for k, u in self.users.items()},
            "ops": dict(self.ops), "latency_sum": dict(self.latency_sum),
            "latency": {op: {str(b): n for b, n in h.items()} for op, h in self.latency.items()},
            "requests": self.requests, "errors": dict(self.errors), "examples": dict(self.examples),
        }

    def merge(self, wire: dict[str, Any]) -> None:
        """Add another process's `to_wire()` data; a user key seen twice keeps the later copy."""
        for k, (started, bits, seconds, reqs) in wire["users"].items():
            self.users[k] = UserMeter(started, bits, seconds, reqs)
        self.ops.update(wire["ops"])
        self.latency_sum.update(wire["latency_sum"])
        for op, hist in wire["latency"].items():
            self.latency.setdefault(op, Counter()).update({int(b): n for b, n in hist.items()})
        self.requests += wire["requests"]
        self.errors.update(wire["errors"])
        self.examples.update(wire.get("examples", {}))


def percentile(hist: Counter, q: float) -> float:
    """The q-quantile (0..1) of a latency histogram {bucket ms: count}."""
    total = sum(hist.values())
    if not total:
        return 0.0
    rank = math.ceil(q * total)
    seen = 0
    for bucket in sorted(hist):
        seen += hist[bucket]
        if seen >= rank:
            return float(bucket)
    return float(max(hist))


def machine() -> dict[str, Any]:
    """The hardware the run used (§8): cores, CPU model and RAM of this host."""
    cpu = platform.processor() or "unknown"
    ram = 0
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
        with open("/proc/meminfo") as f:
            ram = next(int(ln.split()[1]) * 1024 for ln in f if ln.startswith("MemTotal"))
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu, "ram_bytes": ram}


def timing_mode(warmup: float, measure: float, rampdown: float) -> str:
    """"full" only for a §4-compliant timing, else the label the spec requires."""
    full = warmup >= FULL_TIMING[0] and measure >= FULL_TIMING[1] and rampdown >= FULL_TIMING[2]
    return "full" if full else "non-compliant timing"


def n_not_reached(requested: int, running: int | None) -> str | None:
    """The §4 reason a run whose measurement interval began without all N users, or None."""
    if running is not None and running < requested:
        return "N not reached: %d users at the start of the measurement interval" % running
    return None


def summarize(tally: Tally, run: dict[str, Any], post_log_problems: list[str] | None,
              now: float | None = None) -> dict[str, Any]:
    """The §8 report from a merged tally; `run` holds the run parameters (N, D, timings, ...).

    `post_log_problems` None means the post-log check could not run (counts as failed). With `now`
    the summary is live: the measurement interval counts up to `now`, the post-log check is
    pending and the verdict provisional (`final` False).
    """
    ws, we = tally.window
    started = ws != math.inf
    end = we if now is None else min(max(now, ws), we)
    measured = max(0.0, end - ws) if started else 0.0
    counted = [u for u in tally.users.values() if u.started < we]
    conforming = sum(1 for u in counted if u.rate() >= CONFORMING_BPS)
    pct = 100.0 * conforming / len(counted) if counted else 0.0
    error_count = sum(tally.errors.values())
    error_pct = 100.0 * error_count / tally.requests if tally.requests else 0.0
    final = now is None
    post_ok = final and post_log_problems is not None and not post_log_problems
    requested, running = run.get("N", 0), run.get("users_at_start")
    reasons = list(run.get("problems", []))
    if run.get("static_only"):
        reasons.append("dynamic operations switched off (static only): not a SPECweb99-like run")
    if short := n_not_reached(requested, running):
        reasons.append(short)
    if not started:
        reasons.append("the measurement interval has not started")
    elif not counted:
        reasons.append("no users ran in the measurement interval")
    elif pct < MIN_CONFORMING_PCT:
        reasons.append("only %.1f%% of users conforming (< %.0f%%)" % (pct, MIN_CONFORMING_PCT))
    if error_pct > MAX_ERROR_PCT:
        reasons.append("validation errors %.2f%% of requests (> %.0f%%)" % (error_pct, MAX_ERROR_PCT))
    if not final or run.get("static_only"):
        pass  # the post-log check runs after the ramp-down; a static-only run has no post log
    elif post_log_problems is None:
        reasons.append("post.log check did not run")
    else:
        reasons += post_log_problems
    ops = {op: tally.ops[op] for op in OPERATIONS}
    cpu = run.get("client_cpu_s")
    total_ops = sum(ops.values())
    return {
        "final": final,
        "N_requested": requested, "N_running": running,
        "users": len(counted), "conforming": conforming, "conforming_pct": round(pct, 2),
        "valid": not reasons, "reasons": reasons,
        "score": conforming if not reasons else 0,
        "requests": tally.requests, "error_count": error_count, "error_pct": round(error_pct, 4),
        "errors": dict(tally.errors.most_common()),
        "error_examples": {k: tally.examples[k] for k in tally.errors if k in tally.examples},
        "ops": ops,
        "ops_per_s": {op: round(n / measured, 2) if measured else 0.0 for op, n in ops.items()},
        "latency_ms": {op: {"mean": round(tally.latency_sum[op] / ops[op], 2) if ops[op] else 0.0,
                            "p99": percentile(tally.latency.get(op, Counter()), 0.99)} for op in OPERATIONS},
        "rates_bps": _rate_quantiles([u.rate() for u in counted]),
        "post_log_ok": post_ok,
        "client_cpu_us_per_op": round(cpu * 1e6 / total_ops, 1) if cpu is not None and total_ops else None,
        **{k: run[k] for k in ("N", "D", "fileset_bytes", "fits_in_ram", "warmup", "measure", "rampdown",
                               "timing", "run_seed", "seed", "host", "workers", "static_only", "phase",
                               "users_now", "conforming_now", "client_cpu_s") if k in run},
        "measured_s": round(measured, 3),
        "machine": machine(),
    }


def _rate_quantiles(rates: list[float]) -> dict[str, float]:
    if not rates:
        return {"min": 0.0, "median": 0.0, "max": 0.0}
    rates = sorted(rates)
    return {"min": round(rates[0]), "median": round(rates[len(rates) // 2]), "max": round(rates[-1])}


def verdict(s: dict[str, Any]) -> str:
    """The verdict line: VALID with the score, or INVALID with every reason; provisional while live."""
    if s["valid"]:
        text = "VALID: score %d conforming connections" % s["score"]
    else:
        text = "INVALID: " + "; ".join(s["reasons"])
    return text if s.get("final", True) else "so far " + text + " (post.log check after the ramp-down)"


def format_summary(s: dict[str, Any]) -> str:
    """The summary as text for people (printed at the end of a run)."""
    m = s.get("machine", {})
    cpu = s.get("client_cpu_us_per_op")
    lines = [
        "SPECweb99-like result (%s%s)" % (s.get("timing", "?"), "" if s.get("timing") == "full" else "; not SPECweb99"),
        "  N=%s D=%s file set %.2f GB (fits in RAM: %s)  host %s" % (
            s.get("N"), s.get("D"), s.get("fileset_bytes", 0) / 1e9, s.get("fits_in_ram"), s.get("host")),
        "  machine: %s cores, %s, %.1f GB RAM" % (m.get("nproc"), m.get("cpu"), m.get("ram_bytes", 0) / 2**30),
        "  N requested %s, running at the start of the measurement interval %s" % (
            s.get("N_requested"), s.get("N_running")),
        "  users %d, conforming %d (%.2f%%), user rate bit/s min %s median %s max %s" % (
            s["users"], s["conforming"], s["conforming_pct"], s["rates_bps"]["min"], s["rates_bps"]["median"],
            s["rates_bps"]["max"]),
        "  requests %d, validation errors %d (%.3f%%), post.log check %s" % (
            s["requests"], s["error_count"], s["error_pct"],
            "not run (static only)" if s.get("static_only") else "passed" if s["post_log_ok"] else "FAILED"),
        "  %-12s %10s %10s %10s" % ("operation", "ops/s", "mean ms", "p99 ms"),
    ]
    for op in OPERATIONS:
        lat = s["latency_ms"][op]
        lines.append("  %-12s %10.2f %10.2f %10.0f" % (op, s["ops_per_s"][op], lat["mean"], lat["p99"]))
    for name, n in s["errors"].items():
        lines.append("  error %-40s %d" % (name, n))
        if name in s.get("error_examples", {}):
            lines.append("    latest: %s" % s["error_examples"][name])
    if cpu is not None:
        lines.append("  load generator CPU %.1f us per operation in the measurement interval" % cpu)
    lines.append("  " + verdict(s))
    return "\n".join(lines)
