"""Start-up checks the master runs before it binds or forks, and `--check-config` runs alone.

Everything that would otherwise make every worker fail at start (and the master respawn them in a
loop) is checked once, in the master, with one clear error naming the option and where its value
came from: the user and group exist, the WSGI module is found (imported, with `--check-config`),
CGI directories and the SPECweb state directory exist, and the access and error logs (and the
post log) can be opened for appending by the user the workers run as (checked in a forked child
that drops to that user, as a worker would).
"""

from __future__ import annotations

import os

from gevent import monkey

from x15g.config import OptionError, Settings
from x15g.errors import ConfigError
from x15g.specweb.state import POST_LOG_FILE
from x15g.server.privileges import drop_privileges, target_ids

_fork = monkey.get_original("os", "fork")
_waitpid = monkey.get_original("os", "waitpid")
_close = monkey.get_original("os", "close")


def check_startup(settings: Settings, import_app: bool = False) -> None:
    """Raise OptionError/ConfigError for the first thing a start would trip over."""
    if settings.user is not None or settings.group is not None:
        name = "user" if settings.user is not None else "group"
        try:
            uid, gid = target_ids(settings.user, settings.group)
        except ConfigError as exc:
            raise OptionError("user" if "--user" in str(exc) else "group", str(exc)) from None
        if os.geteuid() != 0 and (uid not in (-1, os.geteuid()) or gid not in (-1, os.getegid())):
            raise OptionError(name, f"--{name} {getattr(settings, name)!r}: switching to it needs the "
                                    f"server to be started as root (or as that user)")
    if settings.wsgi:
        from x15g.app.wsgi import check_app_spec, load_app

        try:
            load_app(settings.wsgi) if import_app else check_app_spec(settings.wsgi)
        except ConfigError as exc:
            raise OptionError("wsgi", str(exc)) from None
        except Exception as exc:  # the application's own import failed
            raise OptionError("wsgi", f"--wsgi {settings.wsgi!r}: importing it failed: "
                                      f"{type(exc).__name__}: {exc}") from None
    for spec in settings.cgi_dir:
        directory = spec.partition("=")[2]
        if not os.path.isdir(directory):
            raise OptionError("cgi_dir", f"--cgi-dir {spec!r}: {directory!r} is not a directory")
    state = settings.specweb_state or ""  # config.finish fills it in
    if settings.specweb:
        if not os.path.isdir(state):
            raise OptionError("specweb_state", f"--specweb-state {state!r} is not a directory "
                                               f"(x15g-fileset creates it beside the file set)")
    logs = [(name, path) for name, path in (("access_log", settings.access_log), ("error_log", settings.error_log))
            if path and path != "-"]
    if settings.specweb and not (settings.isolate and os.geteuid() == 0):
        # (isolated, as root: the handlers, not the workers, write it, and make the state theirs)
        logs.append(("specweb_state", os.path.join(state, POST_LOG_FILE)))
    for name, path in logs:
        problem = _appendable_as(path, settings.user, settings.group)
        if problem:
            who = f"user {settings.user}" if settings.user else "the server's user"
            raise OptionError(name, f"--{name.replace('_', '-')}: {path!r} cannot be opened for writing "
                                    f"by {who}: {problem}")


def _appendable_as(path: str, user: str | None, group: str | None) -> str:
    """'' when `path` can be opened for appending by the worker user, else why not. The file is
    created if missing, as a worker would create it."""
    if (user is None and group is None) or os.geteuid() != 0:
        return _try_append(path)
    read_end, write_end = os.pipe()
    pid = _fork()
    if pid == 0:
        code = 0
        try:
            _close(read_end)
            drop_privileges(user, group)
            problem = _try_append(path)
            os.write(write_end, problem.encode())
        except BaseException as exc:  # never return into the caller's code in the child
            try:
                os.write(write_end, str(exc).encode())
            except OSError:
                code = 1
        finally:
            os._exit(code)
    _close(write_end)
    chunks = []
    while True:
        data = os.read(read_end, 4096)
        if not data:
            break
        chunks.append(data)
    _close(read_end)
    _waitpid(pid, 0)
    return b"".join(chunks).decode("utf-8", "replace")


def _try_append(path: str) -> str:
    try:
        with open(path, "a", encoding="utf-8"):
            return ""
    except OSError as exc:
        return exc.strerror or str(exc)
