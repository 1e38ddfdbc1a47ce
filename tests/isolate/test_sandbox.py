"""The sandbox, entered by a child process (it cannot be left again): every forbidden act fails,
the grants still work. Runs as root here, so the uid drop is real."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.support.server import REPO
from x15g.isolate import landlock, seccomp

CHILD = textwrap.dedent("""
    import json, os, signal, socket, sys
    from x15g.isolate import sandbox
    granted, secret, parent = sys.argv[1:4]
    plan = sandbox.Plan(read_only=list(sandbox.SYSTEM_LIBRARIES) + [p for p in sys.path if p] + [granted],
                        keep=[0, 1, 2], memory=1 << 30, require=True)
    grants, enforced, missing = sandbox.apply(plan)
    results = {"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(), "missing": missing}
    def attempt(name, action):
        try:
            action()
            results[name] = "allowed"
        except (OSError, ValueError):  # ValueError: setrlimit above the hard limit
            results[name] = "denied"
    attempt("granted", lambda: open(grants.path(granted + "/ok.txt")).read())
    attempt("shadow", lambda: open("/etc/shadow", "rb"))
    attempt("outside", lambda: open(secret, "rb"))
    attempt("write_granted", lambda: open(grants.path(granted + "/new.txt"), "w"))
    attempt("execve", lambda: os.execv("/bin/true", ["true"]))
    attempt("tcp", lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    attempt("udp6", lambda: socket.socket(socket.AF_INET6, socket.SOCK_DGRAM))
    attempt("unix", lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).close())
    attempt("kill_parent", lambda: os.kill(int(parent), 0))
    attempt("kill_self", lambda: os.kill(os.getpid(), 0))
    attempt("fork", lambda: os.fork() or None)
    attempt("raise_memory", lambda: __import__("resource").setrlimit(__import__("resource").RLIMIT_AS, (2 << 30, 2 << 30)))
    print(json.dumps(results))
""")


@pytest.mark.skipif(os.geteuid() != 0, reason="the uid drop needs root")
@pytest.mark.skipif(not landlock.abi_version() or not seccomp.supported(), reason="needs Landlock and seccomp")
def test_every_forbidden_act_fails(tmp_path) -> None:
    granted = tmp_path / "granted"
    granted.mkdir()
    (granted / "ok.txt").write_text("fine")
    os.chmod(granted, 0o755)
    secret = tmp_path / "secret.txt"
    secret.write_text("no")
    os.chmod(secret, 0o644)  # readable by anyone as far as permissions go: only Landlock stops it
    os.chmod(tmp_path, 0o755)
    out = subprocess.run([sys.executable, "-c", CHILD, str(granted), str(secret), str(os.getpid())],
                         cwd=str(REPO), env=dict(os.environ, PYTHONPATH=str(REPO)),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    results = json.loads(out.stdout)
    assert (results["uid"], results["gid"], results["groups"]) == (65534, 65534, [])
    assert results["missing"] == []
    assert results["granted"] == "allowed" and results["unix"] == "allowed" and results["kill_self"] == "allowed"
    for act in ("shadow", "outside", "write_granted", "execve", "tcp", "udp6", "kill_parent", "fork", "raise_memory"):
        assert results[act] == "denied", act


def test_seccomp_program_is_well_formed() -> None:
    program = seccomp.build_program(1234)
    assert len(program) % 8 == 0 and len(program) // 8 < 4096  # BPF_MAXINSNS
