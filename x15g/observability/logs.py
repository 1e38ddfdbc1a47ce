"""Error-log setup: one handler on the `x15g` logger, to stderr or a file.

The file handler has the standard library's `WatchedFileHandler` semantics: before each record it
checks whether the path still names the file it has open, and reopens it by name when logrotate
(or anyone) moved or deleted it, in every process (master and workers) on its own. SIGUSR1 forces
the reopen too. A reopen that fails (e.g. the directory is not writable by the worker user) keeps
writing to the old file and says so once, rather than losing the log or the process.
"""

from __future__ import annotations

import io
import logging
import logging.handlers
import os
import sys

_FORMAT = "%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s"


class ErrorLogHandler(logging.handlers.WatchedFileHandler):
    """WatchedFileHandler, line-buffered, whose reopen never raises."""

    def __init__(self, path: str) -> None:
        super().__init__(path, mode="a", encoding="utf-8")
        self.failed_reopen = ""

    def _open(self) -> io.TextIOWrapper:
        return open(self.baseFilename, "a", buffering=1, encoding=self.encoding, errors=self.errors)

    def reopenIfNeeded(self) -> None:  # noqa: N802 (the stdlib's name; emit calls it)
        """The stdlib's check, but the old stream is closed only once the new one is open."""
        try:
            st = os.stat(self.baseFilename)
        except OSError:
            st = None
        if st is None or (st.st_dev, st.st_ino) != (self.dev, self.ino):
            self.reopen()

    def reopen(self) -> None:
        """SIGUSR1: reopen by name now."""
        self.acquire()
        try:
            try:
                stream = self._open()
            except OSError as exc:
                self._reopen_failed(exc)
                return
            old, self.stream = self.stream, stream
            self._statstream()
            if old is not None:
                old.close()
            self.failed_reopen = ""
        finally:
            self.release()

    def _reopen_failed(self, exc: OSError) -> None:
        """Keep the open stream (the old file); tell it once why the new one is not used."""
        message = f"cannot reopen the error log {self.baseFilename}: {exc.strerror or exc}"
        if message != self.failed_reopen and self.stream is not None:
            self.failed_reopen = message
            self.stream.write(message + "; still writing to the previous file\n")


def setup_logging(error_log: str, level: str) -> logging.Logger:
    """Configure the `x15g` logger once per process and return it."""
    logger = logging.getLogger("x15g")
    for old in list(logger.handlers):
        logger.removeHandler(old)
    handler: logging.Handler
    if error_log in ("-", ""):
        handler = logging.StreamHandler(sys.stderr)
    else:
        handler = ErrorLogHandler(os.path.abspath(error_log))
    handler.setFormatter(logging.Formatter(_FORMAT))
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
    return logger


def reopen_logs() -> None:
    """SIGUSR1: reopen every file the `x15g` loggers write to."""
    for handler in logging.getLogger("x15g").handlers:
        if isinstance(handler, ErrorLogHandler):
            handler.reopen()
