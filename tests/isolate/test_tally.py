"""The tally of further requests (observability.metrics.Tally): added to a worker's metrics it
counts exactly what observing each request there would have, and it crosses the control
socket in the report (protocol) intact, while a report whose numbers do not add up is refused."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


def _report_with(tally: Tally, further: int = 0) -> bytes:
    records = [protocol.Further(b"GET / HTTP/1.1\r\n\r\n", 200, 1, 0.0, 0.0) for _ in range(further)]
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
            1, 200, 0, True, True, further=[protocol.Further(b"GET / HTTP/1.1\r\n\r\n", 200, 1, 0.0, 0.0)], held=True))
    else:
        data = _report_with(tally)[:-3]
    with pytest.raises(ValueError):
        protocol.decode_report(data)
