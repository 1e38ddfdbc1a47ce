"""The `x15g` command. gevent is patched here, first, and nowhere else (architecture.md, principle 4)."""

from gevent import monkey

monkey.patch_all()

import contextlib  # noqa: E402
import importlib.util  # noqa: E402
import io  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
from typing import Sequence  # noqa: E402

import gevent  # noqa: E402

from x15g.config import Settings, describe, explain, load_settings  # noqa: E402
from x15g.errors import ConfigError  # noqa: E402
from x15g.observability.logs import setup_logging  # noqa: E402

log = logging.getLogger("x15g")


def run_worker(settings: Settings, listeners: list[socket.socket], worker_id: int, ready_fd: int) -> int:
    """Body of one worker process (called in the child after fork)."""
    from x15g.server.privileges import drop_privileges
    from x15g.server.worker import Worker

    setup_logging(settings.error_log, settings.log_level)
    if settings.isolate and settings.user is not None and os.geteuid() == 0:
        importlib.import_module("x15g.isolate.responder")  # as root: --user may not read the install
        from x15g.isolate.launcher import start_launcher

        start_launcher(settings)  # root, to start the handlers as the isolate user (launcher.py)
    drop_privileges(settings.user, settings.group)

    def ready() -> None:
        os.write(ready_fd, b"1")  # the fd closes when the worker exits (or reports a failure)

    return Worker(settings, listeners, worker_id, on_ready=ready, watch_parent=True).serve()


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the configuration, then run the pre-fork master; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    settings, check_only = load_settings(args)
    from x15g.server.preflight import check_startup

    if settings.loop == "libuv" and importlib.util.find_spec("_cffi_backend") is None:
        sys.stderr.write("x15g: error: --loop libuv needs cffi (pip install cffi)\n")
        return 2
    try:
        # What would make every worker fail at start is an exit 2 now, not a respawn loop later.
        check_startup(settings, import_app=check_only)
    except ConfigError as exc:
        sys.stderr.write(f"x15g: error: {explain(exc, settings.sources)}\n")
        return 2
    if check_only:
        if settings.isolate:
            from x15g.isolate.preflight import check as check_isolation

            try:
                for warning in check_isolation(settings):
                    sys.stderr.write(f"x15g: warning: {warning}\n")
            except ConfigError as exc:
                sys.stderr.write(f"x15g: error: {explain(exc, settings.sources)}\n")
                return 2
        sys.stdout.write(describe(settings))
        return 0
    gevent.config.loop = "libev-cext" if settings.loop == "libev" else "libuv"
    setup_logging(settings.error_log, settings.log_level)
    from x15g.observability import metrics
    from x15g.server.activation import describe as describe_fds, listen_fds
    from x15g.server.supervisor import Supervisor

    def reload_settings() -> Settings:
        """SIGHUP: the configuration read again, with the start-up checks; ConfigError says why not."""
        printed = io.StringIO()
        try:
            with contextlib.redirect_stderr(printed):  # the parser prints its one line and exits 2
                fresh = load_settings(args)[0]
        except SystemExit:
            raise ConfigError(printed.getvalue().strip().removeprefix("x15g: error: ")) from None
        try:
            check_startup(fresh)
        except ConfigError as exc:
            raise ConfigError(explain(exc, fresh.sources)) from None
        return fresh

    inherited = listen_fds(os.environ)  # systemd socket activation replaces --bind
    try:
        if settings.isolate:
            from x15g.isolate.preflight import check as check_isolation

            for warning in check_isolation(settings):
                log.warning("%s", warning)
        supervisor = Supervisor(settings, reload_settings, run_worker, inherited)
    except ConfigError as exc:
        sys.stderr.write(f"x15g: error: {explain(exc, settings.sources)}\n")
        return 2
    metrics.run_dir = metrics.make_run_dir()  # workers publish their counters here (admin endpoints)
    supervisor.ledger = metrics.MasterLedger(metrics.run_dir)  # keeps exited workers' totals
    if settings.user is not None or settings.group is not None:
        from x15g.server.privileges import target_ids

        os.chown(metrics.run_dir, *target_ids(settings.user, settings.group))  # workers drop to these
    if settings.pid_file:
        with open(settings.pid_file, "w") as f:
            f.write(f"{os.getpid()}\n")
    log.info("x15g master %d serving %s on %s with %d worker(s)", os.getpid(), settings.root,
             ", ".join(describe_fds(inherited) if inherited else settings.bind), settings.workers)
    try:
        return supervisor.run()
    finally:
        metrics.remove_run_dir(metrics.run_dir)
        if settings.pid_file:
            try:
                os.unlink(settings.pid_file)
            except OSError:
                pass


if __name__ == "__main__":
    raise SystemExit(main())
