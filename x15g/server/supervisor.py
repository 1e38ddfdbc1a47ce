"""The pre-fork master: spawn workers, reap and respawn them, relay signals, reload on SIGHUP.

Signal handlers only queue the signal; the main loop dispatches to `handle_<name>` methods
(gunicorn's arbiter). Listening sockets:
- TCP with SO_REUSEPORT: the master opens and keeps one listening socket per worker slot and
  address (`ListenerSet`); each worker inherits its slot's, so the kernel balances connections
  across workers and a replaced worker's queue passes to its successor.
- unix sockets, reuse-port off, or systemd sockets: one socket that every worker inherits.

SIGHUP re-reads the configuration, starts a new generation of workers, waits until each reports
ready, then drains the old ones: clients see no refused or failed request. SIGTTIN/SIGTTOU add or
remove one worker. SIGTERM/SIGINT drain everything within `graceful_timeout`; SIGQUIT stops now.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from typing import Callable

from gevent import monkey

from x15g.config import Settings
from x15g.errors import ConfigError
from x15g.server.listeners import BindSpec, open_listener, parse_bind, reuse_port_available

log = logging.getLogger("x15g.master")

# The master runs no greenlets: it uses the unpatched calls so that gevent's child watchers and
# SIGCHLD handling never compete with our own reaping.
_fork = monkey.get_original("os", "fork")
_waitpid = monkey.get_original("os", "waitpid")
_select = monkey.get_original("select", "select")
_signal = monkey.get_original("signal", "signal")

SIGNALS = ("HUP", "TERM", "INT", "QUIT", "TTIN", "TTOU", "USR1", "CHLD")
READY_TIMEOUT = 30.0


class ListenerSet:
    """The listening sockets: one SO_REUSEPORT socket per worker slot and address, plus shared ones.

    The master opens a slot's reuse-port sockets before forking that slot's worker and keeps them
    open. The kernel balances new connections across the slots' queues, and because the master
    holds every queue, a worker that is replaced (crash or SIGHUP reload) hands its queue to its
    successor instead of dropping the connections waiting in it: a socket a worker had bound
    itself would reset them on close.
    """

    def __init__(self, settings: Settings, inherited: list[socket.socket] | None = None) -> None:
        self.reuse_port = settings.reuse_port and reuse_port_available()
        self.backlog = settings.backlog
        self.per_worker: list[BindSpec] = []
        self.slots: dict[int, list[socket.socket]] = {}
        self.shared: list[socket.socket] = list(inherited or ())  # systemd socket activation
        for text in settings.bind if not inherited else ():
            spec = parse_bind(text)
            if self.reuse_port and not spec.is_unix:
                self.per_worker.append(spec)
            else:
                self.shared.append(open_listener(spec, settings.backlog, reuse_port=False))
        for slot in range(settings.workers):
            self.open_slot(slot)

    def open_slot(self, slot: int) -> list[socket.socket]:
        """The reuse-port sockets of `slot`, opened on first use (in the master)."""
        if slot not in self.slots:
            self.slots[slot] = [open_listener(spec, self.backlog, reuse_port=True) for spec in self.per_worker]
        return self.slots[slot]

    def for_worker(self, slot: int) -> list[socket.socket]:
        """Called in the child after fork: close the other slots' sockets, keep ours and the shared."""
        for other, sockets in self.slots.items():
            if other != slot:
                for sock in sockets:
                    sock.close()
        return list(self.slots.get(slot, ())) + list(self.shared)

    def close_slot(self, slot: int) -> None:
        for sock in self.slots.pop(slot, ()):
            sock.close()

    def close(self) -> None:
        for slot in list(self.slots):
            self.close_slot(slot)
        for sock in self.shared:
            sock.close()


class WorkerProcess:
    __slots__ = ("pid", "worker_id", "generation", "ready_fd", "ready")

    def __init__(self, pid: int, worker_id: int, generation: int, ready_fd: int) -> None:
        self.pid = pid
        self.worker_id = worker_id
        self.generation = generation
        self.ready_fd = ready_fd
        self.ready = False


class Supervisor:
    """Run `settings.workers` worker processes; `run()` returns the exit status."""

    def __init__(self, settings: Settings, reload_settings: Callable[[], Settings],
                 run_worker: Callable[[Settings, list[socket.socket], int, int], int],
                 inherited: list[socket.socket] | None = None) -> None:
        self.settings = settings
        self.reload_settings = reload_settings
        self.run_worker = run_worker
        self.listeners = ListenerSet(settings, inherited)
        self.workers: dict[int, WorkerProcess] = {}
        self.generation = 0
        self.target = settings.workers
        self.queue: list[int] = []
        self.stopping = False
        self.wakeup_r, self.wakeup_w = os.pipe()
        os.set_blocking(self.wakeup_w, False)
        os.set_blocking(self.wakeup_r, False)

    # --- main loop ---

    def run(self) -> int:
        for name in SIGNALS:
            _signal(getattr(signal, "SIG" + name), self._queue_signal)
        log.info("master %d starting %d workers", os.getpid(), self.target)
        self._spawn_missing()
        while True:
            self._wait(1.0)
            self._reap()
            while self.queue:
                signum = self.queue.pop(0)
                name = signal.Signals(signum).name[3:].lower()
                getattr(self, f"handle_{name}")()
            if self.stopping:
                if not self.workers:
                    break
                continue
            self._spawn_missing()
        self.listeners.close()
        log.info("master %d stopped", os.getpid())
        return 0

    def _queue_signal(self, signum: int, frame: object) -> None:
        if len(self.queue) < 10:
            self.queue.append(signum)
        try:
            os.write(self.wakeup_w, b"!")
        except OSError:
            pass

    def _wait(self, timeout: float) -> None:
        """Sleep until a signal arrives, a worker reports ready, or `timeout` passes."""
        fds = [self.wakeup_r] + [w.ready_fd for w in self.workers.values() if not w.ready]
        try:
            readable, _, _ = _select(fds, [], [], timeout)
        except (InterruptedError, OSError):
            return
        for fd in readable:
            try:
                data = os.read(fd, 64)
            except OSError:
                data = b""
            if fd != self.wakeup_r:
                for worker in self.workers.values():
                    if worker.ready_fd == fd and data:
                        worker.ready = True

    # --- workers ---

    def _spawn_missing(self) -> None:
        current = [w for w in self.workers.values() if w.generation == self.generation]
        used = {w.worker_id for w in current}
        for worker_id in range(self.target):
            if worker_id not in used:
                self._spawn(worker_id)

    def _spawn(self, worker_id: int) -> None:
        try:
            self.listeners.open_slot(worker_id)
        except ConfigError as exc:
            log.error("cannot start worker %d: %s", worker_id, exc)
            return
        ready_r, ready_w = os.pipe()
        pid = _fork()
        if pid == 0:
            code = 1
            try:
                import gevent

                gevent.reinit()  # the child needs its own event loop, not the master's
                os.close(ready_r)
                os.close(self.wakeup_r)
                os.close(self.wakeup_w)
                for name in SIGNALS:
                    _signal(getattr(signal, "SIG" + name), signal.SIG_DFL)
                sockets = self.listeners.for_worker(worker_id)
                code = self.run_worker(self.settings, sockets, worker_id, ready_w)
            except BaseException:
                log.exception("worker %d failed", worker_id)
            finally:
                os._exit(code)
        os.close(ready_w)
        self.workers[pid] = WorkerProcess(pid, worker_id, self.generation, ready_r)
        log.info("spawned worker %d (pid %d)", worker_id, pid)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = _waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue
            os.close(worker.ready_fd)
            if worker.worker_id >= self.target and all(w.worker_id != worker.worker_id for w in self.workers.values()):
                self.listeners.close_slot(worker.worker_id)
            if not self.stopping and worker.generation == self.generation:
                log.warning("worker %d (pid %d) exited with status %s; replacing it",
                            worker.worker_id, pid, os.waitstatus_to_exitcode(status))

    def _signal_workers(self, signum: int, generation: int | None = None) -> None:
        for pid, worker in list(self.workers.items()):
            if generation is None or worker.generation == generation:
                try:
                    os.kill(pid, signum)
                except ProcessLookupError:
                    pass

    # --- signal handlers (called from the main loop, never from the signal context) ---

    def handle_chld(self) -> None:
        self._reap()

    def handle_term(self) -> None:
        log.info("SIGTERM: draining workers")
        self._stop(signal.SIGTERM)

    handle_int = handle_term

    def handle_quit(self) -> None:
        self._stop(signal.SIGQUIT)

    def _stop(self, signum: int) -> None:
        """Close the master's copies of the listening sockets first: each worker accepts what is
        already queued and closes its own copy, after which new clients are refused at once
        instead of waiting in a queue nobody will accept from (reset when the master exits)."""
        self.stopping = True
        self.listeners.close()
        self._signal_workers(signum)

    def handle_usr1(self) -> None:
        from x15g.observability.logs import reopen_logs

        reopen_logs()
        self._signal_workers(signal.SIGUSR1)

    def handle_ttin(self) -> None:
        self.target += 1
        log.info("SIGTTIN: %d workers", self.target)

    def handle_ttou(self) -> None:
        if self.target <= 1:
            return
        self.target -= 1
        log.info("SIGTTOU: %d workers", self.target)
        for pid, worker in list(self.workers.items()):
            if worker.generation == self.generation and worker.worker_id >= self.target:
                os.kill(pid, signal.SIGTERM)
                worker.generation = -1  # draining; not replaced

    def handle_hup(self) -> None:
        """Reload: new generation ready first, then drain the old one."""
        try:
            settings = self.reload_settings()
        except (ConfigError, SystemExit) as exc:
            log.error("SIGHUP: configuration not reloaded: %s", exc)
            return
        old_generation = self.generation
        old_listeners = self.listeners
        if settings.bind != self.settings.bind or settings.reuse_port != self.settings.reuse_port:
            log.warning("SIGHUP: bind changes need a restart; keeping %s", ", ".join(self.settings.bind))
            settings = _replace(settings, bind=self.settings.bind, reuse_port=self.settings.reuse_port)
        self.settings = settings
        self.listeners = old_listeners
        self.generation += 1
        self.target = settings.workers
        self._spawn_missing()
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            fresh = [w for w in self.workers.values() if w.generation == self.generation]
            if fresh and all(w.ready for w in fresh):
                break
            self._wait(0.1)
            self._reap()
        log.info("SIGHUP: generation %d ready; draining generation %d", self.generation, old_generation)
        self._signal_workers(signal.SIGTERM, old_generation)


def _replace(settings: Settings, **changes: object) -> Settings:
    import dataclasses

    return dataclasses.replace(settings, **changes)
