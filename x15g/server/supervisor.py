"""The pre-fork master: spawn workers, reap and respawn them, relay signals, reload on SIGHUP.

Signal handlers only queue the signal; the main loop (one `poll`, never `select()`, so no fd
number limit) dispatches to `handle_<name>` methods (gunicorn's arbiter). Listening sockets:
- TCP with SO_REUSEPORT: the master opens one listening socket per worker slot and address and
  keeps it; each worker inherits its slot's socket, so a replaced worker hands its kernel queue
  to its successor instead of resetting it.
- unix sockets, or reuse-port off: the master binds and listens once; workers inherit the socket.

Every fd the master opens for a worker (its ready pipe) is closed when the worker reports ready or
is reaped. The master runs no gevent hub, so it uses the unpatched `os` calls: gevent's `os.close`
defers the close to a hub callback that never runs here (the leak of a pipe per spawn).

Respawn: a worker that dies young (before reporting ready, or within `STABLE_AFTER` of it twice
in a row) is respawned with exponential backoff, up to one spawn per `MAX_BACKOFF` per slot, and
each distinct failure is logged once. A worker that served and was killed is replaced at once. A worker that exits with status 0 after serving (a planned exit, e.g.
request-count recycling) is replaced at once.

SIGHUP is a transaction: the new generation must report ready within its `--graceful-timeout`;
then the old one drains. If a new worker fails or the time runs out, the new generation is
stopped, the old one keeps serving and the log says why. Signals keep being handled meanwhile.
SIGTTIN/SIGTTOU add or remove one worker. SIGTERM/SIGINT drain everything within
`graceful_timeout`; SIGQUIT stops now. See `_stop` for how a stop loses no queued connection.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import socket
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

from gevent import monkey

from x15g.config import Settings
from x15g.errors import ConfigError
from x15g.server.listeners import BindSpec, open_listener, parse_bind, refuse_new_connections, reuse_port_available
from x15g.server.notify import Notifier

log = logging.getLogger("x15g.master")

_fork = monkey.get_original("os", "fork")
_waitpid = monkey.get_original("os", "waitpid")
_close = monkey.get_original("os", "close")
_poll = monkey.get_original("select", "poll")
_signal = monkey.get_original("signal", "signal")

SIGNALS = ("HUP", "TERM", "INT", "QUIT", "TTIN", "TTOU", "USR1", "CHLD")
_SIGNAL_NUMBERS = {getattr(signal, "SIG" + name) for name in SIGNALS}
MIN_BACKOFF = 0.1  # seconds before the first respawn of a worker that died young
MAX_BACKOFF = 1.0  # ... doubling up to this: at most one spawn per second per slot
STABLE_AFTER = 1.0  # a worker serving this long after ready did not "die young"
KILL_AFTER_STOP = 5.0  # seconds past graceful_timeout before a stop SIGKILLs what is left
FAILED = b"F"  # a worker that cannot start writes FAILED + one line of why to its ready pipe


class Ledger(Protocol):
    """What the master reports to the metrics (observability/metrics.MasterLedger)."""

    def worker_exited(self, pid: int) -> None: ...

    def tick(self) -> None: ...


class ListenerSet:
    """The listening sockets: one SO_REUSEPORT socket per worker slot and address, plus shared ones.

    The master opens a slot's reuse-port sockets before forking that slot's worker and keeps them
    open. The kernel balances new connections across the slots' queues, and because the master
    holds every queue, a worker that is replaced (crash or SIGHUP reload) hands its queue to its
    successor instead of dropping the connections waiting in it.
    """

    def __init__(self, settings: Settings, inherited: list[socket.socket] | None = None) -> None:
        self.reuse_port = settings.reuse_port and reuse_port_available()
        self.backlog = settings.backlog
        self.per_worker: list[BindSpec] = []
        self.slots: dict[int, list[socket.socket]] = {}
        self.shared: list[socket.socket] = list(inherited or ())  # systemd socket activation
        # systemd keeps its own copy of an inherited socket: connections queued on it wait for
        # the next start, so a stop must leave it taking them (no filter).
        self.inherited = bool(inherited)
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

    def retire_slot(self, slot: int) -> None:
        """The slot's worker is going away for good: refuse new connections on its sockets (the
        worker accepts what is queued, then closes the last copy) and drop the master's copies."""
        for sock in self.slots.pop(slot, ()):
            refuse_new_connections(sock)
            sock.close()

    def close_slot(self, slot: int) -> None:
        for sock in self.slots.pop(slot, ()):
            sock.close()

    def retire_all(self) -> None:
        """Stop: every socket refuses new connections, and the master's copies close."""
        for slot in list(self.slots):
            self.retire_slot(slot)
        for sock in self.shared:
            if not self.inherited:
                refuse_new_connections(sock)
            sock.close()
        self.shared = []

    def close(self) -> None:
        for slot in list(self.slots):
            self.close_slot(slot)
        for sock in self.shared:
            sock.close()
        self.shared = []


class WorkerProcess:
    __slots__ = ("pid", "worker_id", "generation", "ready_fd", "ready", "started", "ready_at", "failure")

    def __init__(self, pid: int, worker_id: int, generation: int, ready_fd: int) -> None:
        self.pid = pid
        self.worker_id = worker_id
        self.generation = generation  # RETIRING once it was told to stop (never replaced)
        self.ready_fd = ready_fd  # -1 once closed
        self.ready = False
        self.started = time.monotonic()
        self.ready_at = 0.0
        self.failure = ""  # what the worker said when it could not start


RETIRING = -1


@dataclass
class SlotBackoff:
    failures: int = 0  # consecutive young deaths
    next_spawn: float = 0.0  # monotonic time before which the slot is not respawned
    backed_off: bool = False  # a respawn of this slot was delayed since it last served steadily


@dataclass
class Reload:
    old_settings: Settings
    old_target: int
    old_generation: int
    deadline: float
    failure: str = ""  # set when a new worker died before reporting ready


@dataclass
class _Poller:
    """poll(2) over the wakeup pipe and the ready pipes of workers that are starting."""

    poll: select.poll = field(default_factory=_poll)
    fds: set[int] = field(default_factory=set)

    def add(self, fd: int) -> None:
        self.poll.register(fd, 1 | 8 | 16)  # POLLIN | POLLERR | POLLHUP
        self.fds.add(fd)

    def remove(self, fd: int) -> None:
        if fd in self.fds:
            self.fds.discard(fd)
            self.poll.unregister(fd)

    def wait(self, timeout: float) -> list[int]:
        try:
            return [fd for fd, _ in self.poll.poll(max(0, int(timeout * 1000)))]
        except InterruptedError:
            return []


class Supervisor:
    """Run `settings.workers` worker processes; `run()` returns the exit status."""

    def __init__(self, settings: Settings, reload_settings: Callable[[], Settings],
                 run_worker: Callable[[Settings, list[socket.socket], int, int], int],
                 inherited: list[socket.socket] | None = None, ledger: Ledger | None = None,
                 notifier: Notifier | None = None) -> None:
        self.settings = settings
        self.reload_settings = reload_settings
        self.run_worker = run_worker
        self.listeners = ListenerSet(settings, inherited)
        self.ledger = ledger
        self.notifier = notifier if notifier is not None else Notifier(os.environ)
        self.workers: dict[int, WorkerProcess] = {}
        self.generation = 0
        self.target = settings.workers
        self.backoff: dict[int, SlotBackoff] = {}
        self.logged_failures: set[str] = set()  # failure classes already logged
        self.reload: Reload | None = None
        self.queue: list[int] = []
        self.stopping = False
        self.stop_deadline = float("inf")
        self.announced = False  # READY=1 sent once every first-generation worker was ready
        self.wakeup_r, self.wakeup_w = os.pipe()
        os.set_blocking(self.wakeup_w, False)
        os.set_blocking(self.wakeup_r, False)
        self.poller = _Poller()
        self.poller.add(self.wakeup_r)

    # --- main loop ---

    def run(self) -> int:
        for name in SIGNALS:
            _signal(getattr(signal, "SIG" + name), self._queue_signal)
        log.info("master %d starting %d workers", os.getpid(), self.target)
        self._spawn_missing()
        next_tick = 0.0
        while True:
            self._wait(self._timeout())
            self._reap()
            while self.queue:
                signum = self.queue.pop(0)
                name = signal.Signals(signum).name[3:].lower()
                getattr(self, f"handle_{name}")()
            now = time.monotonic()
            if self.ledger is not None and now >= next_tick:
                self.ledger.tick()
                next_tick = now + 1.0
            if self.stopping:
                if not self.workers:
                    break
                if now > self.stop_deadline:
                    log.error("workers still running %.0f s after the stop; killing them", KILL_AFTER_STOP)
                    self._signal_workers(signal.SIGKILL)
                    self.stop_deadline = float("inf")
                continue
            self._settle_backoff(now)
            if self.reload is not None:
                self._advance_reload(now)
            self._spawn_missing()
            self._announce()
        self.listeners.close()
        _close(self.wakeup_r)
        _close(self.wakeup_w)
        log.info("master %d stopped", os.getpid())
        return 0

    def _timeout(self) -> float:
        """Sleep at most until the next respawn is due (and at least once a second)."""
        timeout = 1.0
        now = time.monotonic()
        for state in self.backoff.values():
            if state.next_spawn > now:
                timeout = min(timeout, state.next_spawn - now)
        return timeout

    def _queue_signal(self, signum: int, frame: object) -> None:
        if len(self.queue) < 10:
            self.queue.append(signum)
        try:
            os.write(self.wakeup_w, b"!")
        except OSError:
            pass

    def _wait(self, timeout: float) -> None:
        """Sleep until a signal arrives, a worker reports, or `timeout` passes."""
        for fd in self.poller.wait(timeout):
            try:
                data = os.read(fd, 512)
            except OSError:
                data = b""
            if fd == self.wakeup_r:
                continue
            worker = next((w for w in self.workers.values() if w.ready_fd == fd), None)
            if worker is None:
                continue
            if data.startswith(FAILED):
                worker.failure = data[1:].decode("utf-8", "replace").strip()
            elif data:
                worker.ready = True
                worker.ready_at = time.monotonic()
            self._close_ready_fd(worker)  # ready, failed, or EOF (died): nothing more comes

    def _close_ready_fd(self, worker: WorkerProcess) -> None:
        if worker.ready_fd >= 0:
            self.poller.remove(worker.ready_fd)
            _close(worker.ready_fd)
            worker.ready_fd = -1

    def _announce(self) -> None:
        if self.announced or self.reload is not None:
            return
        current = [w for w in self.workers.values() if w.generation == self.generation]
        if len(current) == self.target and all(w.ready for w in current):
            self.announced = True
            self.notifier.ready(self._status())

    def _status(self) -> str:
        ready = sum(1 for w in self.workers.values() if w.ready and w.generation == self.generation)
        return f"serving with {ready} of {self.target} workers (generation {self.generation})"

    # --- workers ---

    def _spawn_missing(self) -> None:
        now = time.monotonic()
        current = [w for w in self.workers.values() if w.generation == self.generation]
        used = {w.worker_id for w in current}
        for worker_id in range(self.target):
            if worker_id not in used and self.backoff.setdefault(worker_id, SlotBackoff()).next_spawn <= now:
                self._spawn(worker_id)

    def _spawn(self, worker_id: int) -> None:
        try:
            self.listeners.open_slot(worker_id)
        except ConfigError as exc:
            log.error("cannot start worker %d: %s", worker_id, exc)
            self.backoff[worker_id].next_spawn = time.monotonic() + MAX_BACKOFF
            return
        quiet = self.backoff[worker_id].failures > 0  # the first failure was already explained
        ready_r, ready_w = os.pipe()
        # Blocked across the fork: a signal meant for the new worker (SIGTTOU retiring it, a
        # stop) stays pending until it has reset the master's handlers, instead of being taken
        # by the master's handler copied into it (the worker would then serve on, unasked).
        signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNAL_NUMBERS)
        try:
            pid = _fork()
            if pid == 0:
                self._child(worker_id, ready_r, ready_w, quiet)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNAL_NUMBERS)
        _close(ready_w)
        self.workers[pid] = WorkerProcess(pid, worker_id, self.generation, ready_r)
        self.poller.add(ready_r)
        (log.debug if quiet else log.info)("spawned worker %d (pid %d)", worker_id, pid)

    def _child(self, worker_id: int, ready_r: int, ready_w: int, quiet: bool) -> None:
        """The forked worker: never returns."""
        code = 1
        try:
            import gevent

            gevent.reinit()  # the child needs its own event loop, not the master's
            for fd in [ready_r, self.wakeup_r, self.wakeup_w] + [w.ready_fd for w in self.workers.values()]:
                if fd >= 0:
                    _close(fd)
            for name in SIGNALS:
                _signal(getattr(signal, "SIG" + name), signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNAL_NUMBERS)  # what came meanwhile, now
            sockets = self.listeners.for_worker(worker_id)
            code = self.run_worker(self.settings, sockets, worker_id, ready_w)
        except BaseException as exc:
            # One line to the master, which logs each kind of failure once; a traceback only for
            # what is not an operational error (a bug), and only on the slot's first failure.
            reason = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:400]
            try:
                os.write(ready_w, FAILED + reason.encode("utf-8", "replace"))
            except OSError:
                pass
            if not quiet and not isinstance(exc, (OSError, ConfigError, ImportError, SystemExit)):
                log.exception("worker %d failed", worker_id)
        finally:
            os._exit(code)

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
            if worker.ready_fd >= 0:  # a failure line may still be in the pipe
                try:
                    data = os.read(worker.ready_fd, 512)
                except OSError:
                    data = b""
                if data.startswith(FAILED):
                    worker.failure = data[1:].decode("utf-8", "replace").strip()
                self._close_ready_fd(worker)
            if self.ledger is not None:
                self.ledger.worker_exited(pid)
            if worker.worker_id >= self.target and all(w.worker_id != worker.worker_id for w in self.workers.values()):
                self.listeners.close_slot(worker.worker_id)
            if self.stopping or worker.generation == RETIRING:
                continue
            code = os.waitstatus_to_exitcode(status)
            if self.reload is not None and worker.generation == self.generation:
                if not worker.ready:
                    self.reload.failure = f"worker {worker.worker_id} {self._why(worker, code)}"
                continue
            if worker.generation == self.generation:
                self._replaced(worker, code)

    @staticmethod
    def _why(worker: WorkerProcess, code: int) -> str:
        how = f"killed by signal {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"
        return f"failed to start: {worker.failure} ({how})" if worker.failure else how

    def _replaced(self, worker: WorkerProcess, code: int) -> None:
        """A current worker is gone: respawn now, or after a backoff when it died young."""
        now = time.monotonic()
        state = self.backoff.setdefault(worker.worker_id, SlotBackoff())
        if worker.ready and code == 0:
            log.info("worker %d (pid %d) exited by itself after serving; replacing it", worker.worker_id, worker.pid)
            state.failures, state.next_spawn = 0, 0.0
            return
        young = not worker.ready or now - worker.ready_at < STABLE_AFTER
        if not young or state.failures == 0 and worker.ready:
            # A worker that served and died (a kill, a crash) is replaced at once; only a second
            # quick death in a row (a crash loop after start) backs off.
            log.warning("worker %d (pid %d) %s; replacing it", worker.worker_id, worker.pid, self._why(worker, code))
            state.failures, state.next_spawn = (1 if young else 0), 0.0
            return
        state.failures += 1
        state.backed_off = True
        delay = min(MAX_BACKOFF, MIN_BACKOFF * 2 ** (state.failures - 1))
        state.next_spawn = now + delay
        why = self._why(worker, code)
        if why not in self.logged_failures:
            self.logged_failures.add(why)
            log.error("worker %d %s; respawning with backoff (at most one spawn per %.0f s per worker; "
                      "repeats of this failure are not logged)", worker.worker_id, why, MAX_BACKOFF)
        self.notifier.status(f"worker {worker.worker_id} {why}; retrying")

    def _settle_backoff(self, now: float) -> None:
        """A worker that stayed up `STABLE_AFTER` past ready clears its slot's failure count."""
        for worker in self.workers.values():
            state = self.backoff.get(worker.worker_id)
            if state is not None and state.failures and worker.ready and now - worker.ready_at >= STABLE_AFTER \
                    and worker.generation == self.generation:
                if state.backed_off:
                    log.info("worker %d serving again after %d failure(s)", worker.worker_id, state.failures)
                    self.logged_failures.clear()
                state.failures, state.backed_off = 0, False

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
        log.info("SIGQUIT: stopping now")
        self._stop(signal.SIGQUIT)

    def _stop(self, signum: int) -> None:
        """Every listening socket first stops taking new connections (a SYN-dropping filter, see
        listeners.refuse_new_connections) and the master drops its copies; then each worker
        accepts what is already queued on its copy and closes it. No connection is left in a
        queue whose last copy closes (which would reset it), and new clients are refused."""
        if self.reload is not None:
            log.info("reload of generation %d abandoned by the stop", self.generation)
            self.reload = None
        self.stopping = True
        self.stop_deadline = time.monotonic() + self.settings.graceful_timeout + KILL_AFTER_STOP
        self.notifier.stopping("stopping: draining workers" if signum == signal.SIGTERM else "stopping now")
        self.listeners.retire_all()
        self._signal_workers(signum)

    def handle_usr1(self) -> None:
        from x15g.observability.logs import reopen_logs

        reopen_logs()
        self._signal_workers(signal.SIGUSR1)

    def handle_ttin(self) -> None:
        if self.stopping:
            return
        if self.reload is not None:
            log.warning("SIGTTIN ignored: a reload is in progress")
            return
        self.target += 1
        log.info("SIGTTIN: %d workers", self.target)

    def handle_ttou(self) -> None:
        if self.target <= 1 or self.reload is not None or self.stopping:
            return
        self.target -= 1
        log.info("SIGTTOU: %d workers", self.target)
        self.listeners.retire_slot(self.target)
        self.backoff.pop(self.target, None)
        for pid, worker in list(self.workers.items()):
            if worker.generation == self.generation and worker.worker_id >= self.target:
                worker.generation = RETIRING  # draining; not replaced
                os.kill(pid, signal.SIGTERM)

    def handle_hup(self) -> None:
        """Reload: start the new generation; `_advance_reload` commits or rolls back."""
        if self.stopping:
            return
        if self.reload is not None:
            log.warning("SIGHUP ignored: generation %d is still starting", self.generation)
            return
        try:
            settings = self.reload_settings()
        except (ConfigError, SystemExit) as exc:
            log.error("SIGHUP: configuration not reloaded: %s", exc)
            return
        if settings.bind != self.settings.bind or settings.reuse_port != self.settings.reuse_port:
            log.warning("SIGHUP: bind changes need a restart; keeping %s", ", ".join(self.settings.bind))
            settings = _replace(settings, bind=self.settings.bind, reuse_port=self.settings.reuse_port)
        self.reload = Reload(self.settings, self.target, self.generation,
                             time.monotonic() + settings.graceful_timeout)
        self.settings = settings
        self.generation += 1
        self.target = settings.workers
        for state in self.backoff.values():
            state.next_spawn = 0.0
        log.info("SIGHUP: starting generation %d (%d workers)", self.generation, self.target)
        self.notifier.reloading(f"reloading: starting generation {self.generation}")
        self._spawn_missing()

    def _advance_reload(self, now: float) -> None:
        reload = self.reload
        assert reload is not None
        fresh = [w for w in self.workers.values() if w.generation == self.generation]
        if reload.failure or now > reload.deadline:
            why = reload.failure or (f"not every worker was ready within --graceful-timeout "
                                     f"{self.settings.graceful_timeout:g} s")
            log.error("SIGHUP: generation %d %s; stopping it, generation %d keeps serving",
                      self.generation, why, reload.old_generation)
            for worker in fresh:
                worker.generation = RETIRING
                try:
                    os.kill(worker.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            self.settings, self.target, self.generation = reload.old_settings, reload.old_target, reload.old_generation
            self._retire_extra_slots()
            self.reload = None
            self.notifier.ready(f"reload failed: {why}; " + self._status())
            return
        if len(fresh) == self.target and all(w.ready for w in fresh):
            old = {w.generation for w in self.workers.values() if w.generation not in (self.generation, RETIRING)}
            log.info("SIGHUP: generation %d ready; draining the previous one", self.generation)
            for generation in old:
                self._signal_workers(signal.SIGTERM, generation)
            for worker in self.workers.values():
                if worker.generation in old:
                    worker.generation = RETIRING
            self._retire_extra_slots()
            self.reload = None
            self.notifier.ready(self._status())

    def _retire_extra_slots(self) -> None:
        """Slots beyond the worker count lose their master copy now (their draining workers close
        the last one), so no connection waits in a queue nobody will accept from."""
        for slot in [s for s in self.listeners.slots if s >= self.target]:
            self.listeners.retire_slot(slot)


def _replace(settings: Settings, **changes: object) -> Settings:
    import dataclasses

    return dataclasses.replace(settings, **changes)
