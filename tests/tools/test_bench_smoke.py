"""Smoke tests of tools/bench: the CLI answers --help, the document root and the wrk Lua scripts are
built right (pure parts, no wrk needed), and, where wrk and nginx are installed, a one-second run
prints the table."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.support.server import REPO
from tools import bench, bench_servers
from tools import bench_workload as wl

TOOLS = os.path.join(REPO, "tools")

pytestmark = pytest.mark.timeout(60)


def test_help_runs_through_the_wrapper():
    out = subprocess.run([os.path.join(TOOLS, "bench"), "--help"], capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    for flag in ("--servers", "--scenarios", "--duration", "--reps", "--json", "--plot", "--x15g-args"):
        assert flag in out.stdout


@pytest.mark.parametrize("cls, num, size", [(0, 0, 102), (0, 8, 921), (1, 0, 1024), (2, 4, 51200), (3, 8, 921600)])
def test_file_sizes_follow_the_spec(cls, num, size):
    assert wl.file_size(cls, num) == size
    data = wl.mix_file_bytes(3, cls, num)
    assert len(data) == size and data.startswith(b"%9d file_set/dir00003/class%d_%d\n" % (size, cls, num))


def test_docroot_has_the_fixed_files_and_the_file_set(tmp_path):
    root = wl.build_docroot(str(tmp_path), mix_dirs=2)
    assert os.path.getsize(tmp_path / "1k.bin") == 1024
    assert os.path.getsize(tmp_path / "1m.bin") == 1024 * 1024
    files = sorted(os.listdir(tmp_path / "file_set" / "dir00001"))
    assert len(files) == 36 and files[0] == "class0_0"
    assert root.mix_bytes == 2 * 5_119_484  # §2.3: each directory holds 5,119,484 bytes


def test_mix_sequence_is_deterministic_and_follows_the_shares():
    seq = wl.mix_sequence(10)
    assert seq == wl.mix_sequence(10) and len(seq) == wl.MIX_URLS
    share = [sum(1 for _, c, _ in seq if c == cls) / len(seq) for cls in range(4)]
    for got, want in zip(share, wl.CLASS_WEIGHTS):
        assert abs(got - want) < 0.02
    files = [f for _, _, f in seq]
    assert max(set(files), key=files.count) == 4  # FILE_ORDER rank 1
    dirs = [d for d, _, _ in seq]
    assert dirs.count(0) > dirs.count(1) > dirs.count(9)
    assert 8_000 < wl.mean_response_size(seq) < 25_000  # the spec's mix averages about 14.7 KB


def test_mix_lua_script_replays_the_sequence():
    seq = wl.mix_sequence(3, count=100)
    script = wl.lua_mix_script(seq)
    paths = sorted({wl.mix_path(*t) for t in seq})
    assert all(f'"{p}",' in script for p in paths)
    body = script.split("local seq = {", 1)[1].split("}", 1)[0]
    order = [int(x) for x in body.replace("\n", "").split(",") if x.strip()]
    assert [paths[i - 1] for i in order] == [wl.mix_path(*t) for t in seq]
    assert "function request()" in script and "function done(" in script
    assert "function request()" not in wl.lua_done_script()


def test_nginx_config_matches_the_brief(tmp_path):
    ctx = bench_servers.Context(str(tmp_path), str(tmp_path), "0")
    conf = bench_servers.nginx_conf(ctx, 8123)
    for line in ("worker_processes 1;", "sendfile on;", "tcp_nopush on;", "access_log off;",
                 "listen 127.0.0.1:8123", f"root {tmp_path};", "open_file_cache max="):
        assert line in conf


def test_summary_ratios_and_table():
    run = {"duration_us": 1_000_000, "bytes": 2**20, "connect": 0, "read": 2, "write": 0, "status": 1,
           "timeout": 0, "p50_us": 100, "p99_us": 900, "socket_errors": 2, "server_cpu_pct": 99.0,
           "client_cpu_pct": 60.0, "req_per_cpu_s": 5000.0}
    runs = {("1k", "nginx"): [dict(run, rps=1000.0, mibps=1.0)],
            ("1k", "x15g"): [dict(run, rps=700.0, mibps=0.7), dict(run, rps=500.0, mibps=0.5),
                             dict(run, rps=600.0, mibps=0.6)]}
    rows = {r["server"]: r for r in bench.summarize(runs)}
    assert rows["x15g"]["rps"] == 600.0 and rows["x15g"]["ratio_nginx"] == pytest.approx(0.6)
    assert rows["x15g"]["meets_target"] is False and rows["nginx"]["target"] is None
    table = bench.markdown(list(rows.values()), "# t")
    assert "| 1k | x15g | 600 |" in table and "NOT met" in table and "6 (read 6)" in table
    assert "99%/60%" in table


@pytest.mark.skipif(not (bench_servers.find_tool("wrk") and bench_servers.find_tool("nginx")),
                    reason="needs wrk and nginx (tools/install-bench-deps.sh)")
def test_short_run_against_nginx_and_pywsgi(tmp_path):
    out_json = tmp_path / "b.json"
    cmd = [os.path.join(TOOLS, "bench"), "--servers", "nginx,pywsgi", "--scenarios", "mix",
           "--duration", "1s", "--warmup", "0", "--reps", "1", "--mix-dirs", "2", "--json", str(out_json)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=50)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "| mix | nginx |" in out.stdout and "| mix | pywsgi |" in out.stdout
    rows = json.loads(out_json.read_text())["rows"]
    assert {(r["scenario"], r["server"]) for r in rows} == {("mix", "nginx"), ("mix", "pywsgi")}
    assert all(r["rps"] > 0 and r["non2xx"] == 0 for r in rows)


def test_idle_connections_help_and_proc_helpers():
    from tools import idle_connections as idle

    out = subprocess.run([sys.executable, "-m", "tools.idle_connections", "--help"],
                         capture_output=True, text=True, timeout=20, cwd=REPO)
    assert out.returncode == 0 and "--connections" in out.stdout
    assert idle.rss_mib(os.getpid()) > 1.0
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert child.pid in idle.children(os.getpid())
    finally:
        child.kill()
        child.wait()


@pytest.mark.skipif(not (bench_servers.find_tool("wrk") and bench_servers.find_tool("nginx")),
                    reason="needs wrk and nginx (tools/install-bench-deps.sh)")
def test_idle_connections_short_run_against_nginx(tmp_path):
    out_json = tmp_path / "idle.json"
    cmd = [sys.executable, "-m", "tools.idle_connections", "--server", "nginx", "--connections", "300",
           "--duration", "1s", "--reps", "1", "--json", str(out_json)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=50, cwd=REPO)
    assert out.returncode == 0, out.stdout + out.stderr
    fig = json.loads(out_json.read_text())
    assert fig["idle_still_open"] == 300 and fig["rss_idle_mib"] > 0 and fig["rate_idle"] > 0


def test_the_revalidation_scenario_is_known_but_not_run_by_default():
    assert bench.scenarios(50)["1k-304"].revalidate
    assert "1k-304" not in bench.parse_args([]).scenario_list
    assert bench.parse_args(["--scenarios", "1k-304"]).scenario_list == ["1k-304"]


@pytest.mark.skipif(not (bench_servers.find_tool("wrk") and bench_servers.find_tool("nginx")),
                    reason="needs wrk and nginx (tools/install-bench-deps.sh)")
def test_short_revalidation_run_gets_304s_from_x15g_and_nginx(tmp_path):
    out_json = tmp_path / "b.json"
    cmd = [os.path.join(TOOLS, "bench"), "--servers", "x15g,nginx", "--scenarios", "1k-304",
           "--duration", "1s", "--warmup", "0", "--reps", "1", "--json", str(out_json)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=50)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "wrong answer" not in out.stdout, out.stdout  # both answered the check with an empty 304
    rows = json.loads(out_json.read_text())["rows"]
    assert {r["server"] for r in rows} == {"x15g", "nginx"}
    # Every answer was a header-only 304: bytes per request are a head's worth, not 1 KiB + head.
    assert all(r["rps"] > 0 and r["non2xx"] == 0 and r["mibps"] * 2**20 / r["rps"] < 400 for r in rows)


def test_real_traffic_scenarios_and_their_scripts():
    """unique, browser and dynamic: heads that never repeat, browser-like heads from many
    visitors, SPECweb99-like dynamic GETs with valid cookies (pure script generation)."""
    all_sc = bench.scenarios(50)
    assert all_sc["unique"].unique and all_sc["browser"].browser and all_sc["dynamic"].dynamic
    assert "dynamic" not in bench.parse_args([]).scenario_list  # x15g only: on request
    seq = wl.mix_sequence(3)
    unique = wl.lua_unique_script(wl.ONE_K)
    assert '"GET /1k.bin?n=" .. n' in unique and "BENCH_JSON" in unique
    browser = wl.lua_browser_script(seq)
    assert "local visitors = %d" % wl.VISITORS in browser and wl.VISITORS >= 5000
    for field in ("User-Agent", "Accept-Language", "Accept-Encoding", "Referer", "Cookie: session="):
        assert field in browser
    dynamic = wl.lua_dynamic_script(seq)
    assert "my_cookie=user_id=" in dynamic and wl.DYNAMIC in dynamic


def test_from_json_replays_a_saved_run_without_running(capsys):
    """docs/performance.md's table and chart come from docs/bench/*.json through --from-json."""
    saved = os.path.join(REPO, "docs", "bench", "2026-11-26.json")
    assert bench.main(["--from-json", saved]) == 0
    out = capsys.readouterr().out
    assert "| 1k | x15g | 58,135 |" in out and "1k: x15g = 53.7× gevent.pywsgi" in out


@pytest.mark.parametrize("heads,ready", [("unique", 184), ("visitor", 168), ("repeat", 199)])
def test_hub_microbench_measures_the_hub_path(heads, ready):
    """A short run: every request answered from the hub (the tool refuses to print otherwise),
    once their file entries are cached, by ready answers (selected by what the heads mean)."""
    import re

    out = subprocess.run([sys.executable, "-m", "tools.hub_microbench", "--heads", heads, "--requests", "200", "--reps", "1"],
                         capture_output=True, text=True, timeout=60, cwd=REPO)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith(heads + ":") and "us per request on the hub path" in out.stdout
    counts = re.search(r"ready answers (\d+), immediate (\d+)", out.stdout)
    assert counts is not None, out.stdout
    assert (int(counts.group(1)), int(counts.group(2))) == (ready, 200 - ready), out.stdout


@pytest.mark.timeout(150)
@pytest.mark.skipif(os.geteuid() != 0, reason="--isolate needs the server started as root")
def test_short_isolation_run_prints_the_cost_table():
    if bench_servers.find_tool("wrk") is None:
        pytest.skip("wrk is not installed (tools/install-bench-deps.sh)")
    cmd = [os.path.join(TOOLS, "bench"), "--scenarios", "isolation", "--servers", "x15g",
           "--duration", "1s", "--warmup", "0", "--reps", "1"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=140)
    assert out.returncode == 0, out.stdout + out.stderr
    for row in ("| dyn | inproc |", "| dyn | isolated |", "| wsgi | isolated |", "| wsgi | isolated-nohold |"):
        assert row in out.stdout, out.stdout
    rows = [line.split("|") for line in out.stdout.splitlines() if line.startswith(("| dyn |", "| wsgi |"))]
    assert all(int(r[3].replace(",", "")) > 0 and r[-2].strip() == "0" for r in rows), out.stdout


@pytest.mark.timeout(120)
def test_body_sizes_compares_memory_and_sendfile_for_each_size():
    """tools/body_sizes: one short run prints both modes for every size and its verdict."""
    if bench_servers.find_tool("wrk") is None:
        pytest.skip("wrk is not installed (tools/install-bench-deps.sh)")
    out = subprocess.run([sys.executable, "-m", "tools.body_sizes", "--duration", "1s", "--warmup", "0", "--reps", "1"],
                         capture_output=True, text=True, timeout=110, cwd=REPO)
    assert out.returncode == 0, out.stdout + out.stderr
    rows = [line.split("|") for line in out.stdout.splitlines() if "KiB |" in line]
    assert [row[0].strip() for row in rows] == ["1KiB", "2KiB", "4KiB", "8KiB", "16KiB", "32KiB", "64KiB"], out.stdout
    assert all(float(part.split()[0].replace(",", "")) > 0 for row in rows for part in row[1:]), out.stdout
    assert "memory costs no more than sendfile up to" in out.stdout or "sendfile always cost less" in out.stdout
