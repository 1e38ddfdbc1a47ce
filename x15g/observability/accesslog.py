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
from typing import Callable

from x15g.http.messages import Request

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
FLUSH_BYTES = 64 * 1024


def _clf_time(ts: float) -> str:
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


def format_combined(request: Request, status: int, sent: int, ts: float, duration: float) -> str:
    line = f"{request.method} {_quote(request.target)} HTTP/{request.version // 10}.{request.version % 10}"
    return '%s - - [%s] "%s" %d %s "%s" "%s"\n' % (
        _host(request.peer) or "-", _clf_time(ts), line, status, sent if sent else "-",
        _quote(request.headers.get(b"referer")), _quote(request.headers.get(b"user-agent")))


def format_json(request: Request, status: int, sent: int, ts: float, duration: float) -> str:
    def text(value: bytes | None) -> str | None:
        return None if value is None else value.decode("latin-1")

    record = {
        "remote": _host(request.peer),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(ts)),
        "method": request.method,
        "path": text(request.path),
        "query": text(request.query),
        "version": f"HTTP/{request.version // 10}.{request.version % 10}",
        "status": status,
        "bytes": sent,
        "duration_ms": round(duration * 1000, 3),
        "referer": text(request.headers.get(b"referer")),
        "user_agent": text(request.headers.get(b"user-agent")),
        "pid": os.getpid(),
    }
    return json.dumps(record, separators=(",", ":")) + "\n"


class AccessLog:
    """Buffered access log; `write` on the hub, `flush(run)` with a DiskIO runner for the write."""

    def __init__(self, path: str, fmt: str) -> None:
        self.path = path
        self.format: Callable[..., str] = format_json if fmt == "json" else format_combined
        self._buffer: list[str] = []
        self._size = 0
        self._file = sys.stdout if path == "-" else open(path, "a", encoding="utf-8", errors="replace")

    def log(self, request: Request, status: int, sent: int, started: float, now: float) -> None:
        line = self.format(request, status, sent, now, now - started)
        self._buffer.append(line)
        self._size += len(line)

    @property
    def pending(self) -> int:
        return self._size

    def take(self) -> str:
        data = "".join(self._buffer)
        self._buffer.clear()
        self._size = 0
        return data

    def write_out(self, data: str) -> None:
        """Blocking write of `data` (called in the disk threadpool)."""
        if data:
            self._file.write(data)
            self._file.flush()

    def reopen(self) -> None:
        """SIGUSR1 (logrotate): reopen the file by name."""
        if self._file is sys.stdout:
            return
        old = self._file
        self._file = open(self.path, "a", encoding="utf-8", errors="replace")
        old.close()

    def close(self) -> None:
        self.write_out(self.take())
        if self._file is not sys.stdout:
            self._file.close()
