"""Path safety under attack (issue 6): nothing outside the document root is ever served.

The served root sits next to a file `secret`; every attack form is sent raw over a socket to a
real x15g (so no client library normalises the path first) and the secret must never appear:
encoded traversal in every form, Windows separators, overlong UTF-8, NUL, symlinks out of the
root (followed or not), and a hypothesis property test generating paths. A HARD link inside the
root to a file outside is, by filesystem semantics, a file inside the root: it is served (see
the README (Limits and guarantees)); only who may write the root can create one.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.docroots import make_root
from tests.support.clients import read_until_close, statuses
from tests.support.server import ServerProcess

SECRET = b"TOP-SECRET-OUTSIDE-ROOT"


def _links(root: Path) -> None:
    """Symlinks out of the root (file and directory) and one inside it."""
    os.symlink("../secret", root / "s")
    os.symlink("..", root / "up")
    os.symlink("/", root / "slash")
    os.symlink("hello.txt", root / "inside")
    os.symlink("../../secret", root / "sub" / "s2")


@pytest.fixture(scope="module", params=["no-follow", "follow"])
def attacked(request, tmp_path_factory):
    root = make_root(tmp_path_factory.mktemp("paths"))
    _links(root)
    args = ("--follow-symlinks",) if request.param == "follow" else ()
    with ServerProcess(root, *args) as proc:
        proc.follow = request.param == "follow"
        yield proc


def fetch(port: int, target: bytes) -> tuple[int | None, bytes]:
    """Raw GET `target` (bytes as they are): (status or None, whole answer)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data, _ = read_until_close(sock, 5)
    found = statuses(data)
    return (found[0] if found else None), data


TRAVERSALS = [
    b"/../secret", b"/../../secret", b"/sub/../../secret", b"/./../secret", b"//../secret",
    b"/%2e%2e/secret", b"/%2E%2E/secret", b"/.%2e/secret", b"/%2e./secret", b"/sub/%2e%2e/%2e%2e/secret",
    b"/%252e%252e/secret", b"/%25%32%65%25%32%65/secret", b"/..%2fsecret", b"/..%2Fsecret",
    b"/%2e%2e%2fsecret", b"/..%5csecret", b"/..\\secret", b"/sub\\..\\..\\secret", b"/\\..\\secret",
    b"/%c0%ae%c0%ae/secret", b"/%c0%2e%c0%2e/secret", b"/%e0%80%ae%e0%80%ae/secret", b"/%c0%af../secret",
    b"/%ef%bc%8e%ef%bc%8e/secret", b"/%u002e%u002e/secret", b"/..;/secret", b"/sub/..;/..;/secret",
    b"/.../secret", b"/hello.txt%00/../../secret", b"/%00../secret", b"/..%00/secret",
    b"../secret", b"secret", b"http://x/../secret", b"http://x/%2e%2e/secret", b"/%2e%2e%5csecret",
    b"/sub/%2e%2e%2f%2e%2e%2fsecret", b"/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd", b"/../../../../etc/passwd",
]


@pytest.mark.parametrize("target", TRAVERSALS, ids=[t.decode("latin-1") for t in TRAVERSALS])
def test_encoded_traversal_never_leaves_root(attacked, target: bytes) -> None:
    status, data = fetch(attacked.port, target)
    assert SECRET not in data and b"root:" not in data
    assert status in (400, 404), data[:200]


@pytest.mark.parametrize("target", [b"/s", b"/up/secret", b"/slash/etc/passwd", b"/sub/s2"])
def test_symlinks_out_of_root_refused(attacked, target: bytes) -> None:
    status, data = fetch(attacked.port, target)
    assert status == 404 and SECRET not in data and b"root:" not in data


@pytest.mark.parametrize("target", [b"/inside", b"/up/root/hello.txt"])
def test_symlink_landing_inside_root_only_when_following(attacked, target: bytes) -> None:
    """A link whose real path stays in the root (even via `up` -> ..) is served with
    --follow-symlinks and refused without."""
    status, data = fetch(attacked.port, target)
    if attacked.follow:
        assert status == 200 and data.endswith(b"hello, world\n")
    else:
        assert status == 404


def test_hard_link_to_outside_file_is_inside(tmp_path) -> None:
    """A hard link is another name of the same inode: the file IS in the root (documented)."""
    root = make_root(tmp_path)
    os.link(tmp_path / "secret", root / "hard")
    with ServerProcess(root) as server:
        status, data = fetch(server.port, b"/hard")
    assert status == 200 and data.endswith(SECRET + b"\n")


# --- property: whatever path is generated, no answer ever contains the secret ------------------

PIECES = ["..", ".", "%2e%2e", "%2e", "%2E.", ".%2e", "%252e%252e", "%252e", "\\", "..\\", "%5c", "%2f", "%00",
          "%c0%ae", "%e0%80%ae", "%ef%bc%8e", "secret", "s", "up", "slash", "sub", "s2", "hello.txt", "root",
          "etc", "passwd", "inside", "", ";", "..;", "%25", "%", "é", "\x00", "~", "%2e%2e%2f", "%ff"]

segment = st.one_of(
    st.sampled_from(PIECES),
    st.lists(st.sampled_from(PIECES), min_size=1, max_size=3).map("".join),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=6),
)
paths = st.tuples(st.lists(segment, min_size=1, max_size=8), st.sampled_from(["/", "\\", "//"]),
                  st.booleans())


def _encode(parts: list[str], sep: str, lead: bool) -> bytes:
    text = ("/" if lead or not parts else "") + sep.join(parts)
    # Control and space bytes would end the request line early; escape them like a client would.
    raw = text.encode("utf-8", "surrogatepass")
    return b"".join(bytes([b]) if 0x20 < b < 0x7F else b"%%%02X" % b for b in raw)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(paths)
def test_generated_paths_never_serve_the_secret(attacked, generated) -> None:
    parts, sep, lead = generated
    target = _encode(parts, sep, lead)
    status, data = fetch(attacked.port, target)
    assert status is not None, f"no answer for {target!r}"
    assert SECRET not in data and b"root:x:" not in data, target
    if status == 200:
        body = data.split(b"\r\n\r\n", 1)[1]
        assert body in (b"<h1>index</h1>\n", b"hello, world\n", b"a\n") or len(body) > 1000, target
