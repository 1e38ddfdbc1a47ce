"""Tables, ad selection and the wrapper against values worked out by hand from specweb99-like.md §5.2, §6."""

from __future__ import annotations

import pytest

from x15g.specweb.tables import N_ADS, Ads, ad_field, cadgen, demog, parse_ads, parse_users, select_ad, upfgen
from x15g.specweb.wrap import wrap

# k -> demog(k), worked by hand: e.g. k=12300=0x300C: c4=12,c3=0,c2=0; even -> 0x10000000;
# k%4=0 -> age 0x08000000; (12+0)%4=0 -> region 0x00800000; (12+0)%10=2 -> 0x00080000>>2;
# 12%10=2 -> 0x200>>2.
DEMOG = [
    (12300, 0x18820080),
    (10000, 0x18140200),  # 0x2710: c4=0 c3=1 c2=7
    (7699, 0x21408040),  # 0x1E13: c4=3 c3=1 c2=14, odd, k%4=3
    (1592, 0x18240002),  # 0x638: c4=8 c3=3 c2=6
    (7873, 0x24110100),  # 0x1EC1: c4=1 c3=12 c2=14, odd, k%4=1
]


@pytest.mark.parametrize("k, expected", DEMOG)
def test_demog(k: int, expected: int) -> None:
    assert demog(k) == expected


def test_upfgen_lines() -> None:
    data = upfgen(361, 5)
    assert len(data) == 361 * 15
    assert data[:45] == b"    0 18820080\n    1 18140200\n    2 21408040\n"
    assert data[360 * 15:] == b"  360 18820080\n"  # j % 360 == 0 -> k = 12300 again
    assert upfgen(3, 7) == upfgen(7, 3)  # n_users = max(maxload, maxthread)
    users = parse_users(data)
    assert users[:3] == [0x18820080, 0x18140200, 0x21408040] and len(users) == 361


NOW = 1_000_000_000
TS = NOW + 2 * 1800  # pttime 0 means 1800
EXP = TS - 31622400  # 968381200


def test_cadgen_lines() -> None:
    data = cadgen(0, 10, 0, 180, NOW)
    lines = data.split(b"\n")[:-1]
    assert len(data) == 360 * 39 and len(lines) == 360
    # ad 0: ordinary, expired (E1=0 covers ads 0..23); wt = 12300**2 % 2**20 = 295056 = 0x48090
    assert lines[0] + b"\n" == b"    0 18820080    48090  75  968381200\n"
    # ad 1: wt = 10**8 % 2**20 = 385280 = 0x5E100, still inside the first expired run
    assert lines[1] + b"\n" == b"    1 18140200    5E100  75  968381200\n"
    # ad 10: universal (10 % 24 == maxthread % 24), expired
    assert lines[10] + b"\n" == b"   10 182403FF    3FFFF   1  968381200\n"
    # ad 34: universal, not expired
    assert lines[34] + b"\n" == b"   34 241103FF    3FFFF   1 1000003600\n"
    # E2 = 180 expires 180..203; 204 is live
    assert lines[203].endswith(b" 968381200") and lines[204].endswith(b"1000003600")
    assert cadgen(1800, 10, 0, 180, NOW) == data


def test_cadgen_wraps_expiry_and_pttime() -> None:
    # ts = 5000 + 2*100 = 5200; exp_ts = 5200 - 31622400 = -31617200; E = 350 expires 350..359, 0..13
    lines = cadgen(100, 0, 350, 350, 5000).split(b"\n")
    assert lines[349].endswith(b"       5200")
    assert lines[350].endswith(b" -31617200") and lines[359].endswith(b" -31617200")
    assert lines[13].endswith(b" -31617200") and lines[14].endswith(b"       5200")


def _ads() -> Ads:
    return parse_ads(cadgen(0, 10, 0, 180, NOW))


SELECT = [
    # (user dem, L, now, (A, W, X)); user 0 dem 0x18820080 vs ad 10 dem 0x182403FF:
    # gender (3) + age (15) + interest2 (15) = 33; ad 10 expired at 968381200.
    (0x18820080, 0, NOW, (10, 33, 1)),
    (0x18820080, 9, NOW, (10, 33, 1)),
    # ad 34 dem 0x241103FF shares only interest2 with user 0: 15; it expires at 1000003600.
    (0x18820080, 10, NOW, (34, 15, 0)),
    (0x18820080, 10 + 360 * 5, NOW, (34, 15, 0)),
    (0x18820080, 10, 1000003600, (34, 15, 0)),
    (0x18820080, 10, 1000003601, (34, 15, 1)),
    # L = 359 wraps to ad 10 via 0..9
    (0x18820080, 359, NOW, (10, 33, 1)),
    # user 2 (0x21408040) vs ad 34 (0x241103FF): gender 0x2 common (3) + interest2 (15) = 18
    (0x21408040, 10, NOW, (34, 18, 0)),
]


@pytest.mark.parametrize("user_dem, last, now, expected", SELECT)
def test_select_ad(user_dem: int, last: int, now: int, expected: tuple[int, int, int]) -> None:
    assert select_ad(user_dem, last, _ads(), now) == expected


@pytest.mark.parametrize("ad, field", [(0, b"dir00000/class0_0"), (359, b"dir00009/class3_8"),
                                      (100, b"dir00002/class3_1"), (10, b"dir00000/class1_1")])
def test_ad_field(ad: int, field: bytes) -> None:
    assert ad_field(ad) == field and len(field) == 17


@pytest.mark.parametrize("data", [b"    0 18820080", b"    1 18820080\n", b"    0 1882008\n", b"x" * 15])
def test_parse_users_rejects(data: bytes) -> None:
    with pytest.raises(ValueError):
        parse_users(data)


def test_parse_ads_rejects_short_table() -> None:
    with pytest.raises(ValueError):
        parse_ads(cadgen(0, 10, 0, 180, NOW)[:-39])


def test_wrap_exact() -> None:
    expected = (b"<html>\n<head><title>SPECweb99 Dynamic GET & POST Test</title></head>\n<body>\n"
                b"<p>SERVER_SOFTWARE = x15g/0.1.0\n<p>REMOTE_ADDR = 10.0.0.1\n<p>SCRIPT_NAME = /specweb99\n"
                b"<p>QUERY_STRING = /file_set/dir00000/class0_0\n<pre>\nBODY\n</pre>\n</body></html>\n")
    assert wrap(b"/file_set/dir00000/class0_0", b"BODY", b"x15g/0.1.0", b"10.0.0.1", b"/specweb99") == expected


def test_a_remembered_choice_is_the_scan_and_its_expiry_still_follows_the_clock() -> None:
    from x15g.specweb.tables import _scan

    ads = _ads()
    users = parse_users(upfgen(20, 20))
    for _ in range(2):  # the second pass answers from Ads.chosen
        for dem in users:
            for last in range(0, N_ADS, 7):
                ad, weight, _ = select_ad(dem, last, ads, NOW)
                assert (ad, weight) == _scan(dem, last, ads)
    assert ads.chosen
    ad, _, _ = select_ad(users[0], 5, ads, NOW)
    assert select_ad(users[0], 5, ads, ads.expv[ad] + 1)[2] == 1  # past its expiry
    assert select_ad(users[0], 5, ads, ads.expv[ad] - 1)[2] == 0
