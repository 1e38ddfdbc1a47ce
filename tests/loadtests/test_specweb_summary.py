"""Conformance accounting, merging across workers and the summary verdict (§4, §8)."""

import json

import pytest

from loadtests.specweb_summary import Tally, format_summary, latency_bucket, percentile, summarize, timing_mode
from loadtests.specweb_workload import CAD, STATIC
from collections import Counter

WINDOW = (100.0, 200.0)


def run_user(tally, key, rate_bps, start=0.0, errors=0, n=100):
    """A user whose requests in the window deliver `rate_bps` on average."""
    meter = tally.add_user(key, start)
    for i in range(n):
        t = WINDOW[0] + i
        nbytes = int(rate_bps / 8)  # one second per request (busy + sleep)
        tally.record(meter, STATIC, t, t + 0.01, nbytes, 0.99, 10.0, "static body mismatch" if i < errors else None)
    return meter


def test_window_excludes_warmup_and_rampdown():
    tally = Tally(window=WINDOW)
    meter = tally.add_user("0:0", 0.0)
    tally.record(meter, STATIC, 50.0, 50.5, 1000, 0.0, 5.0, None)  # warm-up
    tally.record(meter, STATIC, 150.0, 150.5, 1000, 0.5, 5.0, "x")
    tally.record(meter, STATIC, 199.9, 200.1, 1000, 0.0, 5.0, None)  # ends in ramp-down
    assert tally.requests == 3 and tally.errors == Counter({"x": 1})
    # all of the second request, half of the third (its span straddles the window end)
    assert meter.bits == pytest.approx(8000 + 4000) and meter.seconds == pytest.approx(1.1)
    assert meter.requests == 1 and tally.ops[STATIC] == 1


def test_long_paced_request_straddling_the_window_start_counts_pro_rata():
    tally = Tally(window=WINDOW)
    meter = tally.add_user("0:0", 0.0)
    tally.record(meter, STATIC, 90.0, 90.5, 1_000_000, 19.5, 5.0, None)  # 8 Mbit over [90, 110]
    assert meter.bits == pytest.approx(4e6) and meter.seconds == pytest.approx(10.0)
    assert meter.rate() == pytest.approx(400_000)


@pytest.mark.parametrize("rates,conforming,valid", [
    ([400_000] * 20, 20, True),
    ([400_000] * 19 + [319_000], 19, True),  # 95% exactly
    ([400_000] * 18 + [319_000] * 2, 18, False),
    ([320_000] * 10, 10, True),  # the boundary conforms
])
def test_conformance(rates, conforming, valid):
    tally = Tally(window=WINDOW)
    for i, r in enumerate(rates):
        run_user(tally, "0:%d" % i, r)
    s = summarize(tally, {"N": len(rates), "D": 3}, [])
    assert s["users"] == len(rates) and s["conforming"] == conforming
    assert s["valid"] is valid and s["post_log_ok"] is True
    assert s["score"] == (conforming if valid else 0)


def test_error_rate_and_post_log_make_a_run_invalid():
    tally = Tally(window=WINDOW)
    run_user(tally, "0:0", 400_000, errors=1)  # 1% of 100: allowed
    assert summarize(tally, {}, [])["valid"] is True
    run_user(tally, "0:1", 400_000, errors=2)  # 3 of 200 = 1.5%
    s = summarize(tally, {}, [])
    assert not s["valid"] and "validation errors" in s["reasons"][0]
    assert s["errors"] == {"static body mismatch": 3} and s["error_count"] == 3
    tally2 = Tally(window=WINDOW)
    run_user(tally2, "0:0", 400_000)
    assert summarize(tally2, {}, ["post.log lacks 1 acknowledged POSTs"])["valid"] is False
    assert summarize(tally2, {}, None)["post_log_ok"] is False
    assert summarize(tally2, {"problems": ["Reset failed"]}, [])["reasons"] == ["Reset failed"]


def test_user_started_after_window_is_not_counted_and_idle_user_does_not_conform():
    tally = Tally(window=WINDOW)
    run_user(tally, "0:0", 400_000)
    tally.add_user("0:1", 150.0)  # started but never finished a request
    tally.add_user("0:2", 250.0)  # spawned after the measurement
    s = summarize(tally, {}, [])
    assert s["users"] == 2 and s["conforming"] == 1


def test_merge_counts_each_user_once_and_adds_counters():
    a, b = Tally(window=WINDOW), Tally(window=WINDOW)
    run_user(a, "0:0", 400_000)
    run_user(b, "1:0", 400_000, errors=1)
    run_user(b, "1:1", 100_000)
    merged = Tally(window=WINDOW)
    for t in (a, b):
        merged.merge(json.loads(json.dumps(t.to_wire())))  # what crosses the wire
    resent = {"users": b.to_wire()["users"], "ops": {}, "latency_sum": {}, "latency": {}, "requests": 0, "errors": {}}
    merged.merge(resent)  # the same users reported again are still counted once
    s = summarize(merged, {"N": 3}, [])
    assert s["users"] == 3 and s["conforming"] == 2 and s["requests"] == 300
    assert s["ops"][STATIC] == 300 and s["errors"] == {"static body mismatch": 1}
    assert s["ops_per_s"][STATIC] == 3.0 and s["ops_per_s"][CAD] == 0.0
    assert s["latency_ms"][STATIC] == {"mean": 10.0, "p99": 10.0}


@pytest.mark.parametrize("ms,bucket", [(0.4, 0), (57.6, 58), (123, 120), (1234, 1200)])
def test_latency_bucket(ms, bucket):
    assert latency_bucket(ms) == bucket


def test_percentile():
    hist = Counter({10: 98, 500: 1, 900: 1})
    assert percentile(hist, 0.99) == 500 and percentile(hist, 0.5) == 10 and percentile(Counter(), 0.99) == 0


def test_timing_mode_and_format():
    assert timing_mode(1200, 1200, 300) == "full"
    assert timing_mode(30, 120, 10) == "non-compliant timing"
    tally = Tally(window=WINDOW)
    run_user(tally, "0:0", 400_000, errors=2)
    text = format_summary(summarize(tally, {"N": 1, "D": 3, "fileset_bytes": 15358452, "timing": "non-compliant timing"}, []))
    assert "INVALID" in text and "static body mismatch" in text and "non-compliant timing" in text


def test_n_not_reached_invalidates_and_states_both_counts():
    tally = Tally(window=WINDOW)
    for i in range(8):
        run_user(tally, "0:%d" % i, 400_000)
    s = summarize(tally, {"N": 10, "users_at_start": 8}, [])
    assert not s["valid"] and s["N_requested"] == 10 and s["N_running"] == 8
    assert s["reasons"] == ["N not reached: 8 users at the start of the measurement interval"]
    assert summarize(tally, {"N": 8, "users_at_start": 8}, [])["valid"]


def test_live_summary_is_provisional_and_counts_the_interval_so_far():
    tally = Tally(window=WINDOW)
    run_user(tally, "0:0", 400_000, n=50)  # requests at 100..149
    s = summarize(tally, {"N": 1, "users_at_start": 1}, None, now=150.0)
    assert s["final"] is False and s["valid"] and s["post_log_ok"] is False
    assert s["ops_per_s"][STATIC] == 1.0 and s["measured_s"] == 50.0
    assert format_summary(s).endswith("so far VALID: score 1 conforming connections (post.log check after the ramp-down)")
    waiting = summarize(Tally(), {"N": 1}, None, now=150.0)
    assert not waiting["valid"] and waiting["reasons"] == ["the measurement interval has not started"]


def test_conforming_now_follows_the_recent_rate():
    tally = Tally(window=WINDOW)
    fast, slow = tally.add_user("0:0", 0.0), tally.add_user("0:1", 0.0)
    tally.add_user("0:2", 0.0)  # no request yet
    for t in range(0, 20):
        tally.record(fast, STATIC, t, t + 0.01, 50_000, 0.99, 1.0, None)  # 400 kbit/s
        # 400 kbit/s for 10 s, then 100 kbit/s
        tally.record(slow, STATIC, t, t + 0.01, 50_000 if t < 10 else 12_500, 0.99, 1.0, None)
        if t in (9, 19):
            users, conforming = tally.conforming_now(t + 1.0)
    assert (users, conforming) == (3, 1)
    tally.example("static status", "GET /x -> 500")
    merged = Tally()
    merged.merge(tally.to_wire())
    assert merged.examples == {"static status": "GET /x -> 500"}


def test_static_only_is_never_valid():
    tally = Tally(window=WINDOW)
    run_user(tally, "0:0", 400_000)
    s = summarize(tally, {"N": 1, "users_at_start": 1, "static_only": True}, [])
    assert not s["valid"] and s["reasons"] == ["dynamic operations switched off (static only): not a SPECweb99-like run"]


def test_span_recorded_in_the_ramp_up_counts_once_the_window_is_known():
    tally = Tally()  # ramp-up: the window is not known yet
    meter = tally.add_user("0:0", 0.0)
    tally.record(meter, STATIC, 90.0, 90.5, 1_000_000, 19.5, 5.0, None)  # 8 Mbit over [90, 110]
    assert meter.seconds == 0
    tally.set_window(WINDOW)
    assert meter.bits == pytest.approx(4e6) and meter.seconds == pytest.approx(10.0)
    tally.set_window(WINDOW)  # counted once
    assert meter.seconds == pytest.approx(10.0)
