"""The one set of helpers for tests and tools (`python -m tools.X` imports them too).

- `server`: `ServerProcess` (a real x15g child on 127.0.0.1, stopped by PID), `free_port`,
  `raw_exchange`, `REPO`;
- `waiting`: `wait_for` (poll a condition, fail loudly on timeout), `worker_pids`, `wait_workers`,
  `fd_count` (from /proc);
- `clients`: plain HTTP clients (`get`, `fetch`, `fetch_json`), raw-socket reads, `Hammer`;
- `stopload`: POST clients that classify every request written around a stop or reload;
- `docroots`: the small document roots the fixtures serve;
- `corpus`: loaders of the raw request corpora (`X15G_CORPUS`);
- `install`: a copy of x15g's runtime that a dropped user can read (privilege tests).
"""
