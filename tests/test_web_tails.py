"""The live plot of ``labctl serve`` read from the tail of a run file (labctl.web.tails.RunTail): bounded however
long the run, the first read of a long run taken in chunks with a stride, and afterwards only the new rows."""

from __future__ import annotations

from labctl.documents import Column
from labctl.storage import RunWriter
from labctl.web.tails import READ_CHUNK_ROWS, RunTail

HOLD_COLUMNS = [Column("time_s", "s"), Column("voltage_V", "V"), Column("current_A", "A"),
                Column("j_mA_cm2", "mA/cm^2")]
INTERRUPTION_COLUMNS = [Column("kind", "", "str"), Column("start_s", "s"), Column("end_s", "s")]


def _hold_file(path, rows: int, interval_s: float = 10.0) -> RunWriter:
    """A hold at open circuit with ``rows`` readings (Voc = 1 + k·1e-6 V at reading k), still open (running)."""
    writer = RunWriter(path, flush_interval_s=3600)
    writer.write_metadata(run_id="r1", procedure="hold", sample="s", operator="o", area_cm2=0.1,
                          parameters={"bias": ("oc", ""), "interval_s": (interval_s, "s")}, station={}, idn={},
                          software_version="x", start_time="2026-01-01T00:00:00+00:00")
    writer.create_stream("hold", HOLD_COLUMNS, signal="j_mA_cm2", axes="time_s")
    writer.create_stream("interruptions", INTERRUPTION_COLUMNS, signal="end_s", axes="start_s")
    _append(writer, 0, rows, interval_s)
    return writer


def _append(writer: RunWriter, first: int, rows: int, interval_s: float = 10.0) -> None:
    for k in range(first, first + rows):
        writer.append("hold", {"time_s": k * interval_s, "voltage_V": 1.0 + k * 1e-6, "current_A": 0.0,
                               "j_mA_cm2": 0.0})
    writer.flush()


def test_a_600_h_hold_is_read_in_chunks_and_kept_bounded_then_only_new_rows_are_read(tmp_path):
    rows = 216_000  # 600 h at one reading per 10 s
    writer = _hold_file(tmp_path / "hold.h5", rows)
    tail = RunTail(writer.path, max_points=2000)
    assert tail.update()
    assert tail.spec.stream == "hold" and tail.spec.y == "voltage_V"  # at open circuit the plot is Voc
    chunks = -(-rows // READ_CHUNK_ROWS)
    assert chunks == 4 and tail.reads == chunks  # chunk by chunk, never a whole column
    points = tail.points_after(-1)
    assert len(points) <= 2000 and tail.rows_read == rows
    stride = -(-rows // 2000)  # 108: the first read takes every 108th row
    assert [p[0] for p in points[:3]] == [0, stride, 2 * stride]
    assert points[0][1] == 0.0 and points[1][1] == stride * 10 / 3600  # x in hours
    assert points[1][2] == 1.0 + stride * 1e-6  # the row's own value, not an average
    assert rows - points[-1][0] <= stride  # up to the end
    assert not tail.update() and tail.reads == chunks  # nothing new: nothing read
    _append(writer, rows, 30)
    assert tail.update() and tail.reads == chunks + 1
    new = tail.points_after(points[-1][0])
    assert [p[0] for p in new] == list(range(rows, rows + 30))  # the new rows, every one
    assert len(tail) <= 2000
    writer.close("completed")


def test_a_full_tail_thins_its_older_half_and_keeps_the_first_and_newest_rows(tmp_path):
    writer = _hold_file(tmp_path / "hold.h5", 10)
    tail = RunTail(writer.path, max_points=8)
    tail.update()
    for k in range(10, 40):  # one row at a time, as a live run gives them
        _append(writer, k, 1)
        tail.update()
    rows = [p[0] for p in tail.points_after(-1)]
    assert len(rows) <= 8 and rows[0] == 0 and rows[-4:] == [36, 37, 38, 39]
    assert rows == sorted(rows)
    writer.close("completed")


def test_interruptions_are_shaded_in_hours(tmp_path):
    writer = _hold_file(tmp_path / "hold.h5", 5)
    writer.append("interruptions", {"kind": "suspended", "start_s": 3600.0, "end_s": 5400.0})
    writer.append("interruptions", {"kind": "gap", "start_s": 7200.0, "end_s": 7200.0})  # a point: nothing to shade
    writer.flush()
    tail = RunTail(writer.path)
    tail.update()
    assert tail.interruptions == [[1.0, 1.5, "suspended"]]
    writer.close("completed")


def test_a_file_without_a_plottable_stream_has_no_plot_yet(tmp_path):
    writer = RunWriter(tmp_path / "x.h5", flush_interval_s=3600)
    writer.flush()
    tail = RunTail(writer.path)
    assert not tail.update() and tail.spec is None and tail.points_after(-1) == []
    writer.close("completed")


def test_an_interruptions_stream_written_after_the_tail_opened_is_found(tmp_path):
    writer = RunWriter(tmp_path / "hold.h5", flush_interval_s=3600)
    writer.write_metadata(run_id="r1", procedure="hold", sample="s", operator="o", area_cm2=0.1,
                          parameters={"bias": ("sc", "")}, station={}, idn={}, software_version="x",
                          start_time="2026-01-01T00:00:00+00:00")
    writer.create_stream("hold", HOLD_COLUMNS, signal="j_mA_cm2", axes="time_s")
    _append(writer, 0, 3)
    tail = RunTail(writer.path)
    tail.update()
    assert tail.spec.y == "j_mA_cm2" and tail.interruptions == []  # at short circuit the plot is J
    writer.create_stream("interruptions", INTERRUPTION_COLUMNS, signal="end_s", axes="start_s")
    writer.append("interruptions", {"kind": "recovery", "start_s": 36.0, "end_s": 72.0})
    writer.flush()
    assert tail.update()  # no new reading, but a new interruption: the plot changed
    assert tail.interruptions == [[0.01, 0.02, "recovery"]]
    writer.close("completed")


def test_an_mpp_whose_tracking_stream_is_not_written_yet_has_no_plot_rather_than_another(tmp_path):
    writer = RunWriter(tmp_path / "mpp.h5", flush_interval_s=3600)
    writer.write_metadata(run_id="r1", procedure="mpp", sample="s", operator="o", area_cm2=0.1, parameters={},
                          station={}, idn={}, software_version="x", start_time="2026-01-01T00:00:00+00:00")
    writer.create_stream("jv_scans", [Column("voltage_V", "V"), Column("j_mA_cm2", "mA/cm^2")],
                         signal="j_mA_cm2", axes="voltage_V")  # the periodic J–V at the start comes first
    writer.append("jv_scans", {"voltage_V": 0.0, "j_mA_cm2": -18.0})
    writer.flush()
    tail = RunTail(writer.path)
    assert not tail.update() and tail.spec is None
    writer.create_stream("mpp", [Column("time_s", "s"), Column("pce_pct", "%")], signal="pce_pct", axes="time_s")
    writer.append("mpp", {"time_s": 60.0, "pce_pct": 16.5})
    writer.flush()
    assert tail.update() and (tail.spec.stream, tail.spec.y) == ("mpp", "pce_pct")
    assert tail.points_after(-1) == [[0, 60.0 / 3600, 16.5, 0]]
    writer.close("completed")
