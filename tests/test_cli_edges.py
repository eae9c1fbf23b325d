"""The CLI at the edge with the file system and the terminal (issue 7, items 6 and 8).

Bad output folders, run files that cannot be written, a missing reference-detector table: one line, exit 2, found
before any instrument is queried. Tests run as root, who may write almost anywhere, so "cannot be written" is
made real: a path under a regular file, and /proc (no file can be created there, whoever asks); permission bits
alone would prove nothing as root.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from labctl.cli import main
from tests.helpers import REPO, default_station

#: an smu nobody answers for: if the folder were checked after connecting, the error would name the smu instead
UNREACHABLE = {"resource": "TCPIP::127.0.0.1::1::SOCKET", "timeout_ms": 500}
UNWRITABLE = "/proc/labctl-cannot-write-here"  # procfs: no new files, not even for root


def _invoke(args):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def _station(tmp_path: Path, mutate=None, name: str = "station.yaml") -> Path:
    data = default_station()
    if mutate:
        mutate(data)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def _one_clean_line(res, fragment: str) -> None:
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error:") and fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def run_file(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs")
    res = _invoke(["run", "jv", "--station", str(REPO / "station.yaml"), "--out", str(out), "--json", "--no-plot",
                   "--set", "direction=reverse"])
    assert res.exit_code == 0, res.output
    return Path(json.loads(res.stdout)["file"])


@pytest.fixture
def a_file(tmp_path) -> Path:
    path = tmp_path / "notes.txt"
    path.write_text("a regular file\n")
    return path


# -- item 6: run ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["file", "under-file", "proc"])
def test_run_out_that_cannot_hold_run_files_is_one_line_before_any_instrument(tmp_path, a_file, where):
    out = {"file": str(a_file), "under-file": str(a_file / "runs"), "proc": UNWRITABLE}[where]
    station = _station(tmp_path, lambda d: d["instruments"]["smu"].update(UNREACHABLE))
    res = _invoke(["run", "jv", "--station", str(station), "--out", out])
    _one_clean_line(res, f"--out = '{out}'")
    assert "smu" not in res.stderr  # found before the (unreachable) smu was even opened
    assert a_file.read_text() == "a regular file\n"


@pytest.mark.parametrize(
    ("data_dir", "fragment"),
    [("notes.txt/runs", "is not a folder"), (UNWRITABLE, "no file can be created there"),
     ("bad\0name", "not a usable path"), ("x" * 300, "longer than the 255 bytes")],
    ids=["under-a-file", "proc", "nul-byte", "name-too-long"],
)
def test_data_dir_on_a_path_that_cannot_exist_names_the_key(tmp_path, a_file, data_dir, fragment):
    station = _station(tmp_path, lambda d: (d["station"].update(data_dir=data_dir),
                                            d["instruments"]["smu"].update(UNREACHABLE)))
    res = _invoke(["run", "jv", "--station", str(station)])
    _one_clean_line(res, "station.data_dir")
    assert fragment in res.stderr


def test_run_json_error_object_on_stdout_when_the_run_cannot_start(tmp_path, a_file):
    for args, fragment in ((["--out", str(a_file)], "--out"), (["--set", "stop_V=3"], "stop_V = 3.0"),
                           (["--set", "nonsense=1"], "unknown parameter 'nonsense'")):
        res = _invoke(["run", "jv", "--station", str(REPO / "station.yaml"), "--json", *args])
        assert res.exit_code == 2, res.output
        payload = json.loads(res.stdout)  # exactly one JSON object on stdout
        assert payload["status"] == "error" and payload["file"] is None and payload["results"] == {}
        assert fragment in payload["error"] and "\n" not in payload["error"]
        assert fragment in res.stderr  # and the human line on stderr


# -- item 6: plot and export ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("out", "fragment"),
    [("missing/x.png", "does not exist"), ("notes.txt/x.png", "is a file"), ("x.nosuchformat", "allowed suffixes")],
    ids=["missing-folder", "folder-is-a-file", "unknown-format"],
)
def test_plot_out_that_cannot_be_written_is_one_line(tmp_path, a_file, run_file, out, fragment):
    res = _invoke(["plot", str(run_file), "--out", str(tmp_path / out)])
    _one_clean_line(res, "--out")
    assert fragment in res.stderr


def test_plot_into_an_unwritable_folder_and_into_a_folder(tmp_path, run_file):
    _one_clean_line(_invoke(["plot", str(run_file), "--out", f"{UNWRITABLE}.png"]), "no file can be created there")
    res = _invoke(["plot", str(run_file), "--out", str(tmp_path)])  # an existing folder: the PNG goes in it
    assert res.exit_code == 0 and res.stdout.strip() == str(tmp_path / (run_file.stem + ".png"))
    assert (tmp_path / (run_file.stem + ".png")).stat().st_size > 10_000


@pytest.mark.parametrize("where", ["file", "under-file", "proc"])
def test_export_out_that_cannot_hold_csv_files_is_one_line(tmp_path, a_file, run_file, where):
    out = {"file": str(a_file), "under-file": str(a_file / "csv"), "proc": UNWRITABLE}[where]
    _one_clean_line(_invoke(["export", str(run_file), "--csv", "--out", out]), f"--out = '{out}'")


# -- item 6: the reference-detector table ---------------------------------------------------------------------
def test_missing_reference_csv_breaks_only_what_needs_it(tmp_path):
    station = _station(tmp_path, lambda d: d["eqe"]["reference_detectors"]["si"].update(
        responsivity="certificates/si-2026.csv"))
    ran = _invoke(["run", "jv", "--station", str(station), "--out", str(tmp_path / "runs"), "--no-plot"])
    assert ran.exit_code == 0, ran.output  # a J-V does not need the EQE tables
    checked = _invoke(["station", "check", "--station", str(station)])
    assert checked.exit_code == 0 and "UNREACHABLE" not in checked.output, checked.output
    for stop in ([], ["--set", "stop_nm=900"]):
        res = _invoke(["run", "eqe-calibration", "--station", str(station), "--out", str(tmp_path / "cal"), *stop])
        _one_clean_line(res, "eqe.reference_detectors.si.responsivity = 'certificates/si-2026.csv'")
        assert not list((tmp_path / "cal").rglob("*.h5"))


# -- item 8: what goes where ----------------------------------------------------------------------------------
def test_table_and_paths_on_stdout_warnings_on_stderr(tmp_path):
    station = _station(tmp_path, lambda d: d["simulation"]["device"].update(area_cm2=1.0))
    res = _invoke(["run", "jv", "--station", str(station), "--out", str(tmp_path / "runs"), "--set", "area_cm2=1",
                   "--set", "expected_jsc_mA_cm2=0", "--set", "direction=reverse"])
    assert res.exit_code == 0, res.output
    assert "Figures of merit" in res.stdout and "status: completed" in res.stdout
    file_line = next(line for line in res.stdout.splitlines() if line.startswith("file:"))
    assert Path(file_line.split(None, 1)[1]).is_file()  # one line, whole path: pipeable
    assert "plot:" in res.stdout
    assert "WARNING" in res.stderr and "WARNING" not in res.stdout
    assert "Figures of merit" not in res.stderr


def test_misspelt_top_level_key_names_the_key_not_the_block(tmp_path):
    data = default_station()
    data["instrumnets"] = data.pop("instruments")
    path = tmp_path / "station.yaml"
    path.write_text(yaml.safe_dump(data))
    res = _invoke(["run", "jv", "--station", str(path)])
    _one_clean_line(res, "unknown key 'instrumnets'")
    assert "did you mean 'instruments'" in res.stderr
    assert "keithley2400" not in res.stderr and "missing key" not in res.stderr
    assert len(res.stderr) < 200


def test_params_names_are_whole_in_a_pipe():
    from procedures import REGISTRY

    for name, cls in REGISTRY.items():
        res = _invoke(["params", name])
        assert res.exit_code == 0
        words = set(res.stdout.replace("│", " ").split())
        missing = [p for p in cls()._parameters if p not in words]
        assert not missing, f"{name}: truncated or wrapped in a pipe: {missing}"
        assert "…" not in res.stdout
