"""A handler keeping a busy connection reports the requests it answers as it goes (progress
reports, protocol.HELD), without giving the connection back: driven directly over its control
socket, a real TCP client on the other side."""

from __future__ import annotations

import pytest

from tests.isolate.handlerproc import HandlerProcess, read_answer
from tests.support.docroots import make_docroot
from x15g.isolate import protocol

REQUESTS = 600  # several batches of protocol.BATCH_REQUESTS (records of ~70 bytes: of BATCH_BYTES)


@pytest.fixture(params=["tally", "records"])
def handler(request, tmp_path):
    """A handler keeping its connections; "records": with an access log (its records travel too)."""
    root = make_docroot(tmp_path)
    logged = {"access_log": str(tmp_path / "access.log")} if request.param == "records" else {}
    proc = HandlerProcess("wsgi", routes={"routes": [], "default": protocol.MINE}, root=str(root),
                          wsgi="tests.isolate.apps:escape", isolate_hold=30.0, keepalive_timeout=60.0, **logged)
    assert proc.ready().request_id == 0
    proc.logged = bool(logged)
    yield proc
    proc.stop()


def get(n: int) -> bytes:
    return b"GET /whoami?n%d HTTP/1.1\r\nHost: t\r\n\r\n" % n


def test_further_requests_are_reported_while_the_connection_stays_held(handler) -> None:
    client, server = handler.connect()
    with client, server:
        request_id = handler.hand_over(server, "GET", b"/whoami?first")
        assert read_answer(client).startswith(b"HTTP/1.1 200 ")
        for n in range(REQUESTS):
            client.sendall(get(n))
            assert read_answer(client).startswith(b"HTTP/1.1 200 ")
        # Every request is reported while the client is still connected and quiet: by batch,
        # and the last ones within protocol.BATCH_SECONDS of their answer.
        reports = []
        while sum(r.tally.requests for r in reports) < REQUESTS:
            reports.append(handler.report())
            assert reports[-1].tally is not None
        assert len(reports) >= 3
        assert all(r.held and r.keep and r.request_id == request_id for r in reports)
        assert all((r.status, r.app_request_id) == (200, reports[0].app_request_id) for r in reports)
        assert all(set(r.tally.codes) == {("GET", 200)} for r in reports)
        assert sum(r.tally.bytes_sent for r in reports) > 0
        assert sum(sum(r.tally.buckets) for r in reports) == REQUESTS
        targets = [f.request.target for r in reports for f in r.further]
        assert targets == ([b"/whoami?n%d" % n for n in range(REQUESTS)] if handler.logged else [])
        assert all(f.status == 200 and f.started <= f.ended for r in reports for f in r.further)
        # still held: a request now is answered by the handler, and reported when the client leaves
        client.sendall(get(REQUESTS))
        assert read_answer(client).startswith(b"HTTP/1.1 200 ")
    final = handler.report()
    assert final.request_id == request_id and not final.held and not final.keep
    assert final.tally is not None and final.tally.requests == 1
    assert [f.request.target for f in final.further] == ([b"/whoami?n%d" % REQUESTS] if handler.logged else [])


def test_a_progress_report_with_leftover_bytes_is_refused() -> None:
    report = protocol.Report(7, 200, 5, True, True, leftover=b"GET", held=True)
    with pytest.raises(ValueError):
        protocol.decode_report(protocol.encode_report(report))
    report.leftover = b""
    assert protocol.decode_report(protocol.encode_report(report)).held
