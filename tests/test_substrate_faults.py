"""How a substrate ends when something goes wrong, and the order of the safe state: a relay that does not read
back, a switch that times out, sources off before relays open, and pixels on two source meters at once."""

from __future__ import annotations

import contextlib
import threading
import time
from types import SimpleNamespace

import pytest

from labctl.config import parse_station
from labctl.station import Station
from labctl.storage import load_run
from labctl.substrate import SubstrateRunner, parse_pixels
from procedures.jv import JVProcedure
from sim_instruments.faults import FaultSpec
from tests import substrate_fakes
from tests.substrate_fakes import substrate_station


@pytest.fixture(autouse=True)
def fake_switch():
    substrate_fakes.register()
    substrate_fakes.LOG.clear()
    substrate_fakes.STUCK.clear()
    yield
    substrate_fakes.STUCK.clear()


def _runner(tmp_path, data: dict, pixels: str = "all", **kwargs) -> tuple[SubstrateRunner, Station]:
    config = parse_station(data)
    name, layout = config.layout()
    station = Station(config)
    runner = SubstrateRunner(station, name, layout, parse_pixels(pixels, name, layout),
                             kwargs.pop("make_procedure", lambda p: JVProcedure()), tmp_path / "runs", sample="S",
                             **kwargs)
    return runner, station


def _watch_smu_output(station: Station, role: str = "smu") -> None:
    """Log every output command the SMU emulator of ``role`` gets into the fake switch's LOG (one time line)."""
    emulator = station[role].adapter.emulator
    handle = emulator.handle

    def watched(message: str, *args, **kwargs):
        if message.strip().upper().startswith(":OUTP") and "?" not in message:
            substrate_fakes.log_event(role, "output", message.strip())
        return handle(message, *args, **kwargs)

    emulator.handle = watched


def _output_on(station: Station, role: str = "smu") -> bool:
    return station[role].adapter.emulator.handle(":OUTP?").strip() == "1"


def _closed(station: Station) -> str:
    return station["switch"].adapter.emulator.handle("STATE?")


def test_a_relay_that_does_not_close_stops_the_substrate_before_anything_is_measured(tmp_path):
    substrate_fakes.STUCK.add(3)  # pixel 3's relay never closes (STATE? honestly says so)
    runner, station = _runner(tmp_path, substrate_station(pixels=5))
    result = runner.run()
    assert result.status == "failed"
    assert result.error.startswith("switch 'switch': select channel 3 (pixel 3): SwitchReadbackError: close [3]: "
                                   "channels [3] read back open"), result.error
    # found by the contact checks, which come first: nothing was measured
    assert [result.pixels[n].status for n in "12345"] == ["not measured"] * 5
    assert result.pixels["4"].reason == f"not measured: {result.error}"
    assert not _output_on(station) and _closed(station) == ""
    assert [o.role for o in station.safe_report] == ["smu", "shutter", "switch"] and all(
        o.ok for o in station.safe_report)
    assert list((tmp_path / "runs").rglob("*.h5")) == []
    assert result.file.exists()


def test_a_relay_that_sticks_mid_substrate_stops_it_with_everything_safe_and_the_measured_files_intact(tmp_path):
    runner, station = _runner(tmp_path, substrate_station(pixels=5))

    def after(outcome):  # once pixel 2 is measured, pixel 3's relay stops closing
        if outcome.name == "2":
            substrate_fakes.STUCK.add(3)

    runner.on_pixel = after
    result = runner.run()
    assert result.status == "failed"
    assert result.error.startswith("switch 'switch': select channel 3 (pixel 3): SwitchReadbackError: close [3]: "
                                   "channels [3] read back open"), result.error
    assert [result.pixels[n].status for n in "12345"] == ["completed", "completed", "not measured", "not measured",
                                                          "not measured"]
    assert result.pixels["3"].file is None  # nothing was sourced on a pixel that could not be connected
    assert not _output_on(station) and _closed(station) == ""
    assert [o.role for o in station.safe_report] == ["smu", "shutter", "switch"] and all(
        o.ok for o in station.safe_report)
    files = sorted((tmp_path / "runs").rglob("*.h5"))
    assert len(files) == 2
    for name in "12":
        run = load_run(result.pixels[name].file)
        assert run.status == "completed" and len(run.streams["jv"]) > 0


def test_a_switch_that_times_out_stops_the_substrate(tmp_path):
    runner, station = _runner(tmp_path, substrate_station(pixels=3))

    def after(outcome):  # once pixel 1 is done, the switch's next message gets no reply
        if outcome.name == "1":
            station.bench.faults.add(FaultSpec(instrument="switch", kind="timeout", at_message=1))

    runner.on_pixel = after
    result = runner.run()
    assert result.status == "failed"
    assert result.error.startswith("switch 'switch': select channel 2 (pixel 2): "), result.error
    assert [result.pixels[n].status for n in "123"] == ["completed", "not measured", "not measured"]
    assert not _output_on(station) and _closed(station) == ""
    switch_safe = station.safe_report[-1]
    assert switch_safe.role == "switch" and switch_safe.ok, switch_safe


def test_the_safe_state_turns_sources_off_before_it_opens_relays(tmp_path):
    """A slow SMU (0.3 s to answer its output command) and a quick switch: the relays still open only after
    the output is off (in parallel, the switch would have been done first)."""
    runner, station = _runner(tmp_path, substrate_station(pixels=2))
    station.connect(["smu", "switch", "shutter"])
    station["switch"].close_channels([1])
    smu = station["smu"]
    smu.configure_voltage_source(compliance_A=1e-3)
    smu.enable_output()
    emulator = smu.adapter.emulator
    handle = emulator.handle

    def slow(message: str, *args, **kwargs):
        if message.strip().upper().startswith(":OUTP") and "?" not in message:
            time.sleep(0.3)
            substrate_fakes.log_event("smu", "output", message.strip())
        return handle(message, *args, **kwargs)

    emulator.handle = slow
    substrate_fakes.LOG.clear()
    assert station.safe_state() == []
    events = [(source, what) for source, what, _ in substrate_fakes.LOG]
    assert events.index(("smu", "output")) < events.index(("switch", "open all")), events
    assert [o.role for o in station.safe_report] == ["smu", "shutter", "switch"]
    assert not _output_on(station) and _closed(station) == ""


def test_each_pixel_ends_output_off_then_its_relay_open(tmp_path):
    runner, station = _runner(tmp_path, substrate_station(pixels=2))
    station.connect(["smu", "switch", "shutter"])
    _watch_smu_output(station)
    result = runner.run()
    assert result.status == "completed"
    log = [(source, what, detail) for source, what, detail in substrate_fakes.LOG if what in ("output", "relays")]
    for channel in (1, 2):
        closed_at = log.index(("switch", "relays", [channel]))
        opened_at = next(k for k in range(closed_at + 1, len(log)) if log[k][:2] == ("switch", "relays"))
        assert log[opened_at][2] == []
        between = [entry for entry in log[closed_at:opened_at] if entry[0] == "smu"]
        assert between and between[-1][2] in (":OUTP 0", ":OUTP OFF"), between  # off before the relay opened


# -- two source meters ---------------------------------------------------------------------------------------
class _RecordingClock:
    """The station's clock with the concurrency contract of labctl.clock (concurrently / member) recorded."""

    def __init__(self, clock) -> None:
        self._clock = clock
        self.groups: list[list[str]] = []
        self.members: list[tuple[str, str]] = []

    def __getattr__(self, name):
        return getattr(self._clock, name)

    @contextlib.contextmanager
    def concurrently(self, names):
        self.groups.append(list(names))
        outer = self

        class Group:
            @contextlib.contextmanager
            def member(self, name):
                outer.members.append((name, threading.current_thread().name))
                yield

        yield Group()


def test_pixels_on_two_source_meters_run_at_once_each_on_its_own(tmp_path):
    """Pixels 1 and 3 on smu, 2 and 4 on smu2: one worker per source meter, under the clock's concurrency group.
    Each run sees role ``smu`` as its pixel's source meter. The first pixel of each meter waits at a barrier for
    the other: it is passed only if they run at the same time."""
    data = substrate_station(pixels=4, smus=2, contact={"enabled": False})
    data["instruments"]["smu2"]["resource"] = "sim://smu"  # a second emulator (the wiring is another part's)
    barrier = threading.Barrier(2, timeout=10)
    seen: list[tuple[str, str, str, object]] = []
    roles: list[list[str]] = []
    lock = threading.Lock()

    class FakeEngine:
        def __init__(self, view, out_dir, **kwargs) -> None:
            self.view, self.kwargs = view, kwargs

        def run(self, procedure):
            pixel = self.kwargs["pixel"]
            self.view.connect(["smu"])
            with lock:
                seen.append((pixel, threading.current_thread().name, self.view.real_role("smu"),
                             self.view.require("smu", "source_meter")))
                roles.append(sorted(self.view.config.instruments))
            if pixel in ("1", "2"):
                barrier.wait()
            return SimpleNamespace(status="completed", path=tmp_path / f"{pixel}.h5", run_id=f"run-{pixel}",
                                   results={}, error=None)

    runner, station = _runner(tmp_path, data, make_engine=FakeEngine)
    station.clock = _RecordingClock(station.clock)
    result = runner.run()
    assert result.status == "completed", result.error
    assert runner.concurrent
    assert station.clock.groups == [["smu", "smu2"]]
    assert sorted(name for name, _ in station.clock.members) == ["smu", "smu2"]
    by_pixel = {pixel: (thread, role, smu) for pixel, thread, role, smu in seen}
    assert by_pixel["1"][1] == by_pixel["3"][1] == "smu" and by_pixel["2"][1] == by_pixel["4"][1] == "smu2"
    assert by_pixel["1"][0] == by_pixel["3"][0] != by_pixel["2"][0] == by_pixel["4"][0]
    assert by_pixel["1"][2] is station["smu"] and by_pixel["2"][2] is station["smu2"]
    # a run sees its own source meter as "smu", the shutter, and neither the switch nor the other source meter
    assert all(r == ["shutter", "smu"] for r in roles), roles
    assert [o.role for o in station.safe_report][-1] == "switch"
    assert {o.role for o in station.safe_report} == {"smu", "smu2", "shutter", "switch"}


def test_a_procedure_using_more_than_smu_and_shutter_runs_its_pixels_one_after_another(tmp_path):
    data = substrate_station(pixels=2, smus=2, contact={"enabled": False})
    data["instruments"]["smu2"]["resource"] = "sim://smu"

    class NeedsLockin(JVProcedure):
        OPTIONAL = {"shutter": "shutter", "switch": "switch_matrix"}

    runner, _ = _runner(tmp_path, data, make_procedure=lambda p: NeedsLockin())
    runner.validate()
    assert not runner.concurrent


def test_the_light_is_on_while_any_run_wants_it():
    """Two concurrent runs share the light: it goes on with the first that wants it, off with the last."""
    from labctl.substrate import ClockLock, SharedLight

    calls: list[bool] = []
    station = SimpleNamespace(light=lambda: SimpleNamespace(set_light=calls.append, why_unavailable=lambda on: None))
    shared = SharedLight(station, ClockLock(SimpleNamespace(sleep=lambda dt: None)))
    a, b = shared.for_run("1"), shared.for_run("2")
    a.set_light(True)
    b.set_light(True)
    a.set_light(False)
    assert calls == [True]  # run 2 still wants it
    b.set_light(False)
    assert calls == [True, False]
    a.set_light(False)  # nobody wants it: off again (harmless), never on
    assert calls == [True, False, False]
    assert a.why_unavailable(True) is None  # the rest of the Light interface is the station's
