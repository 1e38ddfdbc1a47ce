"""The static file responder: describes the answer, the connection sends it (architecture.md, principle 2).

Modelled on nginx's static module: the handler is small; the cache (`FileCache`), the miss path
(`Loader`), ranges, preconditions and precompressed variants are separate pieces. The hit path of
a plain GET or HEAD (no Range, no If-*, no Accept-Encoding for a file with sidecars) is a dict
lookup, one set test and a prebuilt `Response` returned as is (the connection never mutates it).
"""

from __future__ import annotations

import html
from typing import Any, Literal, Mapping, cast, overload

from x15g.diskio import DiskIO
from x15g.errors import HTTPError
from x15g.http.conditional import NOT_MODIFIED, PRECONDITION_FAILED, evaluate, range_applies
from x15g.http.messages import FileRange, Request, Response
from x15g.http.ranges import (
    UNSATISFIABLE,
    content_range,
    multipart_content_type,
    multipart_pieces,
    new_boundary,
    parse_range,
    unsatisfied_range,
)
from x15g.http.writer import build_head, simple_response_head
from x15g.static.autoindex import render_listing
from x15g.static.filecache import Answer, FileCache, FileEntry
from x15g.static.loader import Loader
from x15g.static.pathmap import PathMap
from x15g.static.precompressed import IDENTITY, choose

ALLOW = (("Allow", "GET, HEAD"),)
# Request headers that take a request off the fast path (If-Range only matters with Range).
_SPECIAL = frozenset((b"range", b"if-match", b"if-none-match", b"if-modified-since", b"if-unmodified-since"))
_HTML = "text/html; charset=utf-8"


class StaticResponder:
    """Serves files under `settings.root` (GET and HEAD).

    `disk` runs every blocking call; `type_overrides` maps URL path prefixes to a Content-Type
    that wins over the extension (e.g. {settings.specweb_urlroot: "text/plain"}). The cache is
    `self.cache` (its counters feed the metrics endpoint).
    """

    streams_body = True  # needs no request body: the connection answers before reading one

    def __init__(self, settings: Any, disk: DiskIO, type_overrides: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self.disk = disk
        self.paths = PathMap(settings)
        self.loader = Loader(settings, self.paths, type_overrides)
        self.cache = FileCache(settings, disk)

    def respond(self, request: Request) -> Response:
        """Describe the answer to a GET or HEAD of a path under the root; raise HTTPError else."""
        return self._respond(request, True)

    def respond_now(self, request: Request) -> Response | None:
        """The answer when it needs no disk: a cached entry inside its window whose body is in
        memory or whose pages are known resident (200, HEAD, 304, 206, 412, 416), a cached error
        or redirect. None for everything else (a miss, a revalidation, cold pages, a listing)."""
        return self._respond(request, False)

    @overload
    def _respond(self, request: Request, wait: Literal[True]) -> Response: ...

    @overload
    def _respond(self, request: Request, wait: Literal[False]) -> Response | None: ...

    def _respond(self, request: Request, wait: bool) -> Response | None:
        """The one decision for both; with `wait` False it returns None where it would block."""
        method = request.method
        if method != "GET" and method != "HEAD":
            raise HTTPError(405, "method not allowed", headers=ALLOW)
        key = request.path
        cache = self.cache
        entry = cache.get(key) if wait else cache.peek(key)
        if entry is None:
            if not wait:
                return None
            segments, trailing = self.paths.split(key)  # 400/404 here are not cached
            entry = cache.fill(key, self.loader.load, segments, trailing)
        if entry.__class__ is FileEntry:
            headers = request.headers
            if entry.codings and b"accept-encoding" in headers:
                entry = _variant(entry, headers[b"accept-encoding"])
            if not wait and entry.body is None and not cache.resident(entry):
                return None  # ensure_resident below would read from the disk
            if _SPECIAL.isdisjoint(headers):
                if method == "HEAD":
                    return entry.head_response
                if entry.body is not None:
                    return entry.get_response
                return self._whole_file(entry)
            return self._respond_checked(request, entry)
        answer = cast(Answer, entry)  # not a file: a cached 404/403/redirect, or a listing
        if not wait and answer.kind == "listing":
            return None
        return self._answer(request, answer)

    def _whole_file(self, entry: FileEntry) -> Response:
        """The shared 200 for a file sent by sendfile: hold the fd, warm it if it is cold."""
        entry.acquire()
        try:
            self.cache.ensure_resident(entry, 0, entry.size)
        except BaseException:
            entry.release()
            raise
        return entry.get_response

    def _respond_checked(self, request: Request, entry: FileEntry) -> Response:
        """The slow path for the chosen variant: preconditions, then Range (RFC 9110 §13.2.2)."""
        headers = request.headers
        outcome = evaluate(request.method, headers, entry.etag, entry.mtime)
        if outcome == NOT_MODIFIED:
            # RFC 9110 §15.4.5: keep ETag, Last-Modified, Cache-Control and Vary; no content.
            # Like every answer below marked `fresh`, it follows from the head bytes and the entry
            # alone (evaluate reads no clock), so a browser's repeated revalidation is a ready answer.
            return Response(304, build_head(304, entry.validators, None), b"", 0, send_body=False, fresh=entry.owner)
        if outcome == PRECONDITION_FAILED:
            raise HTTPError(412, "precondition failed")
        if request.method == "HEAD":
            return entry.head_response  # Range is only defined for GET (RFC 9110 §14.2)
        value = headers.get(b"range")
        if value is not None and range_applies(headers.get(b"if-range"), entry.etag, entry.mtime):
            ranges = parse_range(value, entry.size)
            if ranges is UNSATISFIABLE:
                raise HTTPError(416, "range not satisfiable",
                                headers=(("Content-Range", unsatisfied_range(entry.size)),) + entry.validators)
            if not isinstance(ranges, str):  # neither IGNORE nor UNSATISFIABLE: the ranges
                return self._partial(entry, ranges)
        if entry.body is not None:
            return entry.get_response
        return self._whole_file(entry)

    def _partial(self, entry: FileEntry, ranges: list[tuple[int, int]]) -> Response:
        """206: one range with Content-Range, several as multipart/byteranges (RFC 9110 §14.6)."""
        if len(ranges) == 1:
            start, end = ranges[0]
            count = end - start + 1
            head = build_head(206, entry.headers + (("Content-Range", content_range(start, end, entry.size)),), count)
            if entry.body is not None:
                return Response(206, head, entry.body[start : end + 1], count, fresh=entry.owner)
            return self._file_response(entry, head, count, FileRange(entry.fd, start, count), start, count)
        boundary = new_boundary()
        pieces, total = multipart_pieces(ranges, entry.size, entry.content_type, boundary)
        head = build_head(206, (("Content-Type", multipart_content_type(boundary)),) + entry.headers[1:], total)
        if entry.body is not None:
            body = entry.body
            data = b"".join(p if isinstance(p, bytes) else body[p[0] : p[0] + p[1]] for p in pieces)
            return Response(206, head, data, total)
        fd = entry.fd
        parts = [p if isinstance(p, bytes) else FileRange(fd, p[0], p[1]) for p in pieces]
        first, last = ranges[0][0], ranges[-1][1]
        return self._file_response(entry, head, total, parts, first, last - first + 1)

    def _file_response(self, entry: FileEntry, head: bytes, length: int, body: Any, offset: int, count: int) -> Response:
        entry.acquire()
        try:
            self.cache.ensure_resident(entry, offset, count)
        except BaseException:
            entry.release()
            raise
        return Response(206, head, body, length, release=entry.release)

    def _answer(self, request: Request, answer: Answer) -> Response:
        """Cached non-file outcomes: errors, the trailing-slash redirect, a directory listing."""
        if answer.kind == "error":
            raise HTTPError(answer.status, answer.reason)
        send_body = request.method == "GET"
        if answer.kind == "redirect":
            location = answer.location
            if request.query:
                location += "?" + request.query.decode("latin-1")  # keep the query (nginx does too)
            body = b'<html><body><a href="%s">moved here</a></body></html>\n' % _escape_attr(location)
            head = simple_response_head(301, _HTML, len(body), (("Location", location),))
            return Response(301, head, body, len(body), send_body=send_body)
        settings = self.settings
        try:
            body = self.disk.run(render_listing, answer.path, answer.url_path, settings.dotfiles, settings.follow_symlinks)
        except (FileNotFoundError, NotADirectoryError):
            raise HTTPError(404, "not found") from None
        except PermissionError:
            raise HTTPError(403, "permission denied") from None
        head = simple_response_head(200, _HTML, len(body), (("Cache-Control", "no-cache"),))
        return Response(200, head, body, len(body), send_body=send_body)


def _variant(entry: FileEntry, accept_encoding: bytes) -> FileEntry:
    """The sidecar entry Accept-Encoding asks for, or `entry` itself for identity."""
    coding = choose(accept_encoding, entry.codings)
    if coding != IDENTITY:
        for name, variant in entry.variants:
            if name == coding:
                return variant
    return entry


def _escape_attr(text: str) -> bytes:
    return html.escape(text, quote=True).encode("latin-1", "replace")
