"""Long-run storage: stream columns compressed, fixed-width text for per-row text, columns read selectively."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from labctl.storage import Column, RunWriter, StoredStreams, load_run, stream_columns, stream_rows

COLUMNS = [Column("time_s", "s"), Column("power_mW_cm2", "mW/cm^2"), Column("direction", "", "i4"),
           Column("state", "", "S64"), Column("note", "", "str")]


def _writer(path, **kw):
    w = RunWriter(path, **kw)
    w.write_metadata(run_id="r1", procedure="mpp", sample="A17", operator="op", area_cm2=0.049, parameters={},
                     station={"station": {"name": "x"}}, idn={}, software_version="0",
                     start_time="2026-01-01T00:00:00Z")
    w.create_stream("mpp", COLUMNS, signal="power_mW_cm2", axes="time_s")
    return w


def _row(k: int) -> dict:
    return {"time_s": k * 1.0, "power_mW_cm2": 16.76 + 1e-3 * np.sin(k / 50), "direction": 1 if k % 2 else -1,
            "state": json.dumps({"v": round(0.98 + 1e-4 * (k % 7), 6), "k": k}), "note": "x"}


def test_columns_of_fixed_size_are_compressed_and_the_file_grows_below_the_raw_size(tmp_path):
    """A 20,000-row stream: numbers and fixed-width text are gzip-compressed chunks (the file is smaller than the
    raw bytes of those columns); variable-length text stays as it was (HDF5 cannot filter it)."""
    path = tmp_path / "run.h5"
    w = _writer(path)
    for k in range(20_000):
        w.append("mpp", _row(k))
    w.close("completed")
    with h5py.File(path) as f:
        group = f["entry/mpp"]
        for name in ("time_s", "power_mW_cm2", "direction", "state"):
            assert group[name].compression == "gzip" and group[name].shuffle
        assert group["note"].compression is None
        raw = sum(group[n].size * group[n].dtype.itemsize for n in ("time_s", "power_mW_cm2", "direction", "state"))
        stored = sum(group[n].id.get_storage_size() for n in ("time_s", "power_mW_cm2", "direction", "state"))
    assert stored < 0.5 * raw
    run = load_run(path)
    assert json.loads(run.streams["mpp"]["state"].iloc[12_345]) == json.loads(_row(12_345)["state"])


def test_fixed_width_text_refuses_a_value_too_long_instead_of_truncating_it(tmp_path):
    w = _writer(tmp_path / "run.h5")
    with pytest.raises(ValueError, match="stream mpp: column state: 70 characters, the column holds 64"):
        w.append("mpp", {**_row(0), "state": "x" * 70})
    w.close("failed")


def test_fixed_width_text_survives_a_resumed_segment(tmp_path):
    """A reopened run (labctl resume) keeps the column fixed-width: rows after the resume read back the same."""
    path = tmp_path / "run.h5"
    w = _writer(path)
    w.append("mpp", _row(0))
    w.close("interrupted")
    w2 = RunWriter(path, resume=True, reason="test")
    w2.append("mpp", _row(1))
    w2.close("completed")
    frame = load_run(path).streams["mpp"]
    assert [json.loads(s)["k"] for s in frame["state"]] == [0, 1]
    with h5py.File(path) as f:
        assert f["entry/mpp/state"].dtype.kind == "S"


def test_stored_streams_read_only_the_columns_asked_for(tmp_path):
    """analyse() of a long run reads the few columns it needs, a slice of rows at a time, from the file."""
    w = _writer(tmp_path / "run.h5")
    for k in range(1000):
        w.append("mpp", _row(k))
    streams = StoredStreams(w)
    assert stream_rows(streams, "mpp") == 1000
    part = stream_columns(streams, "mpp", ["time_s", "direction"], slice(990, None))
    assert list(part.columns) == ["time_s", "direction"]
    assert part["time_s"].tolist() == [float(k) for k in range(990, 1000)]
    assert stream_columns(streams, "mpp", ["state"], slice(999, None))["state"].iloc[0] == _row(999)["state"]
    assert streams._frames == {}  # nothing kept
    frame = {"mpp": streams["mpp"]}  # a plain mapping of DataFrames, as outside a run
    assert stream_columns(frame, "mpp", ["direction"], slice(0, 3))["direction"].tolist() == [-1, 1, -1]
    assert stream_rows({}, "mpp") == 0 and stream_columns({}, "mpp", ["time_s"]).empty
    w.close("completed")


def test_load_run_lazy_reads_streams_only_when_asked(tmp_path):
    """``load_run(path, lazy=True)`` (what ``labctl resume`` reads): metadata at once, a stream's rows counted and a
    few columns read without loading the stream, the whole stream when asked for — equal to the eager read."""
    path = tmp_path / "run.h5"
    w = _writer(path)
    for k in range(500):
        w.append("mpp", _row(k))
    w.close("interrupted")
    lazy = load_run(path, lazy=True)
    assert list(lazy.streams) == ["mpp"] and set(lazy.columns["mpp"]) == {c.name for c in COLUMNS}
    assert stream_rows(lazy.streams, "mpp") == 500
    last = stream_columns(lazy.streams, "mpp", ["state"], slice(-1, None))
    assert json.loads(last["state"].iloc[0])["k"] == 499
    assert lazy.streams._frames == {}
    eager = load_run(path)
    assert lazy.streams["mpp"].equals(eager.streams["mpp"])
