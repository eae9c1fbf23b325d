"""The bounded, decimated live buffer (labctl.live) on a run's documents."""

from __future__ import annotations

import numpy as np
import pytest

from labctl.config import parse_station
from labctl.documents import Column, Descriptor, Event, RunStart
from labctl.engine import RunEngine
from labctl.live import LiveBuffer
from labctl.station import Station
from tests.engine_procedures import Ticks, make
from tests.helpers import default_station


def _check_shape(seq: list[int], received: int, max_rows: int) -> None:
    """At most max_rows rows; the first and the newest row of the run kept; the newest half at full resolution;
    the spacing between kept rows never grows from old to new."""
    assert len(seq) <= max_rows
    assert seq[0] == 1 and seq[-1] == received
    recent = seq[-(max_rows // 2):] if received >= max_rows // 2 else seq
    assert recent == list(range(recent[0], received + 1))
    gaps = np.diff(seq)
    assert np.all(gaps >= 1) and np.all(np.diff(gaps) <= 0), gaps


def test_a_long_run_keeps_a_bounded_decimated_copy_of_each_stream(tmp_path):
    max_rows, n = 200, 5000
    live = LiveBuffer(max_rows=max_rows)
    checked = []

    def check(name, doc):  # after the buffer has taken each row: its shape holds at every moment
        if name == "event" and doc.seq_num % 97 == 0:
            _check_shape(live.frame("ticks")["seq_num"].tolist(), doc.seq_num, max_rows)
            checked.append(doc.seq_num)

    station = Station(parse_station(default_station()))
    result = RunEngine(station, tmp_path, subscribers=[live, check]).run(make(Ticks, points=n, interval_s=0.0))
    assert result.status == "completed", result.error
    assert len(checked) == n // 97
    frame = live.frame("ticks")
    _check_shape(frame["seq_num"].tolist(), n, max_rows)
    assert len(frame) > max_rows // 2
    assert list(frame.columns) == ["seq_num", "time_s", "index", "value_V"]
    # each kept row is the row the procedure recorded (index k is row k + 1, value 1 mV × k)
    assert (frame["index"] == frame["seq_num"] - 1).all()
    assert frame["value_V"].to_numpy() == pytest.approx(0.001 * frame["index"].to_numpy())
    assert live.received == {"ticks": n, "unused": 0} and live.frame("unused").empty
    assert live.status == "completed" and live.progress == 1.0 and live.run_id == result.run_id
    assert live.log_lines[-1] == "ended: completed"


def test_a_new_run_starts_an_empty_buffer_and_few_rows_are_all_kept():
    live = LiveBuffer(max_rows=8)
    for run_id in ("r1", "r2"):
        live("start", RunStart(run_id, "p", "s", "op", "bench", "2026-12-01T00:00:00+00:00"))
        live("descriptor", Descriptor(run_id, "s", (Column("x", "V"),), "x", "x"))
        for k in range(1, 4 if run_id == "r2" else 30):
            live("event", Event(run_id, "s", k, 0.0, {"x": float(k)}))
    assert live.frame("s")["seq_num"].tolist() == [1, 2, 3]
    assert live.frame("s")["x"].tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match="max_rows = 2: must be at least 4"):
        LiveBuffer(max_rows=2)
