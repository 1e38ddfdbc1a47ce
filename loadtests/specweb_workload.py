"""What a simulated SPECweb99-like connection asks for (specweb99-like.md §3, §4): pure, no I/O.

The operation mix (§3.1), the target-file distribution (§3.2: class, Zipf file rank, Zipf
directory), the keep-alive connection model (§3.3) and the 400 kbit/s pacing rule (§4). Sampling
uses cumulative tables and `bisect`, so one draw is a `random()` call plus a binary search; every
user gets its own `random.Random` seeded from (run seed, worker id, user index), so users and
workers draw independent, reproducible streams.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import random
from dataclasses import dataclass

# §3.1: operation type and its share of all requests.
STATIC, DYNAMIC, CAD, POST, CGI = "static", "dynamic GET", "CAD GET", "POST", "CGI GET"
OPERATIONS = (STATIC, DYNAMIC, CAD, POST, CGI)
OP_SHARES = (0.70, 0.1245, 0.1260, 0.0480, 0.0015)
CLASS_SHARES = (0.35, 0.50, 0.14, 0.01)  # §3.2
FILE_ORDER = (4, 3, 5, 2, 6, 1, 7, 8, 0)  # §3.2: Zipf rank r -> file number FILE_ORDER[r-1]
KEEPALIVE_Q = 7 / 37  # §3.3: 10q / (10q + (1-q)) = 0.7
KEEPALIVE_MIN, KEEPALIVE_MAX = 5, 15
LINE_BPS = 400_000  # §4: the emulated line, bit/s
CONFORMING_BPS = 320_000  # §4: a user at or above this rate conforms

URLROOT = "/file_set/"
DYN = "/specweb99"
CGI_PATH = "/cgi-bin/specweb99"
USER_ID_BASE = 10000  # §7.4: U = 10000 + user index


def cumulative(weights: list[float] | tuple[float, ...]) -> list[float]:
    """Cumulative distribution of `weights`, normalised so the last entry is exactly 1.0."""
    total = float(sum(weights))
    table = [x / total for x in itertools.accumulate(weights)]
    table[-1] = 1.0  # rounding must never let random() fall off the end
    return table


def zipf_table(n: int) -> list[float]:
    """Cumulative Zipf (exponent 1) over ranks 1..n: P(r) proportional to 1/r."""
    return cumulative([1.0 / r for r in range(1, n + 1)])


def draw(table: list[float], u: float) -> int:
    """Index chosen by uniform u in [0, 1) from a cumulative table."""
    return bisect.bisect_right(table, u)


def user_rng(run_seed: int, worker: int, user: int) -> random.Random:
    """An independent RNG stream for one user: seeded by a hash of (run seed, worker, user)."""
    digest = hashlib.blake2b(b"%d:%d:%d" % (run_seed, worker, user), digest_size=16).digest()
    return random.Random(int.from_bytes(digest, "big"))


@dataclass(frozen=True, slots=True)
class Target:
    """One file of the set: directory d, class C, file number F (§2.2)."""

    d: int
    cls: int
    num: int

    @property
    def path(self) -> str:
        """`dirNNNNN/classC_F`, the part after URLROOT."""
        return "dir%05d/class%d_%d" % (self.d, self.cls, self.num)


class Workload:
    """The shared, read-only distributions for a file set of `dirs` directories (§3.1-3.2)."""

    def __init__(self, dirs: int, static_only: bool = False) -> None:
        if dirs < 1:
            raise ValueError("the file set needs at least one directory")
        self.dirs = dirs
        # static only (a server without the dynamic module): every draw is OPERATIONS[0], STATIC
        self.op_table = [1.0] if static_only else cumulative(OP_SHARES)
        self.class_table = cumulative(CLASS_SHARES)
        self.rank_table = zipf_table(len(FILE_ORDER))
        self.dir_table = zipf_table(dirs)

    def operation(self, rng: random.Random) -> str:
        """Draw an operation type (§3.1)."""
        return OPERATIONS[draw(self.op_table, rng.random())]

    def target(self, rng: random.Random) -> Target:
        """Draw the target file (§3.2; dynamic requests use the same distribution [approx])."""
        cls = draw(self.class_table, rng.random())
        num = FILE_ORDER[draw(self.rank_table, rng.random())]
        d = draw(self.dir_table, rng.random())
        return Target(d, cls, num)


def connection_length(rng: random.Random) -> int:
    """Requests on a new connection (§3.3): 5..15 with probability q (keep-alive), else 1."""
    if rng.random() < KEEPALIVE_Q:
        return rng.randint(KEEPALIVE_MIN, KEEPALIVE_MAX)
    return 1


class ConnectionPlan:
    """Counts requests on the current simulated connection and says when to send `Connection: close`."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.left = 0
        self.opened = 0

    def next_request(self) -> bool:
        """Account one request; True if it is the connection's last (send `Connection: close`)."""
        if self.left == 0:
            self.left = connection_length(self.rng)
            self.opened += 1
        self.left -= 1
        return self.left == 0

    def abandon(self) -> None:
        """The connection broke: the next request opens a new one."""
        self.left = 0


def pacing_sleep(response_bytes: int, elapsed: float, line_bps: int = LINE_BPS) -> float:
    """Seconds to sleep after a response of R bytes that took `elapsed` s (§4): max(0, 8R/LINE - t)."""
    return max(0.0, response_bytes * 8 / line_bps - elapsed)


def user_id(user_index: int, users: int) -> int:
    """The user's fixed cookie id U = 10000 + (user index mod N) (§7.4)."""
    return USER_ID_BASE + user_index % max(1, users)


def post_body(t: Target, client: int, urlroot: str = URLROOT) -> bytes:
    """The POST form body, keys in the §5.6 order."""
    return b"urlroot=%s&dir=%05d&class=%d&num=%d&client=%d" % (urlroot.encode(), t.d, t.cls, t.num, client)


def cad_cookie(uid: int, last_ad: int) -> str:
    """The `Cookie` header value of a CAD GET or a POST (§5.5, §5.6)."""
    return "my_cookie=user_id=%d&last_ad=%d" % (uid, last_ad)


def reset_query(users: int, pttime: int, exp1: int, exp2: int, now: int, urlroot: str = URLROOT) -> str:
    """The query string of command/Reset (§5.7, §7.1), with the `now` extension."""
    return "command/Reset&maxload=%d&pttime=%d&maxthread=%d&exp=%d,%d&urlroot=%s&now=%d" % (
        users, pttime, users, exp1, exp2, urlroot, now)


def step_table(start: int, step: int, step_time: float, max_users: int) -> list[tuple[float, int]]:
    """[(end time of the stage in s, users)] for a staircase from start to max_users."""
    if start < 1 or step < 1 or step_time <= 0 or max_users < start:
        raise ValueError("need 1 <= start <= max_users, step >= 1 and step_time > 0")
    stages, users, t = [], start, 0.0
    while users < max_users:
        t += step_time
        stages.append((t, users))
        users += step
    stages.append((t + step_time, max_users))
    return stages
