"""A handler keeping a busy connection reports the requests it answers as it goes (progress
reports, protocol.HELD), without giving the connection back: driven directly over its control
socket, a real TCP client on the other side."""

from __future__ import annotations

import pytest

from tests.isolate.handlerproc import HandlerProcess, read_answer
from tests.support.docroots import make_docroot
from x15g.isolate import protocol

REQUESTS = 400  # records of ~70 bytes: several batches of protocol.BATCH_BYTES


@pytest.fixture
def handler(tmp_path):
    root = make_docroot(tmp_path)
    proc = HandlerProcess("wsgi", routes={"routes": [], "default": protocol.MINE}, root=str(root),
                          wsgi="tests.isolate.apps:escape", isolate_hold=30.0, keepalive_timeout=60.0)
    assert proc.ready().request_id == 0
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
        # Every record arrives while the client is still connected and quiet: by batch size,
        # and the last ones within protocol.BATCH_SECONDS of their answer.
        reports = []
        while sum(len(r.further) for r in reports) < REQUESTS:
            reports.append(handler.report())
        assert len(reports) >= 3
        assert all(r.held and r.keep and r.request_id == request_id for r in reports)
        assert all((r.status, r.app_request_id) == (200, reports[0].app_request_id) for r in reports)
        heads = [f.head for r in reports for f in r.further]
        assert heads == [get(n) for n in range(REQUESTS)]
        assert all(f.status == 200 and f.started <= f.ended for r in reports for f in r.further)
        # still held: a request now is answered by the handler, and reported when the client leaves
        client.sendall(get(REQUESTS))
        assert read_answer(client).startswith(b"HTTP/1.1 200 ")
    final = handler.report()
    assert final.request_id == request_id and not final.held and not final.keep
    assert [f.head for f in final.further] == [get(REQUESTS)]


def test_a_progress_report_with_leftover_bytes_is_refused() -> None:
    report = protocol.Report(7, 200, 5, True, True, leftover=b"GET", held=True)
    with pytest.raises(ValueError):
        protocol.decode_report(protocol.encode_report(report))
    report.leftover = b""
    assert protocol.decode_report(protocol.encode_report(report)).held
