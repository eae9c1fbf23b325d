"""The run engine emits documents: their order and content, the subscribers, the run file as one of them, and
memory that does not grow with the rows."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from labctl.config import parse_station
from labctl.documents import Column, Descriptor, Event, LogLine, Progress, RunStart, RunStop
from labctl.engine import RunEngine
from labctl.station import Station
from labctl.storage import RunFileWriter, load_run
from tests.engine_procedures import SPECTRUM_NM, Spectra, Ticks, make
from tests.helpers import default_station


def _station() -> Station:
    return Station(parse_station(default_station()))


class Recorder:
    def __init__(self) -> None:
        self.docs: list[tuple[str, object]] = []

    def __call__(self, name: str, doc: object) -> None:
        self.docs.append((name, doc))

    def names(self) -> list[str]:
        return [name for name, _ in self.docs]


def test_a_run_is_start_descriptors_events_and_stop_in_that_order(tmp_path):
    seen = Recorder()
    result = RunEngine(_station(), tmp_path, sample="s1", subscribers=[seen]).run(make(Ticks, points=5))
    assert result.status == "completed", result.error
    names = seen.names()
    assert names[0] == "start" and names[-1] == "stop"
    assert names[1:3] == ["descriptor", "descriptor"]
    assert names.count("event") == 5 and names.count("progress") == 5
    start, stop = seen.docs[0][1], seen.docs[-1][1]
    assert isinstance(start, RunStart) and isinstance(stop, RunStop)
    assert start.run_id == result.run_id == stop.run_id
    assert start.sample == "s1" and start.procedure == "ticks" and start.path == str(result.path)
    assert start.parameters["points"] == (5, "") and start.parameters["interval_s"] == (1.0, "s")
    assert start.station_name == default_station()["station"]["name"]
    descriptors = [d for n, d in seen.docs if n == "descriptor"]
    assert [d.stream for d in descriptors] == ["ticks", "unused"]
    assert all(isinstance(d, Descriptor) for d in descriptors)
    assert [c.name for c in descriptors[0].columns] == ["time_s", "index", "value_V"]
    events = [d for n, d in seen.docs if n == "event"]
    assert all(isinstance(e, Event) and e.stream == "ticks" for e in events)
    assert [e.seq_num for e in events] == [1, 2, 3, 4, 5]
    assert [e.data["index"] for e in events] == [0, 1, 2, 3, 4]
    assert [e.data["time_s"] for e in events] == [0.0, 1.0, 2.0, 3.0, 4.0]  # 1 s apart on the virtual clock
    progress = [d.fraction for n, d in seen.docs if n == "progress"]
    assert all(isinstance(d, Progress) for n, d in seen.docs if n == "progress")
    assert progress == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    logs = [d.message for n, d in seen.docs if n == "log"]
    assert all(isinstance(d, LogLine) for n, d in seen.docs if n == "log")
    assert logs[0] == f"run {result.run_id} started" and logs[-1] == "ended: completed"
    assert stop.status == "completed" and stop.reason is None
    assert dict(stop.num_events) == {"ticks": 5, "unused": 0} == result.num_events
    # analyse() got the streams read back from the file: 0 + 1 + 2 + 3 + 4 mV
    assert stop.results == result.results == {"rows": 5, "sum_V": pytest.approx(0.010), "streams": ["ticks"]}
    run = load_run(result.path)
    assert run.status == "completed" and run.results == result.results
    assert run.streams["ticks"]["index"].tolist() == [0, 1, 2, 3, 4]
    assert [e.split(" ", 1)[1] for e in run.events] == logs  # every log document is in the file, in order


def test_a_failing_subscriber_is_dropped_and_the_run_goes_on(tmp_path):
    calls = []

    def broken(name, doc):
        calls.append(name)
        if name == "event":
            raise RuntimeError("live plot crashed")

    after = Recorder()
    result = RunEngine(_station(), tmp_path, subscribers=[broken, after]).run(make(Ticks, points=4))
    assert result.status == "completed", result.error
    assert calls == ["start", "descriptor", "descriptor", "log", "event"]  # dropped at its failure
    assert after.names().count("event") == 4  # the others still get every document
    assert len(load_run(result.path).streams["ticks"]) == 4


def test_a_failing_critical_subscriber_fails_the_run_and_the_safe_state_still_runs(tmp_path):
    station = _station()

    def must_store(name, doc):
        if name == "event" and doc.seq_num == 3:
            raise OSError("catalog disk full")

    engine = RunEngine(station, tmp_path)
    engine.subscribe(must_store, critical=True)
    result = engine.run(make(Ticks, points=6))
    assert result.status == "failed" and "catalog disk full" in result.error
    run = load_run(result.path)
    assert run.status == "failed"
    assert len(run.streams["ticks"]) == 3  # the writer comes first: the row that failed is stored
    assert any(e.endswith("ended: failed: OSError: catalog disk full") for e in run.events)


def test_a_row_for_an_undeclared_stream_fails_the_run_naming_the_streams(tmp_path):
    class Stray(Ticks):
        def execute(self):
            self.record("tiks", {"time_s": 0.0})

    result = RunEngine(_station(), tmp_path).run(Stray())
    assert result.status == "failed"
    assert "'tiks'" in result.error and "ticks, unused" in result.error


def test_run_file_writer_alone_writes_a_readable_run(tmp_path):
    """The document → HDF5 subscriber without the engine (what a resumed or replayed stream would use)."""
    path = tmp_path / "r.h5"
    writer = RunFileWriter(flush_interval_s=0.1)
    writer("start", RunStart("r1", "ticks", "s", "op", "bench", "2026-12-01T00:00:00+00:00",
                             parameters={"points": (2, "")}, path=str(path)))
    writer("descriptor", Descriptor("r1", "ticks", (Column("time_s", "s"), Column("index", "", "i8")), "index",
                                    "time_s"))
    writer("event", Event("r1", "ticks", 1, 0.0, {"time_s": 0.5, "index": 7}))
    writer("log", LogLine("r1", "2026-12-01T00:00:01+00:00", "hello"))
    writer("progress", Progress("r1", 0.5))
    writer("stop", RunStop("r1", "2026-12-01T00:00:02+00:00", "aborted", "abort requested", {"rows": 1}))
    run = load_run(path)
    assert run.status == "aborted" and run.info["end_time"] == "2026-12-01T00:00:02+00:00"
    assert run.info["start_time"] == "2026-12-01T00:00:00+00:00" and run.parameters == {"points": 2}
    assert run.streams["ticks"]["index"].tolist() == [7] and run.units["points"] == "1"
    assert run.results == {"rows": 1} and run.events[0].endswith(" hello")
    with pytest.raises(RuntimeError, match="before the start document"):
        RunFileWriter()("event", Event("r1", "ticks", 1, 0.0, {}))


# -- bounded memory ----------------------------------------------------------------------------------------------
def test_memory_does_not_grow_with_the_rows(tmp_path):
    """30,000 rows on the virtual clock: the Python heap at row 30,000 is within 64 B/row of that at row 6,000
    (keeping the rows, as the engine did, costs >= 230 B/row: a 3-key dict alone is 232 B)."""
    n = 30_000
    heap = {}  # rows done → traced heap (B), at the first progress past 20 % and at the end

    def sample(pct):
        rows = round(pct * n / 100)
        if (rows >= n // 5 and not heap) or rows == n:
            heap[rows] = tracemalloc.get_traced_memory()[0]

    engine = RunEngine(_station(), tmp_path, on_progress=sample)
    tracemalloc.start()
    try:
        result = engine.run(make(Ticks, points=n, interval_s=0.0))
    finally:
        tracemalloc.stop()
    assert result.status == "completed", result.error
    assert result.results["rows"] == n
    first = min(heap)
    assert first < 0.25 * n
    growth_per_row = (heap[n] - heap[first]) / (n - first)
    assert growth_per_row < 64, f"{growth_per_row:.0f} B per row"


# -- N-D columns -------------------------------------------------------------------------------------------------
def test_nd_columns_are_stored_with_units_and_axes_and_read_back_as_arrays(tmp_path):
    result = RunEngine(_station(), tmp_path).run(make(Spectra, points=4))
    assert result.status == "completed", result.error
    # (1 + 2 + 3 + 4) × (0 + 1 + ... + 6) = 10 × 21
    assert result.results == {"shape": [4, 7], "total": 210.0}
    run = load_run(result.path)
    counts = run.array("spectra", "counts")
    assert counts.shape == (4, 7)
    np.testing.assert_array_equal(counts[2], np.arange(7) * 3.0)
    image = run.array("spectra", "image_V")
    assert image.shape == (4, 2, 3) and image[3].tolist() == [[3.0, 3.0, 3.0]] * 2
    assert run.streams["spectra"]["time_s"].tolist() == [0.0, 1.0, 2.0, 3.0]
    col = run.columns["spectra"]["counts"]
    assert (col.units, col.shape, col.axes, col.axis_units) == ("1", (7,), ("wavelength_nm",), ("nm",))
    assert col.axis_values == (SPECTRUM_NM,)
    img = run.columns["spectra"]["image_V"]
    assert (img.units, img.shape, img.axes, img.axis_values) == ("V", (2, 3), ("row", "col"), ())
    assert run.columns["spectra"]["time_s"].shape == ()
    import h5py

    with h5py.File(result.path, "r") as f:  # the fixed axis is stored once, with its units
        axis = f["entry/spectra/wavelength_nm"]
        assert axis.shape == (7,) and axis.attrs["units"] == "nm"
        assert f["entry/spectra/counts"].shape == (4, 7)


def test_a_spectrum_of_the_wrong_shape_fails_the_run_naming_the_column(tmp_path):
    class Short(Spectra):
        def execute(self):
            self.record("spectra", {"time_s": 0.0, "counts": np.zeros(6), "image_V": np.zeros((2, 3))})

    result = RunEngine(_station(), tmp_path).run(Short())
    assert result.status == "failed"
    assert "column counts takes values of shape (7,), got (6,)" in result.error


@pytest.mark.parametrize("column, message", [
    (Column("name", "", "str", shape=(3,)), "a text column must be scalar"),
    (Column("c", "1", shape=(3,), axes=("a", "b")), "at most one per dimension"),
    (Column("c", "1", shape=(3,), axes=("x",), axis_values=((1.0, 2.0),)), "axis x has 2 values, the shape needs 3"),
    (Column("c", "1", shape=(2,), axes=("t",), axis_values=((1.0, 2.0),)), "fixed axis t has the name of a column"),
])
def test_columns_the_writer_cannot_store_are_refused_in_one_line(tmp_path, column, message):
    writer = RunFileWriter()
    writer("start", RunStart("r1", "p", "s", "op", "bench", "2026-12-01T00:00:00+00:00", path=str(tmp_path / "r.h5")))
    with pytest.raises(ValueError, match=message):
        writer("descriptor", Descriptor("r1", "s", (Column("t", "s"), column), "t", "t"))
    writer.close("failed")


def test_the_cli_progress_bar_and_live_warnings_are_subscribers(tmp_path):
    from rich.console import Console
    from rich.progress import Progress as Bar

    from labctl.cli import _LiveWarnings, _ProgressBar

    class Warns(Ticks):
        def execute(self):
            super().execute()
            self.log("WARNING: lamp drifted")
            self.log("all fine")

    console = Console(record=True, width=200)
    seen = []
    with Bar(console=console, disable=True) as bar:
        task = bar.add_task("run", total=100)
        subscribers = [_ProgressBar(bar, task), _LiveWarnings(console),
                       lambda name, doc: seen.append(bar.tasks[0].completed) if name == "progress" else None]
        result = RunEngine(_station(), tmp_path, subscribers=subscribers).run(make(Warns, points=4))
    assert result.status == "completed", result.error
    assert seen == pytest.approx([25.0, 50.0, 75.0, 100.0])
    shown = console.export_text()
    assert "WARNING: lamp drifted" in shown and "all fine" not in shown


def test_csv_export_gives_an_nd_column_one_column_per_element(tmp_path):
    import pandas as pd

    from labctl.export import export_csv

    result = RunEngine(_station(), tmp_path).run(make(Spectra, points=3))
    (path,) = export_csv(load_run(result.path), tmp_path / "csv")
    text = path.read_text()
    assert "# axis counts dimension 0 wavelength_nm (nm): 400, 450, 500, 550, 600, 650, 700" in text
    frame = pd.read_csv(path, comment="#")
    assert list(frame.columns) == ["time_s", *[f"counts[{k}]" for k in range(7)],
                                   *[f"image_V[{i},{j}]" for i in range(2) for j in range(3)]]
    assert frame["counts[3]"].tolist() == [3.0, 6.0, 9.0]  # 3 × (row + 1)
    assert frame["image_V[1,2]"].tolist() == [0.0, 1.0, 2.0]
