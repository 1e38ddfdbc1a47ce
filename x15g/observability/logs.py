"""Error-log setup: one handler on the `x15g` logger, to stderr or a file (reopened on SIGUSR1)."""

from __future__ import annotations

import logging
import os
import sys

_FORMAT = "%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s"


class ReopenableFileHandler(logging.StreamHandler):
    """A file handler whose file can be reopened after logrotate moved it."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(open(path, "a", buffering=1, encoding="utf-8"))

    def reopen(self) -> None:
        self.acquire()
        try:
            old = self.stream
            self.stream = open(self.path, "a", buffering=1, encoding="utf-8")
            old.close()
        finally:
            self.release()


def setup_logging(error_log: str, level: str) -> logging.Logger:
    """Configure the `x15g` logger once per process and return it."""
    logger = logging.getLogger("x15g")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler: logging.Handler
    if error_log in ("-", ""):
        handler = logging.StreamHandler(sys.stderr)
    else:
        handler = ReopenableFileHandler(os.path.abspath(error_log))
    handler.setFormatter(logging.Formatter(_FORMAT))
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
    return logger


def reopen_logs() -> None:
    """SIGUSR1: reopen every file the `x15g` loggers write to."""
    for handler in logging.getLogger("x15g").handlers:
        if isinstance(handler, ReopenableFileHandler):
            handler.reopen()
