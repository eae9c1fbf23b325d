"""The 2400 driver's quick read of a one-reading reply gives what the general reply parser gives, and leaves every
unusual reply (placeholder 9.91e37, overflow ±9.9e37, a bad status word, a field that is not a number) to it."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.keithley2400 import Keithley2400, ReplyError, _one_reading, parse_groups, status_bit

BIT = Keithley2400.COMPLIANCE_BIT
number = st.one_of(st.floats(-1e3, 1e3, allow_nan=False), st.sampled_from([9.91e37, 9.9e37, -9.9e37, 0.0]))
status = st.one_of(st.integers(0, 2**24 - 1).map(float), st.sampled_from([-1.0, 2.0**24, 3.5, 9.91e37]))


def _general(reply: str):
    rows = parse_groups(reply, 4, instrument="smu", command=":READ?", points=1)
    return rows, status_bit(rows[:, 3], BIT, instrument="smu", command=":READ?")


@settings(max_examples=400, deadline=None)
@given(v=number, i=number, t=st.floats(0, 1e6, allow_nan=False), s=status,
       style=st.sampled_from(["{:+.6E}", "{:g}", "{!r}"]))
def test_quick_and_general_reads_agree(v, i, t, s, style):
    reply = ",".join(style.format(x) for x in (v, i, t, s))
    quick = _one_reading(reply, BIT)
    try:
        rows, compliance = _general(reply)
    except ReplyError:
        assert quick is None  # the general parser reports it
        return
    if quick is None:
        assert not np.isfinite(rows[0, :3]).all() or s != int(s) or not 0 <= s < 2**24
        return
    np.testing.assert_array_equal(quick.voltage_V, rows[:, 0])
    np.testing.assert_array_equal(quick.current_A, rows[:, 1])
    np.testing.assert_array_equal(quick.time_s, rows[:, 2])
    np.testing.assert_array_equal(quick.compliance, compliance)


def test_anything_but_four_numbers_is_left_to_the_general_parser():
    for reply in ("", "1,2,3", "1,2,3,4,5", "1,2,x,8", "+9.910000E+37,1,2,8"):
        assert _one_reading(reply, BIT) is None
