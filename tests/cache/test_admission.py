"""SecondSighting (pure): admitted on the second sighting, bounded."""

from __future__ import annotations

from x15g.cache.admission import SecondSighting


def test_admitted_on_the_second_sighting_only() -> None:
    admission = SecondSighting(limit=10)
    assert not admission.admit(b"a")
    assert admission.admit(b"a")
    assert not admission.admit(b"a")  # admitted keys are forgotten: the cache holds them now


def test_noted_keys_are_admitted_next_time_and_the_set_is_bounded() -> None:
    admission = SecondSighting(limit=3)
    admission.note(b"x")
    assert admission.admit(b"x")
    for key in (b"1", b"2", b"3"):
        admission.admit(key)
    assert not admission.admit(b"4")  # the limit was reached: everything seen once is forgotten
    assert not admission.admit(b"1")
    admission.clear()
    assert not admission.admit(b"1")
