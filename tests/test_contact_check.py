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
