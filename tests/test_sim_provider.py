"""The simulator as labctl finds it: through the ``labctl.simulators`` entry point, never by import."""

from __future__ import annotations

import ast
from importlib.metadata import entry_points

import pytest

from labctl import simulators
from labctl.config import ConfigError, parse_station
from labctl.station import Station
from tests.helpers import REPO, default_station


def _imports(path) -> set[str]:
    """Every module a Python file imports (statically), at any depth."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", ["labctl", "procedures", "drivers"])
def test_no_static_import_of_the_simulator(package):
    """labctl core, procedures and drivers reach the simulator only through its entry point."""
    offenders = {str(p.relative_to(REPO)): sorted(m for m in _imports(p) if m.split(".")[0] == "sim_instruments")
                 for p in (REPO / package).rglob("*.py")}
    assert {p: m for p, m in offenders.items() if m} == {}


def test_the_entry_point_is_the_provider():
    (ep,) = [ep for ep in entry_points(group="labctl.simulators") if ep.name == "sim"]
    assert ep.value == "sim_instruments.provider:Simulator"
    assert simulators.simulator_class() is ep.load()


def test_station_uses_the_registered_simulator():
    """A simulator registered in-process (as a test or a plug-in would) builds the station's bench and clock."""
    real = simulators.simulator_class()
    built = []

    class Recording(real):
        def __init__(self, config):
            super().__init__(config)
            built.append(self)

    simulators.register_simulator("sim", Recording)
    try:
        station = Station(parse_station(default_station()))
        assert built == [station.simulator] and station.clock is built[0].clock
        station.connect(["smu"])
        assert station["smu"].adapter.emulator.bench is built[0].bench
        station.close()
    finally:
        simulators.unregister_simulator("sim")
    assert simulators.simulator_class() is real


def test_without_a_simulator_the_section_is_refused_naming_it(monkeypatch):
    monkeypatch.setattr(simulators, "simulator_class", lambda name="sim": None)
    with pytest.raises(ConfigError) as exc:
        parse_station(default_station())
    assert "simulation" in str(exc.value) and "no simulator is installed" in str(exc.value)


def test_real_station_has_no_simulator():
    data = default_station()
    data["simulation"]["enabled"] = False
    for inst in data["instruments"].values():
        inst["resource"] = "TCPIP::127.0.0.1::1::SOCKET"
    station = Station(parse_station(data))
    assert station.simulator is None and not station.simulated
    assert station.line_frequency_Hz() == 50.0 and station.grating_ranges_nm() is None
    assert station.set_light_without_shutter(True) is False


def test_unknown_question_is_refused():
    station = Station(parse_station(default_station()))
    with pytest.raises(ValueError, match="does not know the question 'colour'"):
        station.simulator.answer("colour")


def test_emulator_comes_from_the_registration():
    """``registration.emulator`` + ``emulator_options`` make the emulator; its SIM_NAMES bound the resource."""
    from dataclasses import replace

    from labctl.plugins import registration
    from sim_instruments import make_emulator
    from sim_instruments.clock import VirtualClock
    from sim_instruments.compose import build_bench

    bench = build_bench(parse_station(default_station()), VirtualClock())
    as_2420 = replace(registration("keithley2400"), emulator_options={"model": "2420"})
    assert "MODEL 2420" in make_emulator(as_2420, bench).handle("*IDN?")
    with pytest.raises(ValueError, match=r"no keithley2400 named 'preamp' \(allowed: 'sim://smu', 'sim://monitor_smu', "
                                         r"'sim://reference_cell', 'sim://smu2', 'sim://smu3', 'sim://smu4'\)"):
        make_emulator(as_2420, bench, name="preamp")
    with pytest.raises(ValueError, match="no simulated instrument for driver 'keithley2400'"):
        make_emulator(replace(as_2420, emulator=None), bench)
    anywhere = replace(registration("sr570"), emulator=f"{__name__}:_Unnamed")
    assert isinstance(make_emulator(anywhere, bench, name="whatever"), _Unnamed)  # no SIM_NAMES: any name


class _Unnamed:
    """An emulator that declares no SIM_NAMES."""

    def __init__(self, bench):
        self.bench = bench

    def handle(self, message):
        return None
