"""ReadyAnswers (pure): what is stored, when a stored answer stops being used, the bound."""

from __future__ import annotations

from x15g.http.messages import FileRange, Request, Response
from x15g.server.answers import MAX_HEAD, ReadyAnswers
from x15g.http.wire import INLINE_BODY

HEAD = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
TAIL = b"\r\n"
DATE1 = b"Date: one\r\n"
DATE2 = b"Date: two\r\n"


class Owner:
    """Stands for a file cache entry: fresh until `fresh_until`, dropped when `retired`."""

    def __init__(self, fresh_until: float) -> None:
        self.fresh_until = fresh_until
        self.resident_until = fresh_until
        self.retired = False


def response(owner: Owner | None, body: object = b"body", **kw: object) -> Response:
    return Response(200, b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n", body, 4, fresh=owner, **kw)


def request(method: str = "GET", keep_alive: bool = True) -> Request:
    return Request(method, b"/a", b"/a", b"", 11, {}, keep_alive)


def remember(answers: ReadyAnswers, head: bytes, *args: object, **kw: object) -> object:
    """A head is stored on its second answer: answer it twice."""
    answers.remember(head, *args, **kw)
    return answers.remember(head, *args, **kw)


def test_a_head_is_stored_on_its_second_answer_and_one_offs_evict_nothing() -> None:
    answers = ReadyAnswers(max_entries=4)
    assert answers.remember(HEAD, request("GET"), response(Owner(10.0)), TAIL, True, now=1.0) is None
    assert answers.lookup(HEAD, now=1.0) is None
    assert answers.remember(HEAD, request("GET"), response(Owner(10.0)), TAIL, True, now=1.0) is not None
    for i in range(100):  # heads that never repeat (a counter in the query)
        answers.remember(b"GET /a?%d HTTP/1.1\r\n\r\n" % i, request("GET"), response(Owner(10.0)), TAIL, True, now=1.0)
    assert len(answers) == 1 and answers.lookup(HEAD, now=1.0) is not None


def test_an_answer_that_went_stale_is_stored_again_by_the_next_full_path_answer() -> None:
    answers = ReadyAnswers()
    remember(answers, HEAD, request("GET"), response(Owner(5.0)), TAIL, True, now=1.0)
    assert answers.lookup(HEAD, now=6.0) is None  # the window ended
    assert answers.remember(HEAD, request("GET"), response(Owner(11.0)), TAIL, True, now=6.0) is not None
    assert answers.lookup(HEAD, now=7.0) is not None


def test_stored_answer_is_head_date_tail_body_and_follows_the_date() -> None:
    answers = ReadyAnswers()
    remember(answers, HEAD, request("GET"), response(Owner(10.0)), TAIL, True, now=1.0)
    answer = answers.lookup(HEAD, now=2.0)
    assert answer is not None and answer.sent == 4
    assert answer.wire_for(DATE1)[0] == b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nDate: one\r\n\r\nbody"
    assert answer.wire_for(DATE2)[0].endswith(b"Date: two\r\n\r\nbody")


def test_head_method_sends_no_body() -> None:
    answers = ReadyAnswers()
    head = HEAD.replace(b"GET", b"HEAD")
    remember(answers, head, request("HEAD"), response(Owner(10.0), send_body=False), TAIL, True, now=1.0)
    answer = answers.lookup(head, now=1.0)
    assert answer is not None and answer.sent == 0
    assert answer.wire_for(DATE1)[0].endswith(b"Date: one\r\n\r\n")


def test_only_fresh_marked_whole_answers_with_short_heads_are_stored() -> None:
    answers = ReadyAnswers()
    remember(answers, HEAD, request("GET"), response(None), TAIL, True, now=1.0)  # not marked reusable
    remember(answers, HEAD, request("GET"), response(Owner(1.0)), TAIL, True, now=1.0)  # window already over
    remember(answers, HEAD, request("GET"), response(Owner(10.0), body=[b"--b", FileRange(3, 0, 4)]), TAIL, True, now=1.0)
    remember(answers, HEAD, request("GET"), response(Owner(10.0), close=True), TAIL, True, now=1.0)
    long_head = b"GET /a HTTP/1.1\r\nX: " + b"a" * MAX_HEAD + b"\r\n\r\n"
    remember(answers, long_head, request("GET"), response(Owner(10.0)), TAIL, True, now=1.0)
    retired = Owner(10.0)
    retired.retired = True
    remember(answers, HEAD, request("GET"), response(retired), TAIL, True, now=1.0)
    assert len(answers) == 0


def test_an_answer_ends_with_its_entry_window_or_retirement() -> None:
    answers = ReadyAnswers()
    owner = Owner(5.0)
    remember(answers, HEAD, request("GET"), response(owner), TAIL, True, now=1.0)
    assert answers.lookup(HEAD, now=4.9) is not None
    assert answers.lookup(HEAD, now=5.0) is None
    assert len(answers) == 0  # dropped: the next slow-path answer stores a new one
    remember(answers, HEAD, request("GET"), response(owner := Owner(9.0)), TAIL, True, now=6.0)
    owner.retired = True
    assert answers.lookup(HEAD, now=6.0) is None


def test_lookup_wants_the_exact_bytes() -> None:
    answers = ReadyAnswers()
    remember(answers, HEAD, request("GET"), response(Owner(10.0)), TAIL, True, now=1.0)
    assert answers.lookup(HEAD + HEAD, now=1.0) is None  # two pipelined requests
    assert answers.lookup(HEAD[:-2], now=1.0) is None  # an incomplete head
    assert answers.lookup(HEAD.lower(), now=1.0) is None


def test_bounded_oldest_dropped_first() -> None:
    answers = ReadyAnswers(max_entries=3)
    heads = [b"GET /%d HTTP/1.1\r\n\r\n" % i for i in range(5)]
    for head in heads:
        remember(answers, head, request("GET"), response(Owner(10.0)), TAIL, True, now=1.0)
    assert len(answers) == 3
    assert [answers.lookup(h, now=1.0) is not None for h in heads] == [False, False, True, True, True]


def test_a_closing_answer_is_stored_with_its_tail() -> None:
    answers = ReadyAnswers()
    head = b"GET /a HTTP/1.1\r\nConnection: close\r\n\r\n"
    remember(answers, head, request("GET", keep_alive=False), response(Owner(10.0)), b"Connection: close\r\n\r\n",
             False, now=1.0)
    answer = answers.lookup(head, now=1.0)
    assert answer is not None and not answer.keep
    assert answer.wire_for(DATE1)[0].endswith(b"Date: one\r\nConnection: close\r\n\r\nbody")


def test_the_store_keeps_only_answers_that_follow_from_the_head() -> None:
    close = b"Connection: close\r\n\r\n"
    answers = ReadyAnswers()
    # A keep-alive request answered with close (a drain, the request limit): not from the head alone.
    remember(answers, HEAD, request("GET"), response(Owner(10.0)), close, False, now=1.0)
    with_body = request("POST")
    with_body.content_length = 3
    remember(answers, HEAD + b"abc", with_body, response(Owner(10.0)), TAIL, True, now=1.0)
    assert len(answers) == 0
    # Settings that close every connection: the closing answer follows from them.
    always = ReadyAnswers(closes_always=True)
    remember(always, HEAD, request("GET"), response(Owner(10.0)), close, False, now=1.0)
    assert always.lookup(HEAD, now=1.0) is not None


def test_a_file_answer_is_its_head_then_the_range_and_needs_resident_pages() -> None:
    answers = ReadyAnswers()
    owner = Owner(10.0)
    owner.resident_until = 3.0
    part = FileRange(7, 0, 4)
    remember(answers, HEAD, request("GET"), response(owner, body=part), TAIL, True, now=1.0)
    answer = answers.lookup(HEAD, now=2.0)
    assert answer is not None and answer.file == part and answer.sent == 4
    assert answer.wire_for(DATE1)[0].endswith(b"Date: one\r\n\r\n")  # the body goes by sendfile
    assert answers.lookup(HEAD, now=3.5) is None  # pages not known to be cached: the full path warms them


def test_bounded_by_the_bytes_the_answers_hold() -> None:
    body = b"x" * 1000
    answers = ReadyAnswers(max_entries=100, max_bytes=3500)
    heads = [b"GET /%d HTTP/1.1\r\n\r\n" % i for i in range(5)]
    for head in heads:
        remember(answers, head, request("GET"), response(Owner(10.0), body=body), TAIL, True, now=1.0)
    assert len(answers) == 3 and answers.bytes <= 3500
    assert [answers.lookup(h, now=1.0) is not None for h in heads] == [False, False, True, True, True]
    tiny = ReadyAnswers(max_entries=100, max_bytes=500)
    remember(tiny, b"GET /big HTTP/1.1\r\n\r\n", request("GET"), response(Owner(10.0), body=body), TAIL, True, now=1.0)
    assert len(tiny) == 0  # larger than the whole bound: never stored
    # A body over INLINE_BODY is not copied into the wire bytes: it is sent from the response's own.
    remember(tiny, b"GET /larger HTTP/1.1\r\n\r\n", request("GET"), response(Owner(10.0), body=b"x" * (INLINE_BODY + 1)),
             TAIL, True, now=1.0)
    assert len(tiny) == 1 and tiny.bytes < 500
    remember(answers, heads[4], request("GET"), response(Owner(10.0), body=body), TAIL, True, now=1.0)  # replaced
    assert len(answers) == 3 and answers.bytes <= 3500
    for head in heads[2:]:
        remember(answers, head, request("GET"), response(Owner(0.5)), TAIL, True, now=1.0)  # not fresh: ignored
    assert answers.lookup(heads[2], now=11.0) is None  # stale: dropped with its bytes
    assert len(answers) == 2
    answers.clear()
    assert answers.bytes == 0
