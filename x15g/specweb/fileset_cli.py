"""`x15g-fileset`: write (or `--verify`) the SPECweb99-like file set and its state directory.

`x15g-fileset --conns N [--dirs D] --root DOCROOT [--seed S] [--verify] [--jobs J]`

Each file is built with bytes operations and written with one `os.write`, so the generator runs
at about disk speed; directories are split across `--jobs` processes (default: 2, or fewer CPUs).
Generation also writes `DOCROOT/../specweb_state/` with upfgen(N, N), cadgen(0, N, 0, 180, now)
and an empty post.log, so the server answers CAD and POST before the first Reset.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time

from x15g.specweb import fileset
from x15g.specweb.postlog import EMPTY
from x15g.specweb.state import ADS_FILE, CLOCK_FILE, POST_LOG_FILE, USERS_FILE, write_atomic
from x15g.specweb.tables import cadgen, upfgen


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="x15g-fileset", description="Generate or verify the SPECweb99-like file set.")
    p.add_argument("--conns", type=int, required=True, help="target simultaneous connections N (sizes the set)")
    p.add_argument("--dirs", type=int, default=None, help="override the number of directories D")
    p.add_argument("--root", required=True, help="document root (files go to ROOT/file_set/)")
    p.add_argument("--seed", type=int, default=1999, help="content seed (default 1999)")
    p.add_argument("--verify", action="store_true", help="re-read every file and check every byte; exit 1 on a difference")
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="worker processes (default 2)")
    return p


class Progress:
    """A one-line text progress bar on stderr, only when stderr is a terminal."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.done = label, total, 0
        self.tty = sys.stderr.isatty()
        self.start = time.monotonic()

    def step(self, n: int = 1) -> None:
        self.done += n
        if not self.tty:
            return
        width = 30
        filled = width * self.done // max(self.total, 1)
        rate = self.done * fileset.DIR_BYTES / max(time.monotonic() - self.start, 1e-6) / 1e6
        sys.stderr.write("\r%s [%s%s] %d/%d dirs %.0f MB/s" % (self.label, "#" * filled, "." * (width - filled),
                                                              self.done, self.total, rate))
        if self.done >= self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _generate_one(args: tuple[str, int, int]) -> list[str]:
    root, d, seed = args
    fileset.generate_dir(root, d, seed)
    return []


def _verify_one(args: tuple[str, int, int]) -> list[str]:
    root, d, seed = args
    return fileset.verify_dir(root, d, seed)


def run_dirs(work, root: str, dirs: int, seed: int, jobs: int, label: str) -> list[str]:
    """Apply `work` to every directory, in `jobs` processes; returns the bad names it reported."""
    progress = Progress(label, dirs)
    tasks = [(root, d, seed) for d in range(dirs)]
    bad: list[str] = []
    if jobs <= 1 or dirs <= 1:
        for task in tasks:
            bad += work(task)
            progress.step()
        return bad
    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        for result in pool.imap(work, tasks):
            bad += result
            progress.step()
    return bad


def write_state(root: str, conns: int, now: int | None = None) -> str:
    """Create DOCROOT/../specweb_state with the tables for N and an empty post.log."""
    state = os.path.join(os.path.dirname(os.path.abspath(root)), "specweb_state")
    os.makedirs(state, exist_ok=True)
    write_atomic(os.path.join(state, USERS_FILE), upfgen(conns, conns))
    write_atomic(os.path.join(state, ADS_FILE), cadgen(0, conns, 0, 180, int(time.time()) if now is None else now))
    write_atomic(os.path.join(state, CLOCK_FILE), b"")
    # In place, not replaced: a running server keeps its descriptor and its flock on this inode.
    fd = os.open(os.path.join(state, POST_LOG_FILE), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.ftruncate(fd, len(EMPTY))
        os.pwrite(fd, EMPTY, 0)
        os.fsync(fd)
    finally:
        os.close(fd)
    return state


def main(argv: list[str] | None = None) -> int:
    """Entry point of `x15g-fileset`; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.conns < 1 or (args.dirs is not None and args.dirs < 1):
        print("x15g-fileset: --conns and --dirs must be at least 1", file=sys.stderr)
        return 2
    dirs = args.dirs if args.dirs is not None else fileset.directory_count(args.conns)
    total = dirs * fileset.DIR_BYTES
    start = time.monotonic()
    if args.verify:
        bad = run_dirs(_verify_one, args.root, dirs, args.seed, args.jobs, "verify")
        elapsed = time.monotonic() - start
        for name in bad[:50]:
            print("BAD " + name)
        print("D=%d files=%d bytes=%d bad=%d seed=%d time=%.2fs (%.0f MB/s)" % (
            dirs, dirs * fileset.FILES_PER_DIR, total, len(bad), args.seed, elapsed, total / max(elapsed, 1e-6) / 1e6))
        return 1 if bad else 0
    os.makedirs(os.path.join(args.root, "file_set"), exist_ok=True)
    run_dirs(_generate_one, args.root, dirs, args.seed, args.jobs, "generate")
    state = write_state(args.root, args.conns)
    elapsed = time.monotonic() - start
    print("D=%d N=%d files=%d bytes=%d seed=%d time=%.2fs (%.0f MB/s) state=%s" % (
        dirs, args.conns, dirs * fileset.FILES_PER_DIR, total, args.seed, elapsed, total / max(elapsed, 1e-6) / 1e6, state))
    return 0


if __name__ == "__main__":
    sys.exit(main())
