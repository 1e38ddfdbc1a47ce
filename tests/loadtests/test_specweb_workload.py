"""Distributions, connection model and pacing maths of the SPECweb99-like client (§3, §4)."""

from collections import Counter

import pytest

from loadtests.specweb_workload import (
    CAD, CGI, DYNAMIC, FILE_ORDER, KEEPALIVE_Q, OP_SHARES, OPERATIONS, POST, STATIC, ConnectionPlan,
    Target, Workload, cumulative, draw, pacing_sleep, post_body, reset_query, user_id, user_rng, zipf_table)

DRAWS = 100_000


def test_cumulative_ends_at_one_and_draw_edges():
    table = cumulative([1, 1, 2])
    assert table == [0.25, 0.5, 1.0]
    assert [draw(table, u) for u in (0.0, 0.2499, 0.25, 0.7, 0.999999)] == [0, 0, 1, 2, 2]


def test_zipf_table_h9():
    table = zipf_table(9)
    assert table[0] == pytest.approx(1 / 2.8289683, rel=1e-6)


@pytest.mark.parametrize("op,share", list(zip(OPERATIONS, OP_SHARES)))
def test_operation_mix(op, share):
    w, rng = Workload(3), user_rng(1, 0, 0)
    counts = Counter(w.operation(rng) for _ in range(DRAWS))
    assert counts[op] / DRAWS == pytest.approx(share, abs=0.005)


def test_operation_names():
    assert OPERATIONS == (STATIC, DYNAMIC, CAD, POST, CGI)


@pytest.mark.parametrize("what,key,expected", [
    ("class", 0, 0.35), ("class", 1, 0.50), ("class", 2, 0.14), ("class", 3, 0.01),
    ("num", 4, 0.3535), ("num", 0, 0.0393), ("num", 3, 0.1767),
    ("dir", 0, 1 / (1 + 1 / 2 + 1 / 3 + 1 / 4)), ("dir", 3, 0.25 / (1 + 1 / 2 + 1 / 3 + 1 / 4)),
])
def test_target_distribution(what, key, expected):
    w, rng = Workload(4), user_rng(2, 0, 0)
    targets = [w.target(rng) for _ in range(DRAWS)]
    counts = Counter({"class": t.cls, "num": t.num, "dir": t.d}[what] for t in targets)
    assert counts[key] / DRAWS == pytest.approx(expected, abs=0.007)


def test_target_stays_in_the_file_set():
    w, rng = Workload(2), user_rng(3, 0, 0)
    for _ in range(10_000):
        t = w.target(rng)
        assert 0 <= t.d < 2 and 0 <= t.cls <= 3 and t.num in FILE_ORDER
    assert Target(12, 1, 3).path == "dir00012/class1_3"


def test_rng_streams_independent_and_reproducible():
    a = [user_rng(7, 0, 0).random() for _ in range(2)]
    assert a[0] == a[1]
    firsts = {user_rng(7, w, u).random() for w in range(3) for u in range(50)}
    assert len(firsts) == 150
    assert user_rng(7, 0, 1).random() != user_rng(8, 0, 1).random()


def test_connection_model_keepalive_share():
    plan = ConnectionPlan(user_rng(4, 0, 0))
    lengths = []
    closes = 0
    requests = 100_000
    current = 0
    for _ in range(requests):
        current += 1
        if plan.next_request():
            closes += 1
            lengths.append(current)
            current = 0
    assert closes == plan.opened or closes == plan.opened - 1
    assert set(lengths) <= {1} | set(range(5, 16))
    keepalive_requests = sum(n for n in lengths if n > 1)
    assert keepalive_requests / sum(lengths) == pytest.approx(0.70, abs=0.02)
    assert sum(1 for n in lengths if n > 1) / len(lengths) == pytest.approx(KEEPALIVE_Q, abs=0.01)


def test_connection_close_on_last_request_and_abandon():
    plan = ConnectionPlan(user_rng(5, 0, 0))
    for _ in range(50):
        plan.abandon()
        k = 0
        while True:
            k += 1
            if plan.next_request():
                break
        assert k == 1 or 5 <= k <= 15


@pytest.mark.parametrize("nbytes,elapsed,expected", [
    (50_000, 0.0, 1.0),  # 400 kbit at 400 kbit/s: one second
    (50_000, 0.25, 0.75),
    (50_000, 2.0, 0.0),  # slower than the line: no sleep
    (0, 0.0, 0.0),
    (102, 0.001, 102 * 8 / 400_000 - 0.001),
])
def test_pacing(nbytes, elapsed, expected):
    assert pacing_sleep(nbytes, elapsed) == pytest.approx(expected)


def test_request_texts():
    assert user_id(0, 20) == 10000 and user_id(25, 20) == 10005
    assert post_body(Target(3, 1, 4), 17) == b"urlroot=/file_set/&dir=00003&class=1&num=4&client=17"
    assert reset_query(20, 40, 5, 300, 1700000000) == (
        "command/Reset&maxload=20&pttime=40&maxthread=20&exp=5,300&urlroot=/file_set/&now=1700000000")


@pytest.mark.parametrize("args,expected", [
    ((10, 10, 30, 30), [(30.0, 10), (60.0, 20), (90.0, 30)]),
    ((5, 10, 10, 20), [(10.0, 5), (20.0, 15), (30.0, 20)]),
    ((7, 1, 1, 7), [(1.0, 7)]),
])
def test_step_table(args, expected):
    from loadtests.specweb_workload import step_table

    assert step_table(*args) == expected
