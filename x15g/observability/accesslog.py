"""Access log: `combined` (Apache/nginx) or `json` lines, buffered and written off the hub.

Records are formatted on the hub (cheap string work) and appended to an in-memory buffer; a
periodic flush hands the buffer to the disk threadpool, so a slow log disk never stalls serving.
JSON lines are built with `json.dumps`, never string templates (a forged user agent must not be
able to inject fields).
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, Callable

from x15g.http.messages import Request

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
FLUSH_BYTES = 64 * 1024
# What a combined-format value may hold unescaped: printable ASCII but `"` and `\`.
_PLAIN = bytes(range(0x20, 0x7F)).replace(b'"', b"").replace(b"\\", b"")


def _clf_time(ts: float) -> str:
    second = int(ts)
    if second != _clf_cache[0]:
        _clf_cache[0], _clf_cache[1] = second, _format_clf(second)
    return _clf_cache[1]


_clf_cache: list = [-1, ""]  # (second, its text): formatted once a second, like Date


def _format_clf(ts: float) -> str:
    t = time.localtime(ts)
    offset = t.tm_gmtoff // 60
    sign = "+" if offset >= 0 else "-"
    offset = abs(offset)
    return "%02d/%s/%04d:%02d:%02d:%02d %s%02d%02d" % (
        t.tm_mday, _MONTHS[t.tm_mon - 1], t.tm_year, t.tm_hour, t.tm_min, t.tm_sec, sign, offset // 60, offset % 60)


def _quote(value: bytes | None) -> str:
    """Escape for the combined format like nginx does: `"` and `\\` and non-printables as \\xHH."""
    if not value:
        return "-"
    if not value.translate(None, _PLAIN):  # the common case, in one C call (a regex took 1 us for a user agent)
        return value.decode("ascii")
    out = []
    for byte in value:
        if byte in (0x22, 0x5C) or byte < 0x20 or byte > 0x7E:
            out.append("\\x%02X" % byte)
        else:
            out.append(chr(byte))
    return "".join(out)


def _host(peer: str) -> str:
    if peer.startswith("["):
        return peer[1:peer.find("]")]
    host, sep, port = peer.rpartition(":")
    return host if sep and port.isdigit() and "." in host else peer


def combined_fields(request: Request, status: int, sent: int) -> str:
    """The part of a combined line that only depends on the request and the answer."""
    line = f"{request.method} {_quote(request.target)} HTTP/{request.version // 10}.{request.version % 10}"
    return '"%s" %d %s "%s" "%s"\n' % (
        line, status, sent if sent else "-",
        _quote(request.headers.get(b"referer")), _quote(request.headers.get(b"user-agent")))


def combined_line(fields: str, peer: str, ts: float, duration: float) -> str:
    return "%s - - [%s] %s" % (_host(peer) or "-", _clf_time(ts), fields)


def json_fields(request: Request, status: int, sent: int) -> dict:
    """The fields of a JSON record that only depend on the request and the answer."""
    def text(value: bytes | None) -> str | None:
        return None if value is None else value.decode("latin-1")

    fields = {
        "method": request.method,
        "path": text(request.path),
        "query": text(request.query),
        "version": f"HTTP/{request.version // 10}.{request.version % 10}",
        "status": status,
        "bytes": sent,
        "referer": text(request.headers.get(b"referer")),
        "user_agent": text(request.headers.get(b"user-agent")),
        "pid": os.getpid(),
    }
    if request.request_id:  # application requests carry one (X-Request-ID)
        fields["request_id"] = request.request_id
    return fields


_rfc3339_cache: list = [-1, "", ""]  # (second, date-time text, offset): formatted once a second


def rfc3339(ts: float) -> str:
    """Local time as RFC 3339 with milliseconds: `2026-12-02T03:14:05.123+01:00`."""
    second = int(ts)
    if second != _rfc3339_cache[0]:
        t = time.localtime(second)
        offset = abs(t.tm_gmtoff) // 60
        _rfc3339_cache[:] = [second, time.strftime("%Y-%m-%dT%H:%M:%S", t),
                             "%s%02d:%02d" % ("+" if t.tm_gmtoff >= 0 else "-", offset // 60, offset % 60)]
    return "%s.%03d%s" % (_rfc3339_cache[1], int((ts - second) * 1000), _rfc3339_cache[2])


def json_line(fields: dict, peer: str, ts: float, duration: float) -> str:
    record = {
        "remote": _host(peer),
        "time": rfc3339(ts),
        **fields,
        "duration_ms": round(duration * 1000, 3),
    }
    return json.dumps(record, separators=(",", ":")) + "\n"


class AccessLog:
    """Buffered access log; `write` on the hub, `flush(run)` with a DiskIO runner for the write."""

    def __init__(self, path: str, fmt: str) -> None:
        self.path = path
        # A line is fields (what the request and answer fix; a ready answer keeps them) + the
        # client, time and duration of this request.
        self.fields: Callable[[Request, int, int], Any] = json_fields if fmt == "json" else combined_fields
        self.line: Callable[[Any, str, float, float], str] = json_line if fmt == "json" else combined_line
        self._buffer: list[str] = []
        self._size = 0
        self._file = sys.stdout if path == "-" else open(path, "a", encoding="utf-8", errors="replace")

    def log(self, request: Request, status: int, sent: int, ts: float, duration: float) -> None:
        """Log a request answered at wall-clock time `ts` that took `duration` seconds."""
        self.log_fields(self.fields(request, status, sent), request.peer, ts, duration)

    def log_fields(self, fields: Any, peer: str, ts: float, duration: float) -> None:
        """Log a request whose `fields` were prepared before (a ready answer keeps them)."""
        line = self.line(fields, peer, ts, duration)
        self._buffer.append(line)
        self._size += len(line)

    @property
    def pending(self) -> int:
        return self._size

    def take(self) -> str:
        lines, self._buffer = self._buffer, []
        self._size = 0
        return "".join(lines)

    def write_out(self, data: str) -> None:
        """Blocking write of `data` (called in the disk threadpool)."""
        if data:
            self._file.write(data)
            self._file.flush()

    def flush(self) -> None:
        """Write what is buffered now, blocking; also from the watchdog's thread while the hub
        is stuck in application code (which then appends no lines)."""
        self.write_out(self.take())

    def reopen(self) -> None:
        """SIGUSR1 (logrotate): reopen the file by name."""
        if self._file is sys.stdout:
            return
        old = self._file
        self._file = open(self.path, "a", encoding="utf-8", errors="replace")
        old.close()

    def close(self) -> None:
        self.flush()
        if self._file is not sys.stdout:
            self._file.close()
