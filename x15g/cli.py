"""The `x15g` command. gevent is patched here, first, and nowhere else (architecture.md, principle 4)."""

from gevent import monkey

monkey.patch_all()

import importlib.util  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
from typing import Sequence  # noqa: E402

import gevent  # noqa: E402

from x15g.config import Settings, describe, load_settings  # noqa: E402
from x15g.errors import ConfigError  # noqa: E402
from x15g.observability.logs import setup_logging  # noqa: E402

log = logging.getLogger("x15g")


def run_worker(settings: Settings, listeners: list[socket.socket], worker_id: int, ready_fd: int) -> int:
    """Body of one worker process (called in the child after fork)."""
    from x15g.server.privileges import drop_privileges
    from x15g.server.worker import Worker

    setup_logging(settings.error_log, settings.log_level)
    drop_privileges(settings.user, settings.group)

    def ready() -> None:
        os.write(ready_fd, b"1")
        os.close(ready_fd)

    return Worker(settings, listeners, worker_id, on_ready=ready, watch_parent=True).serve()


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the configuration, then run the pre-fork master; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    settings, check_only = load_settings(args)
    if check_only:
        sys.stdout.write(describe(settings))
        return 0
    if settings.loop == "libuv" and importlib.util.find_spec("_cffi_backend") is None:
        sys.stderr.write("x15g: error: --loop libuv needs cffi (pip install cffi)\n")
        return 2
    gevent.config.loop = "libev-cext" if settings.loop == "libev" else "libuv"
    setup_logging(settings.error_log, settings.log_level)
    from x15g.observability import metrics
    from x15g.server.activation import describe as describe_fds, listen_fds
    from x15g.server.supervisor import Supervisor

    def reload_settings() -> Settings:
        return load_settings(args)[0]

    inherited = listen_fds(os.environ)  # systemd socket activation replaces --bind
    try:
        if settings.user is not None or settings.group is not None:
            from x15g.server.privileges import target_ids

            target_ids(settings.user, settings.group)  # an unknown user is a config error: exit 2
        if settings.wsgi:
            from x15g.app.wsgi import check_app_spec

            check_app_spec(settings.wsgi)
        supervisor = Supervisor(settings, reload_settings, run_worker, inherited)
    except ConfigError as exc:
        sys.stderr.write(f"x15g: error: {exc}\n")
        return 2
    metrics.run_dir = metrics.make_run_dir()  # workers publish their counters here (admin endpoints)
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
