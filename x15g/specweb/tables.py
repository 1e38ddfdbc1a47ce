"""User.Personality and Custom.Ads (specweb99-like.md §6.1-6.4): generate, parse, select an ad.

Generators return the exact file bytes; parsers turn those bytes back into lists of ints (and
refuse anything that is not in the generated format). `select_ad` is the §6.4 scan over the ads
table; per-ad category weights are precomputed once per table load (`Ads.weights`) so a scan step
is two ANDs and a few additions, and each (demographics, last ad) pair is scanned once per table
(`Ads.chosen`; only the expiry, which depends on the time, is looked at per request).
"""

from __future__ import annotations

from dataclasses import dataclass, field

N_ADS = 360
UNIVERSAL_WEIGHT = 0x3FFFF
EXPIRED_DELTA = 31622400  # 366 days
USER_LINE = 15
AD_LINE = 39

# §6.4: (demographics mask, shift of that category's 4-bit weight in wt)
CATEGORIES = (
    (0x30000000, 16),  # gender
    (0x0F000000, 12),  # age
    (0x00F00000, 8),  # region
    (0x000FFC00, 4),  # interest1
    (0x000003FF, 0),  # interest2
)


def demog(k: int) -> int:
    """Demographics bit set for key k (§6.3; the interest2 rule is the spec's [approx] one)."""
    c4 = k & 0xF
    c3 = (k >> 4) & 0xF
    c2 = (k >> 8) & 0xF
    gender = 0x20000000 if k % 2 == 1 else 0x10000000
    age = 0x08000000 >> (k % 4)
    region = 0x00800000 >> ((c4 + c2) % 4)
    interest1 = 0x00080000 >> ((c4 + c3) % 10)
    interest2 = 0x00000200 >> (c4 % 10)
    return gender | age | region | interest1 | interest2


def _key(j: int) -> int:
    k = (j * 10000) % 12301
    return 12300 if k == 0 else k


def upfgen(maxload: int, maxthread: int) -> bytes:
    """User.Personality content: one 15-byte `"%5d %8X\\n"` line per user (§6.1)."""
    n_users = max(maxload, maxthread)
    return b"".join(b"%5d %8X\n" % (j, demog(_key(j % 360))) for j in range(n_users))


def cadgen(pttime: int, maxthread: int, e1: int, e2: int, now: int) -> bytes:
    """Custom.Ads content: 360 lines of 39 bytes (§6.2)."""
    if pttime == 0:
        pttime = 1800
    ts = now + 2 * pttime
    exp_ts = ts - EXPIRED_DELTA
    dem, wt, mm, expv = [], [], [], []
    for j in range(N_ADS):
        k = _key(j)
        dem.append(demog(k))
        w = (k * k) % 1048576
        wt.append(0x27104 if w == 0 else w)
        mm.append(75)
        expv.append(ts)
    for j in range(N_ADS):
        if j % 24 == maxthread % 24:  # "universal" ads match every user
            mm[j] = 1
            wt[j] = UNIVERSAL_WEIGHT
            dem[j] |= 0x3FF
    for e in (e1, e2):
        for i in range(24):
            expv[(e + i) % N_ADS] = exp_ts
    return b"".join(b"%5d %8X %8X %3d %10d\n" % (j, dem[j], wt[j], mm[j], expv[j]) for j in range(N_ADS))


@dataclass(slots=True)
class Ads:
    """The parsed Custom.Ads table: four lists of 360 ints, plus per-ad category weights."""

    dem: list[int]
    wt: list[int]
    mm: list[int]
    expv: list[int]
    weights: list[tuple[int, ...]] = field(default_factory=list)
    # (user demographics, last ad) -> (ad, weight) of the scan: it depends on nothing else of a
    # table that never changes (a Reset loads a new one), so each pair is scanned once.
    chosen: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.weights:
            self.weights = [tuple((w >> shift) & 0xF for _, shift in CATEGORIES) for w in self.wt]


def _fields(data: bytes, line_len: int, nfields: int, what: str) -> list[list[bytes]]:
    """Split fixed-width lines into fields; ValueError when the layout is not the generated one."""
    if len(data) % line_len:
        raise ValueError(f"{what}: size {len(data)} is not a multiple of {line_len}")
    rows = []
    for j, line in enumerate(data.split(b"\n")[:-1] if data else []):
        parts = line.split()
        if len(line) != line_len - 1 or len(parts) != nfields or int(parts[0]) != j:
            raise ValueError(f"{what}: malformed line {j}")
        rows.append(parts)
    if len(rows) * line_len != len(data):
        raise ValueError(f"{what}: malformed lines")
    return rows


def parse_users(data: bytes) -> list[int]:
    """User.Personality bytes -> the demographics of users 0..n-1."""
    return [int(parts[1], 16) for parts in _fields(data, USER_LINE, 2, "User.Personality")]


def parse_ads(data: bytes) -> Ads:
    """Custom.Ads bytes -> Ads (exactly 360 ads)."""
    rows = _fields(data, AD_LINE, 5, "Custom.Ads")
    if len(rows) != N_ADS:
        raise ValueError(f"Custom.Ads: {len(rows)} ads, expected {N_ADS}")
    return Ads(
        dem=[int(r[1], 16) for r in rows],
        wt=[int(r[2], 16) for r in rows],
        mm=[int(r[3]) for r in rows],
        expv=[int(r[4]) for r in rows],
    )


def select_ad(user_dem: int, last_ad: int, ads: Ads, now: int) -> tuple[int, int, int]:
    """(A, W, X) for a user with demographics `user_dem` whose last ad was `last_ad` (§6.4).

    Scans ads L+1, L+2, ... (mod 360) for the first whose matching-category weight reaches its
    minimum match; X is 1 when `now` is past that ad's expiry.
    """
    key = (user_dem, last_ad)
    chosen = ads.chosen.get(key)
    if chosen is None:
        chosen = _scan(user_dem, last_ad, ads)
        if len(ads.chosen) >= MAX_CHOSEN:
            ads.chosen.clear()
        ads.chosen[key] = chosen
    ad, w = chosen
    if ad < 0:
        return last_ad % N_ADS, w, 1  # unreachable with cadgen tables [approx]
    return ad, w, (1 if now > ads.expv[ad] else 0)


MAX_CHOSEN = 65536  # scans remembered per table (users x 360 last ads at the most)


def _scan(user_dem: int, last_ad: int, ads: Ads) -> tuple[int, int]:
    """The §6.4 scan: (ad, weight), or (-1, weight) when no ad matches."""
    dem, mm, weights = ads.dem, ads.mm, ads.weights
    w = 0
    for step in range(1, N_ADS + 1):
        ad = (last_ad + step) % N_ADS
        both = user_dem & dem[ad]
        w = 0
        for (mask, _), weight in zip(CATEGORIES, weights[ad]):
            if both & mask:
                w += weight
        if w >= mm[ad]:
            return ad, w
    return -1, w


def ad_field(ad: int) -> bytes:
    """The 17-byte tag field naming ad `ad`'s file: `dir%05d/class%d_%d` (§5.5 step 4)."""
    return b"dir%05d/class%d_%d" % (ad // 36, (ad % 36) // 9, ad % 9)
