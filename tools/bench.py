"""tools/bench: x15g side by side with nginx and Python peers, measured with wrk in one run.

Every server serves the same temporary document root on its own loopback port, pinned to one CPU
(taskset), while wrk runs pinned to the other. Per scenario each server gets a warm-up run, then
`--reps` measurements in alternating server order; the table shows medians and the ratio to nginx
measured in the same run, because on small shared machines only side-by-side ratios are stable.

It installs nothing: a missing wrk stops it with the install command, a missing peer is skipped.
Install everything with `sudo tools/install-bench-deps.sh` (apt-get install -y wrk nginx curl, and
granian + gunicorn into .venv); `--plot` needs matplotlib (`.venv/bin/pip install matplotlib`).
Columns: CPU server/wrk is the share of one core each used during the run (a server well below
100% was starved by other load or waited on the client); req/CPU-s is requests per CPU-second of the
server, steadier than req/s on a busy machine.

    tools/bench --duration 10s --reps 3
    tools/bench --servers x15g,nginx --scenarios 1k,mix --json out.json --plot out.png
    tools/bench --scenarios isolation --servers gunicorn,granian   # what --isolate costs
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from tools import bench_servers as srv
from tools import bench_workload as wl

# Targets: x15g's req/s as a multiple of nginx's (issue 3's four, raised by issue 11, and issue
# 11's real-traffic scenarios).
TARGETS = {"1k": 1.20, "mix": 1.00, "1m": 1.0, "1k-close": 1.00, "unique": 0.60, "browser": 0.60}
# App scenarios (issue 12): every WSGI server hosts the same app of tools/peers/hello_wsgi.py, and
# x15g's req/s is compared with granian's measured in the same run.
APP_SCENARIOS = {"wsgi": ("hello_wsgi:app", "/"), "flask": ("hello_wsgi:flask_app", "/")}
APP_TARGETS = {"wsgi": 0.60, "flask": 0.60}
APP_REFERENCE = "granian"
# Measured on request: a browser revalidating a cached 1 KiB file, the SPECweb99-like dynamic GETs
# (x15g only), and the app scenarios.
# What isolation costs (issue 14): tools/isolate_bench.py's own table, run with these options.
ISOLATION = "isolation"
EXTRA_SCENARIOS = ("1k-304", "dynamic", *APP_SCENARIOS, ISOLATION)
PYWSGI_TARGET = 20.0
PYWSGI_TARGET_SCENARIOS = ("1k", "mix")


@dataclass(frozen=True)
class Scenario:
    """One workload: a URL path (or the mix script), connections and extra request headers."""

    name: str
    path: str
    conns: int
    headers: tuple[str, ...] = ()
    mix: bool = False
    revalidate: bool = False  # send If-None-Match with the server's own ETag: every answer a 304
    unique: bool = False  # every request head new (a counter in the query)
    browser: bool = False  # the mix with browser-like heads from many visitors
    dynamic: bool = False  # SPECweb99-like dynamic GET and CAD (x15g's --specweb module only)


def scenarios(conns: int) -> dict[str, Scenario]:
    """The four scenarios of issue 3, all keep-alive with `conns` connections except 1k-close."""
    return {
        "1k": Scenario("1k", wl.ONE_K, conns),
        "mix": Scenario("mix", "/", conns, mix=True),
        "1m": Scenario("1m", wl.ONE_M, conns),
        "1k-close": Scenario("1k-close", wl.ONE_K, conns, headers=("Connection: close",)),
        "1k-304": Scenario("1k-304", wl.ONE_K, conns, revalidate=True),
        "unique": Scenario("unique", wl.ONE_K, conns, unique=True),
        "browser": Scenario("browser", "/", conns, browser=True),
        "dynamic": Scenario("dynamic", wl.DYNAMIC, conns, dynamic=True),
        **{name: Scenario(name, path, conns) for name, (_, path) in APP_SCENARIOS.items()},
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="tools/bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--servers", default=",".join(srv.ALL_SERVERS),
                   help="comma-separated servers (default: %(default)s); missing peers are skipped")
    p.add_argument("--scenarios", default=",".join(TARGETS),
                   help=f"comma-separated (default: %(default)s; also {', '.join(EXTRA_SCENARIOS)})")
    p.add_argument("--duration", default="10s", help="wrk duration of one measurement (default: %(default)s)")
    p.add_argument("--warmup", default="2s", help="wrk duration of the warm-up run per server and scenario, 0 for none (default: %(default)s)")
    p.add_argument("--reps", type=int, default=3, help="measurements per server and scenario (default: 3)")
    p.add_argument("--connections", type=int, default=50, help="wrk connections (default: 50)")
    p.add_argument("--threads", type=int, default=1, help="wrk threads (default: 1, on the client CPU)")
    p.add_argument("--mix-dirs", default="10",
                   help="directories of the mix file set (5 MB each), or 'auto' for the SPECweb99-like "
                        "count for --connections (default: %(default)s)")
    p.add_argument("--server-cpu", default="0", help="CPU list for the servers (taskset -c), or 'none'")
    p.add_argument("--client-cpu", default="1", help="CPU list for wrk (taskset -c), or 'none'")
    p.add_argument("--x15g-args", default="", help="extra arguments for x15g, e.g. \"--cache-entries 100\"")
    p.add_argument("--json", metavar="PATH", help="also write all runs and medians as JSON")
    p.add_argument("--plot", metavar="PNG", help="bar chart of ratios to nginx (needs matplotlib)")
    p.add_argument("--from-json", metavar="PATH",
                   help="run nothing: print the table (and --plot the chart) of a run saved with --json")
    p.add_argument("--keep", action="store_true", help="keep the temporary root, configs and server logs")
    args = p.parse_args(argv)
    args.server_list = [s for s in args.servers.split(",") if s]
    args.scenario_list = [s for s in args.scenarios.split(",") if s]
    known = (*TARGETS, *EXTRA_SCENARIOS)
    unknown = set(args.scenario_list) - set(known)
    if unknown:
        p.error(f"unknown scenarios: {', '.join(sorted(unknown))} (known: {', '.join(known)})")
    for cpu in ("server_cpu", "client_cpu"):
        if getattr(args, cpu) == "none":
            setattr(args, cpu, None)
    return args


def seconds(duration: str) -> float:
    """wrk's duration syntax (10, 10s, 2m, 1h) in seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    if duration[-1:] in units:
        return float(duration[:-1]) * units[duration[-1]]
    return float(duration)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk runs are our only reaped children
    return usage.ru_utime + usage.ru_stime


def run_wrk(args: argparse.Namespace, sc: Scenario, port: int, duration: str, script: str,
            server_pgid: int | None = None) -> dict:
    """One wrk run against 127.0.0.1:`port`; returns the parsed summary with req/s and MiB/s, and
    the CPU share used by wrk and by the server's process group (100% = one core busy)."""
    wrk = srv.find_tool("wrk")
    argv = srv.pin(args.client_cpu) + [wrk, f"-t{args.threads}", f"-c{sc.conns}", f"-d{duration}",
                                       "--timeout", "5s", "-s", script]
    headers = list(sc.headers)
    if sc.revalidate:  # each server's own validator, as a browser would have stored it
        headers.append(f"If-None-Match: {srv.etag_of(port, sc.path)}")
    for header in headers:
        argv += ["-H", header]
    argv.append(f"http://127.0.0.1:{port}{sc.path}")
    client_before = _children_cpu()
    server_before = srv.group_cpu_seconds(server_pgid) if server_pgid else 0.0
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=seconds(duration) + 60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    server_cpu = srv.group_cpu_seconds(server_pgid) - server_before if server_pgid else 0.0
    client_cpu = _children_cpu() - client_before
    line = next((ln for ln in out.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary (exit {proc.returncode}):\n{out[-2000:]}")
    res = json.loads(line.split(" ", 1)[1])
    secs = res["duration_us"] / 1e6
    res["rps"] = res["requests"] / secs
    res["mibps"] = res["bytes"] / secs / 2**20
    res["socket_errors"] = res["connect"] + res["read"] + res["write"] + res["timeout"]
    res["client_cpu_pct"] = 100.0 * client_cpu / secs
    res["server_cpu_pct"] = 100.0 * server_cpu / secs
    # requests per CPU-second of the server: less sensitive than req/s to other load on its CPU
    res["req_per_cpu_s"] = res["requests"] / server_cpu if server_cpu > 0 else 0.0
    return res


def start_all(args: argparse.Namespace, ctx: srv.Context, checks: dict, names: list[str]) -> dict:
    """Start and check servers `names`; returns name -> (Running, {scenario: problem|None})."""
    started = {}
    for name in names:
        try:
            running = srv.start_server(name, ctx)
        except srv.Unavailable as exc:
            print(f"SKIP {name}: {exc}", flush=True)
            continue
        try:
            srv.get(running.port, wl.ONE_K)
        except (OSError, srv.http.client.HTTPException) as exc:
            srv.stop_server(running)
            print(f"SKIP {name}: no answer to GET {wl.ONE_K} ({exc!r}); its log:\n{srv.log_tail(running.log_path)}")
            continue
        problems = {sc: check(running) for sc, check in checks.items()}
        bad = {sc: why for sc, why in problems.items() if why}
        for sc, why in bad.items():
            print(f"SKIP {name} for {sc}: wrong answer: {why}", flush=True)
        if bad and len(bad) == len(problems):
            srv.stop_server(running)
            print(f"SKIP {name}: no scenario answered correctly; its log:\n{srv.log_tail(running.log_path)}")
            continue
        print(f"started {name} on port {running.port} (pid {running.proc.pid})", flush=True)
        started[name] = (running, problems)
    return started


def dynamic_check(name: str, port: int, paths: list[str]) -> str | None:
    """The dynamic scenario needs x15g's SPECweb99-like module: a 200 for a dynamic GET."""
    if name != "x15g":
        return "no SPECweb99-like dynamic module"
    try:
        status, _ = srv.get(port, f"{wl.DYNAMIC}?{paths[0]}")
    except (OSError, srv.http.client.HTTPException) as exc:
        return f"GET {wl.DYNAMIC}: {exc!r}"
    return None if status == 200 else f"GET {wl.DYNAMIC}: status {status}"


def answer_checks(root: wl.DocRoot, seq: list, names: list[str]) -> dict:
    """Per scenario: the paths every server must answer byte for byte before it is measured."""
    mix_samples = []
    for cls in range(4):  # one file of each class that the stream requests
        hit = next((t for t in seq if t[1] == cls), None)
        if hit:
            mix_samples.append(wl.mix_path(*hit))
    table = {"1k": ([wl.ONE_K], None), "1m": ([wl.ONE_M], None), "mix": (mix_samples, None),
             "unique": ([wl.ONE_K], None), "browser": (mix_samples, None), "dynamic": (mix_samples, None),
             "1k-close": ([wl.ONE_K], {"Connection": "close"}), "1k-304": ([wl.ONE_K], srv.REVALIDATE)}
    checks = {sc: (lambda running, paths=table[sc][0], headers=table[sc][1]:
                   srv.check_answers(running, root.path, paths, headers)) for sc in names}
    if "dynamic" in checks:
        checks["dynamic"] = lambda running: dynamic_check(running.name, running.port, mix_samples)
    return checks


def app_check(running: srv.Running, spec: str, path: str) -> str | None:
    """GET `path` from an app server: None when it answers 200 with the app's own body."""
    import importlib

    module, _, name = spec.partition(":")
    if srv.PEERS not in sys.path:
        sys.path.insert(0, srv.PEERS)
    expected = importlib.import_module(module).EXPECTED[name]
    try:
        status, body = srv.get(running.port, path)
    except (OSError, srv.http.client.HTTPException) as exc:
        return f"GET {path}: {exc!r}"
    if status != 200 or body != expected:
        return f"GET {path}: status {status}, {len(body)} bytes (expected 200, {len(expected)} bytes)"
    return None


def measure(args: argparse.Namespace, started: dict, scripts: dict, names: list[str]) -> dict:
    """Warm up, then run `reps` alternating rounds per scenario of `names`; returns
    {(scenario, server): [runs]}."""
    runs: dict[tuple[str, str], list[dict]] = {}
    all_sc = scenarios(args.connections)
    for sc_name in names:
        sc = all_sc[sc_name]
        names = [n for n in started if not started[n][1].get(sc_name)]
        for name in names if seconds(args.warmup) > 0 else ():
            print(f"[{sc_name}] warm-up {name} ({args.warmup})", flush=True)
            run_wrk(args, sc, started[name][0].port, args.warmup, scripts[sc_name])
        for rep in range(args.reps):
            order = names if rep % 2 == 0 else names[::-1]
            for name in order:
                running = started[name][0]
                res = run_wrk(args, sc, running.port, args.duration, scripts[sc_name], running.proc.pid)
                runs.setdefault((sc_name, name), []).append(res)
                print(f"[{sc_name}] rep {rep + 1}/{args.reps} {name:9s} {res['rps']:10.0f} req/s "
                      f"{res['mibps']:9.1f} MiB/s  non-2xx {res['status']} socket errors {res['socket_errors']}  "
                      f"CPU server {res['server_cpu_pct']:.0f}% wrk {res['client_cpu_pct']:.0f}%",
                      flush=True)
    return runs


def summarize(runs: dict) -> list[dict]:
    """Medians per (scenario, server), ratios to nginx's median in the same run, summed errors."""
    rows = []
    for (sc, name), rs in runs.items():
        rps = [r["rps"] for r in rs]
        med = statistics.median(rps)
        rows.append({"scenario": sc, "server": name, "reps": len(rs), "rps": med,
                     "mibps": statistics.median(r["mibps"] for r in rs),
                     "spread_pct": 100.0 * (max(rps) - min(rps)) / med if med else 0.0,
                     "p99_ms": statistics.median(r["p99_us"] for r in rs) / 1000.0,
                     "server_cpu_pct": statistics.median(r["server_cpu_pct"] for r in rs),
                     "client_cpu_pct": statistics.median(r["client_cpu_pct"] for r in rs),
                     "req_per_cpu_s": statistics.median(r["req_per_cpu_s"] for r in rs),
                     "non2xx": sum(r["status"] for r in rs),
                     "socket_errors": sum(r["socket_errors"] for r in rs),
                     "socket_error_kinds": {k: sum(r[k] for r in rs) for k in ("connect", "read", "write", "timeout")}})
    by_key = {(r["scenario"], r["server"]): r for r in rows}
    for r in rows:
        app = r["scenario"] in APP_SCENARIOS
        r["reference"] = APP_REFERENCE if app else "nginx"
        ref = by_key.get((r["scenario"], r["reference"]))
        r["ratio"] = r["rps"] / ref["rps"] if ref and ref["rps"] else None
        r["ratio_nginx"] = None if app else r["ratio"]
        r["target"] = (APP_TARGETS if app else TARGETS).get(r["scenario"]) if r["server"] == "x15g" else None
        r["meets_target"] = (r["ratio"] >= r["target"]
                             if r["target"] is not None and r["ratio"] is not None else None)
    return rows


def socket_errors(row: dict) -> str:
    """Socket error total with its non-zero kinds, e.g. `120 (read 120)`."""
    kinds = ", ".join(f"{k} {n}" for k, n in row["socket_error_kinds"].items() if n)
    return f"{row['socket_errors']} ({kinds})" if kinds else "0"


def markdown(rows: list[dict], header: str) -> str:
    """The result table in Markdown, scenario by scenario, plus the x15g/pywsgi ratios."""
    out = [header, "", "| scenario | server | req/s | MiB/s | × ref | x15g target | spread | p99 ms "
           "| CPU server/wrk | req/CPU-s | server CPU µs/req | non-2xx | socket errors |",
           "|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        ratio = f"{r['ratio']:.2f}" if r["ratio"] is not None else "–"
        if r["ratio"] is not None and r["reference"] != "nginx":
            ratio += f" (× {r['reference']})"
        target = ""
        if r["target"] is not None:
            target = f"≥ {r['target']:.2f} {'met' if r['meets_target'] else 'NOT met'}"
        out.append(f"| {r['scenario']} | {r['server']} | {r['rps']:,.0f} | {r['mibps']:,.1f} | {ratio} "
                   f"| {target} | {r['spread_pct']:.0f}% | {r['p99_ms']:.2f} "
                   f"| {r['server_cpu_pct']:.0f}%/{r['client_cpu_pct']:.0f}% | {r['req_per_cpu_s']:,.0f} "
                   f"| {1e6 / r['req_per_cpu_s'] if r['req_per_cpu_s'] else 0:.1f} | {r['non2xx']} "
                   f"| {socket_errors(r)} |")
    by_key = {(r["scenario"], r["server"]): r for r in rows}
    out.append("")
    for sc in dict.fromkeys(r["scenario"] for r in rows):
        x, p, q = (by_key.get((sc, n)) for n in ("x15g", "pywsgi", "pywsgi-nodelay"))
        if x and p and p["rps"]:
            # the 20x goal is about request handling; the sendfile-bound and close scenarios have none
            target = ""
            if sc in PYWSGI_TARGET_SCENARIOS:
                ok = "met" if x["rps"] / p["rps"] >= PYWSGI_TARGET else "NOT met"
                target = f" (target ≥ {PYWSGI_TARGET:.0f}×, {ok})"
            extra = f"; {x['rps'] / q['rps']:.1f}× pywsgi-nodelay" if q and q["rps"] else ""
            out.append(f"{sc}: x15g = {x['rps'] / p['rps']:.1f}× gevent.pywsgi{target}{extra}")
    return "\n".join(out)


def plot(rows: list[dict], path: str, title: str = "") -> None:
    """Grouped bars of req/s relative to nginx per scenario, each labelled with its ratio, x15g's
    targets as dashed marks; `title` says when and where it was measured."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("--plot: matplotlib is not installed (.venv/bin/pip install matplotlib); no plot written")
        return
    scs = list(dict.fromkeys(r["scenario"] for r in rows))
    servers = list(dict.fromkeys(r["server"] for r in rows))
    by_key = {(r["scenario"], r["server"]): r for r in rows}
    width = 0.8 / max(len(servers), 1)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for i, name in enumerate(servers):
        xs = [j + i * width for j in range(len(scs))]
        ys = [(by_key.get((sc, name)) or {}).get("ratio") or 0 for sc in scs]
        bars = ax.bar(xs, ys, width, label=name)
        ax.bar_label(bars, labels=[f"{y:.2f}" if y else "" for y in ys], fontsize=7, padding=1)
    for j, sc in enumerate(scs):
        goal = TARGETS.get(sc) or APP_TARGETS.get(sc)
        if goal:
            ax.hlines(goal, j - width / 2, j + 0.8 - width / 2, colors="black", linestyles="dashed")
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(scs))], scs)
    ax.set_ylabel("req/s relative to nginx (app scenarios: to granian; dashed: x15g target)")
    ax.set_ylim(0, max([r.get("ratio") or 0 for r in rows] + [1.0]) * 1.15)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=len(servers), frameon=False)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot written to {path}")


def machine() -> dict:
    """What the figures were measured on."""
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return {"cpu": cpu, "cpus": os.cpu_count(), "kernel": platform.release(), "python": platform.python_version()}


def run(args: argparse.Namespace, tmp: str) -> list[dict]:
    """Build the root, start the servers, measure, and stop every server whatever happens."""
    dirs = wl.directory_count(args.connections) if args.mix_dirs == "auto" else int(args.mix_dirs)
    root_dir = os.path.join(tmp, "root")
    os.makedirs(root_dir)
    uses_mix = bool({"mix", "browser", "dynamic"} & set(args.scenario_list))
    root = wl.build_docroot(root_dir, dirs if uses_mix else 0)
    seq = wl.mix_sequence(max(dirs, 1))
    scripts = {}
    for sc in args.scenario_list:
        scripts[sc] = os.path.join(tmp, f"{sc}.lua")
        with open(scripts[sc], "w") as f:
            if sc == "mix":
                f.write(wl.lua_mix_script(seq))
            elif sc == "browser":
                f.write(wl.lua_browser_script(seq))
            elif sc == "dynamic":
                f.write(wl.lua_dynamic_script(seq))
            elif sc == "unique":
                f.write(wl.lua_unique_script(wl.ONE_K))
            else:
                f.write(wl.lua_done_script())
    print(f"document root {root_dir}", flush=True)
    if uses_mix:
        print(f"mix: {root.mix_dirs} directories ({root.mix_bytes / 1e6:.0f} MB), a stream of {len(seq)} URLs, "
              f"mean body {wl.mean_response_size(seq) / 1000:.1f} KB", flush=True)
    static = [sc for sc in args.scenario_list if sc not in APP_SCENARIOS]
    runs: dict = {}
    if static:
        x15g_args = shlex.split(args.x15g_args)
        if "dynamic" in static:
            from x15g.specweb.fileset_cli import write_state

            write_state(root_dir, wl.DYNAMIC_USERS)  # next to the root, where --specweb looks
            x15g_args.append("--specweb")
        ctx = srv.Context(root_dir, tmp, args.server_cpu, x15g_args)
        runs.update(measure_group(args, ctx, answer_checks(root, seq, static), args.server_list, scripts, static))
    for sc in args.scenario_list:
        if sc in APP_SCENARIOS:  # each app scenario starts its servers with its own app
            spec, path = APP_SCENARIOS[sc]
            ctx = srv.Context(root_dir, tmp, args.server_cpu, shlex.split(args.x15g_args), app=spec)
            names = [n for n in args.server_list if n in srv.APP_SERVERS]
            checks = {sc: lambda running, spec=spec, path=path: app_check(running, spec, path)}
            runs.update(measure_group(args, ctx, checks, names, scripts, [sc]))
    return summarize(runs)


def measure_group(args: argparse.Namespace, ctx: srv.Context, checks: dict, names: list[str], scripts: dict,
                  scenario_names: list[str]) -> dict:
    """Start servers `names`, measure `scenario_names` on them, stop every one whatever happens."""
    started = {}
    try:
        started = start_all(args, ctx, checks, names)
        reference = APP_REFERENCE if ctx.app else "nginx"
        if reference not in started:
            print(f"note: {reference} is not running, so there are no ratios to {reference}", flush=True)
        return measure(args, started, scripts, scenario_names)
    finally:
        for running, _ in started.values():
            srv.stop_server(running)


def main(argv: list[str] | None = None) -> int:
    """Entry point: returns 0 when the run completed (targets are reported, not enforced)."""
    args = parse_args(argv)
    if args.from_json:
        return replay(args)
    if srv.find_tool("wrk") is None:
        print(f"wrk is not installed; {srv.INSTALL_HINT}", file=sys.stderr)
        return 2
    if args.server_cpu is not None and srv.find_tool("taskset") is None:
        print("taskset not found (apt-get install -y util-linux): running unpinned", file=sys.stderr)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    if ISOLATION in args.scenario_list:
        code = isolation(args)
        args.scenario_list.remove(ISOLATION)
        if not args.scenario_list or code:
            return code
    tmp = tempfile.mkdtemp(prefix="x15g-bench-")
    started_at = time.strftime("%Y-%m-%d %H:%M:%S")
    load_before = os.getloadavg()[0]
    try:
        rows = run(args, tmp)
    except KeyboardInterrupt:
        print("interrupted: all servers stopped", file=sys.stderr)
        return 130
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    m = machine()
    command = "tools/bench " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    header = (f"### tools/bench, {started_at}\n\n`{command}`\n\n{m['cpu']}, {m['cpus']} CPUs, Linux {m['kernel']}, "
              f"Python {m['python']}; servers on CPU {args.server_cpu}, wrk ({args.threads} thread, "
              f"{args.connections} connections) on CPU {args.client_cpu}; median of {args.reps} × {args.duration} "
              f"after a {args.warmup} warm-up, servers in alternating order. Load average "
              f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after (other work on the machine skews "
              f"absolute figures; the ratios were measured side by side).")
    print()
    print(markdown(rows, header))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"command": command, "started": started_at, "machine": m, "load_before": load_before,
                       "load_after": os.getloadavg()[0], "rows": rows}, f, indent=2)
        print(f"JSON written to {args.json}")
    if args.plot:
        plot(rows, args.plot, title=f"tools/bench, {started_at}, {m['cpu']}, {m['cpus']} CPUs, load {load_before:.1f}")
    return 0


def isolation(args: argparse.Namespace) -> int:
    """The `isolation` scenario: in-process against --isolate for the SPECweb99-like dynamic GET
    mix and a 1 KiB WSGI hello, and nginx proxying to the app servers among --servers (one table,
    from tools/isolate_bench.py, which measures the same way: pinned, alternating, medians)."""
    from tools import isolate_bench

    peers = [s for s in args.server_list if s in ("gunicorn", "granian")]
    try:
        return isolate_bench.main(["--duration", args.duration, "--warmup", args.warmup, "--reps", str(args.reps),
                                   "--server-cpu", args.server_cpu, "--client-cpu", args.client_cpu,
                                   "--threads", str(args.threads), "--peers", ",".join(peers), "--no-hold"])
    except KeyboardInterrupt:
        print("interrupted: all servers stopped", file=sys.stderr)
        return 130


def replay(args: argparse.Namespace) -> int:
    """--from-json: the table and chart of a saved run, without running anything."""
    with open(args.from_json) as f:
        saved = json.load(f)
    m = saved["machine"]
    for row in saved["rows"]:  # runs saved before the app scenarios had only ratios to nginx
        row.setdefault("reference", "nginx")
        row.setdefault("ratio", row.get("ratio_nginx"))
    when = f"{saved['started']}, {m['cpu']}, {m['cpus']} CPUs, load {saved['load_before']:.1f}"
    print(markdown(saved["rows"], f"### tools/bench, {when}\n\n`{saved['command']}`"))
    if args.plot:
        plot(saved["rows"], args.plot, title=f"tools/bench, {when}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
