"""The contact check (labctl.contact): the verdict by hand, the SMU traffic it makes, and a pixel without contact
skipped with a clear reason while the others are measured."""

from __future__ import annotations

import math

import numpy as np
import pytest

from labctl.config import ContactCheckConfig, parse_station
from labctl.contact import check_contact, judge_contact
from labctl.station import Station
from labctl.substrate import SubstrateRunner, parse_pixels
from procedures.jv import JVProcedure
from tests import substrate_fakes
from tests.substrate_fakes import substrate_station


def test_the_verdict_by_hand():
    config = ContactCheckConfig()  # 10 mV, 1e7 Ω
    connected = judge_contact(0.01, 2.45e-7, config)  # 41 kΩ: a cell's shunt in the dark
    assert connected.ok and connected.resistance_ohm == pytest.approx(0.01 / 2.45e-7) and connected.reason is None
    lit = judge_contact(0.01, -9.0e-4, config)  # the photocurrent: |V/I| = 11 Ω
    assert lit.ok and lit.resistance_ohm == pytest.approx(11.11, rel=1e-3)
    open_ = judge_contact(0.01, 3.0e-12, config)  # the meter's noise: 3.3e9 Ω
    assert not open_.ok
    assert open_.reason == ("no contact: |V/I| = 3.33e+09 Ω at 0.01 V (3e-12 A), above "
                            "contact_check.max_resistance_ohm = 1e+07 Ω")
    nothing = judge_contact(0.01, 0.0, config)
    assert not nothing.ok and math.isinf(nothing.resistance_ohm) and "no current at all" in nothing.reason
    assert nothing.to_json()["resistance_ohm"] is None
    edge = judge_contact(0.01, 1.0e-9, config)  # exactly 1e7 Ω: not above the threshold
    assert edge.ok


class _RecordingSMU:
    """A source meter that records what it is told and reads a fixed current."""

    def __init__(self, current_A: float) -> None:
        self.calls: list[tuple] = []
        self.current_A = current_A
        self.level = 0.0

    def configure_voltage_source(self, compliance_A: float, nplc: float = 1.0, **_: object) -> None:
        self.calls.append(("configure", compliance_A, nplc))

    def set_voltage(self, voltage_V: float) -> None:
        self.level = voltage_V
        self.calls.append(("set", voltage_V))

    def enable_output(self) -> None:
        self.calls.append(("on",))

    def disable_output(self) -> None:
        self.calls.append(("off",))

    def measure_point(self):
        from drivers.smu import SweepData

        self.calls.append(("read",))
        return SweepData(np.array([self.level]), np.array([self.current_A]), np.array([0.0]), np.array([False]))


def test_the_check_biases_reads_once_and_leaves_the_output_off_at_0_V():
    smu = _RecordingSMU(2.0e-7)
    result = check_contact(smu, ContactCheckConfig(bias_V=0.02, compliance_A=1e-5, nplc=2))
    assert smu.calls == [("configure", 1e-5, 2), ("set", 0.02), ("on",), ("read",), ("off",), ("set", 0.0)]
    assert result.ok and result.resistance_ohm == pytest.approx(1.0e5)


def test_the_output_goes_off_when_the_reading_fails():
    smu = _RecordingSMU(0.0)

    def broken():
        raise TimeoutError("no reply")

    smu.measure_point = broken
    with pytest.raises(TimeoutError):
        check_contact(smu, ContactCheckConfig())
    assert smu.calls[-2:] == [("off",), ("set", 0.0)]


def test_a_pixel_without_contact_is_skipped_and_reported(tmp_path):
    """Pixel 2 is a probe that does not touch: no photocurrent, no shunt (rsh 1e15 Ω·cm²) — at 10 mV the meter
    reads its noise only. It is skipped with the reason; pixels 1 and 3 are measured as usual."""
    substrate_fakes.register()
    data = substrate_station(pixels=3)
    good = data["simulation"]["devices"][0]
    data["simulation"]["devices"][1] = {**good, "jph_mA_cm2": 0.0, "rsh_ohm_cm2": 1.0e15, "j0_A_cm2": 1.0e-30}
    config = parse_station(data)
    name, layout = config.layout()
    station = Station(config)
    runner = SubstrateRunner(station, name, layout, parse_pixels("all", name, layout), lambda p: JVProcedure(),
                             tmp_path / "runs", sample="S")
    result = runner.run()
    skipped = result.pixels["2"]
    assert skipped.status == "skipped" and skipped.file is None and skipped.run_id is None
    assert skipped.reason.startswith("no contact: ") and "contact_check.max_resistance_ohm = 1e+07 Ω" in skipped.reason
    assert not skipped.contact["ok"]
    for name_ in ("1", "3"):
        assert result.pixels[name_].status == "completed"
        # 10 mV across the set A cell's shunt, 2000 Ω·cm² / 0.049 cm² = 40.8 kΩ (the diode adds little at 10 mV)
        assert result.pixels[name_].contact["resistance_ohm"] == pytest.approx(2000 / 0.049, rel=0.02)
    assert result.status == "completed"  # a skipped pixel is reported, not a failure
    assert len(list((tmp_path / "runs").rglob("*.h5"))) == 2


class _DiodeSMU(_RecordingSMU):
    """A source meter on a piecewise reply: the current it reads at each programmed level (A), else 0."""

    def __init__(self, currents: dict[float, float], compliance_at: float | None = None) -> None:
        super().__init__(0.0)
        self.currents, self.compliance_at = currents, compliance_at

    def measure_point(self):
        from drivers.smu import SweepData

        self.calls.append(("read",))
        current = self.currents.get(self.level, 0.0)
        return SweepData(np.array([self.level]), np.array([current]), np.array([0.0]),
                         np.array([self.level == self.compliance_at]))


def test_a_cell_whose_shunt_reads_like_an_open_contact_is_found_in_forward_bias():
    """1 pA at 10 mV (a MΩ·cm² shunt, a tiny J0: 1e10 Ω), but 5 µA at 1.2 V forward (a diode conducting)."""
    smu = _DiodeSMU({0.01: 1.0e-12, 1.2: 5.0e-6})
    result = check_contact(smu, ContactCheckConfig())
    assert smu.calls == [("configure", 1e-4, 1.0), ("set", 0.01), ("on",), ("read",), ("set", 1.2), ("read",),
                         ("off",), ("set", 0.0)]
    assert result.ok and result.voltage_V == 1.2 and result.resistance_ohm == pytest.approx(1.2 / 5.0e-6)


def test_the_forward_bias_follows_the_stack_and_stays_within_the_source_meters_limit():
    smu = _DiodeSMU({0.01: 0.0, -1.0: -3.0e-3}, compliance_at=-1.0)
    result = check_contact(smu, ContactCheckConfig(), forward_sign=-1.0, voltage_limit_V=1.0)  # p-i-n, 1 V limit
    assert ("set", -1.0) in smu.calls and ("set", -1.2) not in smu.calls
    assert result.ok and result.compliance  # the compliance reached: current flows, contact


def test_an_open_contact_fails_both_readings_and_says_so():
    smu = _DiodeSMU({0.01: 2.0e-12, 1.2: 1.2e-9})  # 1e9 Ω of contact: 1.2 nA at 1.2 V
    result = check_contact(smu, ContactCheckConfig())
    assert not result.ok and result.resistance_ohm == pytest.approx(1.0e9)
    assert result.reason == ("no contact: |V/I| = 5e+09 Ω at 0.01 V (2e-12 A), above contact_check."
                             "max_resistance_ohm = 1e+07 Ω; in forward bias 1e+09 Ω at 1.2 V (1.2e-09 A)")
    assert smu.calls[-2:] == [("off",), ("set", 0.0)]


def test_no_second_reading_when_forward_bias_is_off():
    smu = _DiodeSMU({0.01: 1.0e-12, 1.2: 5.0e-6})
    result = check_contact(smu, ContactCheckConfig(forward_bias_V=None))
    assert not result.ok and ("set", 1.2) not in smu.calls


def test_a_high_shunt_low_j0_cell_on_the_bench_is_measured_not_skipped(tmp_path):
    """The three-diode cell of the light-intensity bench (methods ref. §4.3: Rsh infinite, J0 of 3e-22 A/cm² for
    n = 1) reads about a pA at 10 mV in the dark, like an open contact; in forward bias it conducts."""
    substrate_fakes.register()
    data = substrate_station(pixels=2)
    good = data["simulation"]["devices"][0]
    data["simulation"]["devices"][0] = {**good, "ideality": 1.0, "j0_A_cm2": 3.0574e-22, "rsh_ohm_cm2": 1.0e12,
                                        "extra_diodes": [{"ideality": 2.0, "j0_A_cm2": 2.9743e-13},
                                                         {"ideality": 4.0, "j0_A_cm2": 2.9336e-10}]}
    data["simulation"]["devices"][1] = {**good, "contact_resistance_ohm": 1.0e9}
    config = parse_station(data)
    name, layout = config.layout()
    runner = SubstrateRunner(Station(config), name, layout, parse_pixels("all", name, layout),
                             lambda p: JVProcedure(), tmp_path / "runs", sample="S")
    result = runner.run()
    assert result.pixels["1"].status == "completed", result.pixels["1"]
    assert result.pixels["1"].contact["voltage_V"] == pytest.approx(1.2)  # found in forward bias
    assert result.pixels["2"].status == "skipped" and "in forward bias" in result.pixels["2"].reason
