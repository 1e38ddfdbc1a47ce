"""The tally of further requests (observability.metrics.Tally): added to a worker's metrics it
counts exactly what observing each request there would have, and it crosses the control
socket in the report (protocol) intact, while a report whose numbers do not add up is refused."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from x15g.http.messages import Answered, Request
from x15g.isolate import protocol
from x15g.observability.counters import Counters
from x15g.observability.metrics import RequestMetrics, Tally

observations = st.lists(st.tuples(st.sampled_from(["GET", "HEAD", "POST", "BREW", "get"]),
                                  st.integers(0, 999), st.floats(0, 20, allow_nan=False), st.integers(0, 1 << 40)),
                        max_size=60)


def _observed(seen: list[tuple[str, int, float, int]], through_tally: bool) -> tuple[dict, int, int]:
    counters = Counters()
    metrics = RequestMetrics(counters)
    if through_tally:
        tally = Tally()
        for observation in seen:
            tally.observe(*observation)
        metrics.add(protocol.decode_report(protocol.encode_report(
            protocol.Report(1, 200, 0, True, True, held=True, tally=tally))).tally)
    else:
        for observation in seen:
            metrics.observe(*observation)
    return metrics.snapshot(), counters.requests, counters.bytes_sent


@settings(max_examples=200, deadline=None)
@given(observations)
def test_a_tally_added_counts_as_observing_each_request(seen) -> None:
    assert _observed(seen, True) == _observed(seen, False)


def record(method: str = "GET", target: bytes = b"/", **changes) -> Answered:
    request = Request(method, target, target.partition(b"?")[0], target.partition(b"?")[2], 11,
                      {b"user-agent": b"t/1"}, True)
    for name, value in changes.items():
        setattr(request, name, value)
    return Answered(request, 200, 1, 0.0, 0.0, "")


def _report_with(tally: Tally, further: int = 0) -> bytes:
    records = [record() for _ in range(further)]
    return protocol.encode_report(protocol.Report(1, 200, 0, True, True, further=records, held=True, tally=tally))


def test_records_travel_with_their_tally() -> None:
    tally = Tally()
    for _ in range(3):
        tally.observe("GET", 200, 0.001, 10)
    report = protocol.decode_report(_report_with(tally, 3))
    assert report.tally.requests == 3 and len(report.further) == 3
    assert report.tally.codes == {("GET", 200): 3} and report.tally.bytes_sent == 30


@pytest.mark.parametrize("lie", ["more buckets", "records not the tally's", "records without a tally", "cut short"])
def test_a_report_that_does_not_add_up_is_refused(lie: str) -> None:
    tally = Tally()
    tally.observe("GET", 200, 0.001, 10)
    if lie == "more buckets":
        tally.buckets[3] += 1
        data = _report_with(tally)
    elif lie == "records not the tally's":
        data = _report_with(tally, 2)
    elif lie == "records without a tally":
        data = protocol.encode_report(protocol.Report(
            1, 200, 0, True, True, further=[record()], held=True))
    else:
        data = _report_with(tally)[:-3]
    with pytest.raises(ValueError):
        protocol.decode_report(data)


def test_a_record_carries_what_the_access_log_shows() -> None:
    forwarded = record("PATCH", b"/a%20b?x=1&y", peer="203.0.113.7", forwarded=True,
                       headers={b"referer": b"http://r/", b"user-agent": b"\x00\xffodd \"agent\""})
    forwarded.request.version = 10
    plain = record()
    plain.request.headers = {}
    plain.request_id = "rid-1"
    tally = Tally()
    for _ in range(2):
        tally.observe("GET", 200, 0.0, 1)
    got = protocol.decode_report(protocol.encode_report(protocol.Report(
        1, 200, 0, True, True, further=[forwarded, plain], held=True, tally=tally))).further
    first, second = (a.request for a in got)
    assert (first.method, first.target, first.path, first.query, first.version) == (
        "PATCH", b"/a%20b?x=1&y", b"/a%20b", b"x=1&y", 10)
    assert first.headers == {b"referer": b"http://r/", b"user-agent": b"\x00\xffodd \"agent\""}
    assert (first.peer, first.forwarded) == ("203.0.113.7", True)
    assert second.headers == {} and not second.forwarded and got[1].request_id == "rid-1"


@pytest.mark.parametrize("change", [{"method": "GE T"}, {"method": ""}, {"version": 20}])
def test_a_record_the_log_could_not_show_is_refused(change) -> None:
    with pytest.raises(ValueError):
        protocol.decode_report(_report_with_records(_tally(1), [record(**change)]))


def test_what_a_client_or_a_proxy_may_send_is_carried_not_refused() -> None:
    """A space in an X-Request-ID from a proxy, anything in an IPv6 scope id: the handler sends
    "?" for it (a report the worker refuses kills the handler and every connection it holds)."""
    odd = record(peer="[fe80::1%eth 0\xe9]:0", forwarded=True)
    odd.request_id = "id with\tspace"
    got = protocol.decode_report(_report_with_records(_tally(1), [odd])).further[0]
    assert got.request.peer == "[fe80::1%eth?0?]:0" and got.request_id == "id?with?space"


@pytest.mark.parametrize("forged", [b"\n", b" ", b"\x7f"])
def test_a_forged_client_or_request_id_is_refused(forged: bytes) -> None:
    for field in ("peer", "request_id"):
        marked = record(peer="10.0.0.1", forwarded=True)
        if field == "peer":
            marked.request.peer = "10.0.0.1:Z"
        else:
            marked.request_id = "rid-Z"
        data = _report_with_records(_tally(1), [marked])
        assert data.count(b"Z") == 1
        with pytest.raises(ValueError):
            protocol.decode_report(data.replace(b"Z", forged))


@pytest.mark.parametrize("times", [(float("nan"), 1.0), (2.0, 1.0), (1.0, float("inf")), (-1.0, 0.0), (1.0, 1e15)])
def test_a_record_that_did_not_take_place_in_time_is_refused(times) -> None:
    answered = record()
    answered.started, answered.ended = times
    with pytest.raises(ValueError):
        protocol.decode_report(_report_with_records(_tally(1), [answered]))


def test_a_tally_larger_than_a_batch_is_refused() -> None:
    data = _report_with(_tally(protocol.BATCH_REQUESTS))
    assert protocol.decode_report(data).tally.requests == protocol.BATCH_REQUESTS
    with pytest.raises(ValueError):
        protocol.decode_report(_report_with(_tally(protocol.BATCH_REQUESTS + 1)))
    many = Tally()
    for status in range(100, 100 + protocol.BATCH_CODES + 1):
        many.observe("GET", status, 0.0, 0)
    with pytest.raises(ValueError):
        protocol.decode_report(_report_with(many))


def _tally(requests: int) -> Tally:
    tally = Tally()
    for _ in range(requests):
        tally.observe("GET", 200, 0.0, 1)
    return tally


def _report_with_records(tally: Tally, records: list[Answered]) -> bytes:
    return protocol.encode_report(protocol.Report(1, 200, 0, True, True, further=records, held=True, tally=tally))
