"""One handler process, driven over its control socket with real TCP sockets handed over by fd."""

from __future__ import annotations

import os

import pytest

from tests.support.docroots import make_docroot
from tests.isolate.handlerproc import HandlerProcess, read_answer


@pytest.fixture(scope="module")
def handler(tmp_path_factory):
    root = make_docroot(tmp_path_factory.mktemp("hp"))
    proc = HandlerProcess("wsgi", root=str(root), wsgi="tests.isolate.apps:escape")
    assert proc.ready().request_id == 0
    yield proc
    proc.stop()


def get(handler, target: bytes, keep: bool = True) -> tuple[bytes, object]:
    client, server = handler.connect()
    with client, server:
        request_id = handler.hand_over(server, "GET", target, keep=keep)
        answer = read_answer(client)
        report = handler.report()
    assert report.request_id == request_id
    return answer, report


def body(answer: bytes) -> bytes:
    return answer.partition(b"\r\n\r\n")[2]


def test_answer_goes_straight_to_the_client_and_the_report_matches(handler) -> None:
    answer, report = get(handler, b"/whoami")
    head = answer.partition(b"\r\n\r\n")[0]
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"\r\nDate: " in head
    assert b"Connection: close" not in head
    assert body(answer).split()[:2] == [b"65534", b"65534"]  # the isolate user, really
    assert (report.status, report.sent, report.keep) == (200, len(body(answer)), True)


def test_keep_alive_not_allowed_says_close(handler) -> None:
    answer, report = get(handler, b"/whoami", keep=False)
    assert b"\r\nConnection: close\r\n" in answer and report.keep is False


@pytest.mark.parametrize("target", [b"/open?/etc/shadow", b"/open?/etc/hostname", b"/exec", b"/fork", b"/tcp?9"])
def test_the_app_is_confined(handler, target: bytes) -> None:
    answer, report = get(handler, target)
    assert report.status == 200
    assert body(answer).startswith(b"denied "), body(answer)


def test_the_app_cannot_signal_its_parent(handler) -> None:
    answer, _ = get(handler, b"/kill?%d" % os.getpid())
    assert body(answer).startswith(b"denied ")


def test_several_connections_at_once(handler) -> None:
    """A slow request does not hold up the others (gevent inside the handler)."""
    slow_client, slow_server = handler.connect()
    with slow_client, slow_server:
        slow_id = handler.hand_over(slow_server, "GET", b"/sleep?1")
        answer, report = get(handler, b"/whoami")
        assert report.status == 200
        late = handler.report()
        assert late.request_id == slow_id and body(read_answer(slow_client)) == b"slept"
