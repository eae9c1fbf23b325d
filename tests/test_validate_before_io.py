"""Every parameter a driver would reject is refused by the procedure's ``validate``: one line, exit 2, no run
file, no instrument opened (issue 7, items 5 and 7).

Expected allowed values come from the instruments' manuals, not from the drivers under test: the SR830's time
constants are 10 µs … 30 ks in a 1-3 sequence, and above 200 Hz detection at most 30 s (SR830 manual, OFLT);
the Keithley 2420's smallest compliance is 0.1 % of its lowest (10 µA) range, 1e-8 A (2420 manual); the 2450's
sweep delay is 0 or at least 50 µs (2450 reference manual, :SOURce:SWEep:VOLTage:LINear); a 2400 built-in sweep
holds at most 2500 points (2400 manual, :SOURce:SWEep:POINts).
"""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

from labctl.cli import main
from labctl.config import ConfigError, load_station
from labctl.station import Station
from procedures.jv import JVProcedure
from sim_instruments.serve import served_station, start_server
from tests.helpers import REPO, station_file

STATION = str(REPO / "station.yaml")
SMALL_GRID = ["--set", "start_nm=500", "--set", "stop_nm=600", "--set", "step_nm=50"]


def _invoke(args):
    return CliRunner().invoke(main, args, catch_exceptions=False)


@pytest.fixture
def connections(monkeypatch):
    """Every Station.connect call of the test (none may happen when the input is refused)."""
    calls = []
    real = Station.connect

    def spy(self, roles=None):
        calls.append(roles)
        return real(self, roles)

    monkeypatch.setattr(Station, "connect", spy)
    return calls


def _assert_refused(res, out, connections, fragments):
    assert res.exit_code == 2, res.output
    text = res.stderr.strip()  # with --json, stdout holds the JSON error object instead
    assert len(text.splitlines()) == 1, res.output
    assert "Traceback" not in text
    for fragment in fragments:
        assert fragment in text, (fragment, text)
    assert not list(out.rglob("*.h5")), "a run file was written"
    assert connections == [], "an instrument was opened"


def _driver(role, driver):
    return lambda d: d["instruments"][role].update(driver=driver)


def _grating(row, number):
    return lambda d: d["eqe"]["order_sorting"][row].update(grating=number)


CASES = [
    # SR830 time constants: 1-3 steps; 0.5 s is between 0.3 and 1 s; at the 220 Hz chopper the list ends at 30 s
    ("tau-not-a-step", "eqe-calibration", ["--set", "time_constant_s=0.5"], None,
     ["time_constant_s = 0.5", "nearest 0.3 or 1 s", "allowed: 1e-05, 3e-05, 0.0001", ", 10, 30 s)"]),
    ("tau-not-a-step-0.2", "eqe-calibration", ["--set", "time_constant_s=0.2"], None,
     ["time_constant_s = 0.2", "nearest 0.1 or 0.3 s"]),
    ("tau-not-a-step-below-200Hz", "eqe-calibration", ["--set", "time_constant_s=0.5"],
     lambda d: d["eqe"].update(chopper_frequency_Hz=100), ["nearest 0.3 or 1 s", ", 10000, 30000 s)"]),
    # above 200 Hz detection (the default chopper runs at 220 Hz) the SR830 refuses time constants above 30 s
    ("tau-too-long-above-200Hz", "eqe-calibration", ["--set", "time_constant_s=100"], None,
     ["time_constant_s = 100", "at most 30 s", "220 Hz", "eqe.chopper_frequency_Hz"]),
    # SR570 sensitivities: 1-2-5 steps from 1 pA/V to 1 mA/V (SR570 manual)
    ("sr570-sensitivity-not-a-step", "eqe-calibration", ["--set", "preamp_sensitivity_A_V=3e-6"],
     lambda d: d["instruments"].update(preamp={"driver": "sr570", "resource": "sim://preamp", "baud_rate": 9600}),
     ["preamp_sensitivity_A_V = 3e-06", "nearest 2e-06 or 5e-06 A/V", "allowed: 1e-12, 2e-12, 5e-12", "0.001 A/V)"]),
    # the monochromator: a grid point outside the range of the grating the table gives it (simulated gratings:
    # 1 = 200-1400 nm, 2 = 400-2800 nm, station.yaml simulation.optics defaults)
    ("wavelength-beyond-grating-1", "eqe-calibration",
     ["--set", "start_nm=1300", "--set", "stop_nm=1500", "--set", "step_nm=100"], _grating(3, 1),
     ["1500 nm", "grating 1", "200-1400 nm"]),
    ("wavelength-below-grating-2", "eqe-calibration",
     ["--set", "start_nm=300", "--set", "stop_nm=400", "--set", "step_nm=50"], _grating(0, 2),
     ["300 nm", "grating 2", "400-2800 nm"]),
    # source-meters
    ("compliance-below-2420-minimum", "jv", ["--set", "compliance_A=5e-9", "--set", "light=false"],
     _driver("smu", "keithley2420"), ["compliance_A = 5e-09", "1e-08"]),
    ("2450-sweep-delay-below-50us", "jv", ["--set", "scan_rate_V_s=0", "--set", "delay_s=2e-5"],
     _driver("smu", "keithley2450"), ["delay_s = 2e-05", "0 or 5e-05 to"]),
    # 0.01 V / 0.1652 V/s = 60.533 ms per point, a reading at 1 PLC (50 Hz, auto-zero: 3 x 20 ms + 0.5 ms) takes
    # 60.5 ms: a 32.7 µs delay; 50 µs needs at most 0.01 / 0.06055 = 0.165153 V/s
    ("2450-scan-rate-leaves-a-sub-50us-delay", "jv", ["--set", "scan_rate_V_s=0.1652"],
     _driver("smu", "keithley2450"), ["scan_rate_V_s = 0.1652", "32.7 µs", "at most 0.165153 V/s"]),
    ("qss-prescan-beyond-2500-points", "jv",
     ["--set", "mode=qss", "--set", "start_V=-100", "--set", "stop_V=100", "--set", "precondition_V=0"],
     lambda d: d["instruments"]["smu"].update(limits={"voltage_V": 200, "current_A": 0.02}),
     ["start_V/stop_V = -100/100", "4001 points", "stop_V - start_V <= 124.95 V"]),
    # item 7: a QSS time limit shorter than the stability window leaves every point unconverged
    ("qss-max-shorter-than-window", "jv", ["--set", "mode=qss", "--set", "qss_max_s=5"], None,
     ["qss_max_s = 5", "qss_window_s = 10", "allowed: qss_max_s >= qss_window_s"]),
    ("qss-max-shorter-than-window-dark", "jv",
     ["--set", "mode=qss", "--set", "light=false", "--set", "qss_window_s=30", "--set", "qss_max_s=20"], None,
     ["qss_max_s = 20", "qss_window_s = 30"]),
]


@pytest.mark.parametrize(("procedure", "args", "mutate", "fragments"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_a_value_the_driver_rejects_is_refused_before_any_io(tmp_path, connections, procedure, args, mutate,
                                                             fragments):
    station = station_file(tmp_path, mutate)
    out = tmp_path / "runs"
    res = _invoke(["run", procedure, "--station", str(station), "--out", str(out), "--no-plot", *args])
    _assert_refused(res, out, connections, fragments)


def test_qss_limit_below_the_window_is_refused_and_above_it_points_converge(tmp_path, connections):
    """qss_max_s just below qss_window_s is refused; above it the points converge. A 1-3 step time constant runs."""
    out = tmp_path / "runs"
    qss = ["run", "jv", "--station", STATION, "--out", str(out), "--json", "--no-plot", "--set", "mode=qss",
           "--set", "qss_points=4", "--set", "qss_window_s=2"]
    refused = _invoke([*qss, "--set", "qss_max_s=1.9"])
    _assert_refused(refused, out, connections, ["qss_max_s = 1.9", "qss_window_s = 2"])
    assert json.loads(refused.stdout)["status"] == "error"
    ran = _invoke([*qss, "--set", "qss_max_s=4"])
    assert ran.exit_code == 0, ran.output
    assert "warnings" not in json.loads(ran.stdout)["results"], ran.output  # every point converged
    cal = _invoke(["run", "eqe-calibration", "--station", STATION, "--out", str(out), "--json", "--no-plot",
                   *SMALL_GRID, "--set", "time_constant_s=0.3"])
    assert cal.exit_code == 0, cal.output


@pytest.fixture(scope="module")
def eqe_runs(tmp_path_factory):
    """A small calibration run and an EQE run on it (neither is a J–V run)."""
    out = tmp_path_factory.mktemp("not-jv")
    cal = _invoke(["run", "eqe-calibration", "--station", STATION, "--out", str(out), "--json", "--no-plot",
                   *SMALL_GRID])
    cal_file = json.loads(cal.stdout)["file"]
    eqe = _invoke(["run", "eqe", "--station", STATION, "--out", str(out), "--json", "--no-plot", *SMALL_GRID,
                   "--set", f"calibration_file={cal_file}"])
    return {"calibration": cal_file, "eqe": json.loads(eqe.stdout)["file"]}


@pytest.mark.parametrize("which", ["eqe", "calibration", "station.yaml"])
def test_jv_file_that_is_not_a_jv_run_is_refused(tmp_path, eqe_runs, connections, which):
    jv_file = STATION if which == "station.yaml" else eqe_runs[which]
    out = tmp_path / "runs"
    res = _invoke(["run", "eqe", "--station", STATION, "--out", str(out), "--no-plot", *SMALL_GRID,
                   "--set", f"calibration_file={eqe_runs['calibration']}", "--set", f"jv_file={jv_file}"])
    expected = "not a labctl run file" if which == "station.yaml" else "not a J–V run"
    _assert_refused(res, out, connections, ["jv_file = ", expected, "labctl run jv"])


def test_qss_is_not_refused_for_the_staircase_step_it_does_not_use():
    """step_V sets the staircase's points only: a QSS run with a fine step_V is valid (it used to be refused)."""
    station = Station(load_station(REPO / "station.yaml"))
    proc = JVProcedure()
    proc.mode, proc.step_V = "qss", 0.0005  # (1.3 V + 0.1 V) / 0.5 mV + 1 = 2801 points > a 2400's 2500
    proc.validate(station)
    proc.mode = "staircase"
    with pytest.raises(ConfigError, match="step_V = 0.0005: gives 2801 points"):
        proc.validate(station)
    assert station.instruments == {}


def test_eqe_without_anyone_to_swap_detectors_is_refused_before_any_io(tmp_path, connections):
    """A bench that is not simulated needs an operator for the detector swaps; with stdin not a terminal (as under
    CliRunner) there is none. It used to configure the lock-in, write a run file and fail at the first swap.
    Real loopback TCP instruments (the simulated bench served without its simulated operator)."""
    config = load_station(REPO / "station.yaml")
    server = start_server(config)
    try:
        data = served_station(config, server.resource_strings())
        data["simulation"]["operator_resource"] = None  # nobody at the bench
        station = tmp_path / "served.yaml"
        station.write_text(yaml.safe_dump(data))
        out = tmp_path / "runs"
        res = _invoke(["run", "eqe-calibration", "--station", str(station), "--out", str(out), "--no-plot",
                       *SMALL_GRID])
    finally:
        server.close()
    _assert_refused(res, out, connections, ["eqe-calibration", "nobody can be asked", "run it from a terminal"])
