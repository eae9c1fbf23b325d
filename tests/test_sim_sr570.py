"""SR570 emulator: accepted command set, silent rejection, terminations, and the preamp gain it puts on the bench."""

from __future__ import annotations

import pytest

from sim_instruments.adapter import EmulatorAdapter
from sim_instruments.sr570 import COMMANDS, FRAMING, RESET_DEFAULTS, SENSITIVITIES_A_V, SR570Emulator, sensitivity_index


class FakeOptics:
    """``preamp_gain_V_A`` plus a ``_record()`` counter (what the SR830 emulator reads and needs re-recorded)."""

    def __init__(self, gain: float | None) -> None:
        self.preamp_gain_V_A = gain
        self.records = 0
        self.recorded_gains: list[float | None] = []

    def _record(self) -> None:
        self.records += 1
        self.recorded_gains.append(self.preamp_gain_V_A)


class SetterOptics(FakeOptics):
    """Optics with the setter the lead may add: the emulator must prefer it."""

    def __init__(self, gain: float | None) -> None:
        super().__init__(gain)
        self.set_calls: list[float | None] = []

    def set_preamp_gain(self, gain: float | None) -> None:
        self.set_calls.append(gain)
        self.preamp_gain_V_A = gain
        self._record()


class FakeBench:
    def __init__(self, gain: float | None = 1e6, optics: type[FakeOptics] = FakeOptics) -> None:
        self.optics = optics(gain)


@pytest.fixture
def bench() -> FakeBench:
    return FakeBench()


@pytest.fixture
def sr570(bench: FakeBench) -> SR570Emulator:
    return SR570Emulator(bench)


def test_power_on_keeps_the_configured_gain_and_touches_nothing(bench: FakeBench, sr570: SR570Emulator) -> None:
    assert bench.optics.preamp_gain_V_A == 1e6
    assert bench.optics.records == 0
    assert sr570.power_on_sensitivity == 18
    assert sr570.sensitivity_A_V == 1e-6
    assert sr570.gain_V_A == 1e6
    assert sr570.settings == {"SENS": 18, **RESET_DEFAULTS}


@pytest.mark.parametrize(("index", "gain"), [(0, 1e12), (9, 1e9), (18, 1e6), (20, 2e5), (27, 1e3)])
def test_sens_sets_the_bench_gain_and_records_it(bench: FakeBench, sr570: SR570Emulator, index: int,
                                                  gain: float) -> None:
    assert sr570.handle(f"SENS {index}") is None
    assert bench.optics.preamp_gain_V_A == pytest.approx(gain, rel=1e-12)
    assert sr570.settings["SENS"] == index
    if gain != 1e6:
        assert bench.optics.records == 1
        assert bench.optics.recorded_gains == [bench.optics.preamp_gain_V_A]
    else:
        assert bench.optics.records == 0  # unchanged gain: nothing re-recorded


def test_sensitivity_table() -> None:
    assert len(SENSITIVITIES_A_V) == 28
    assert SENSITIVITIES_A_V[0] == 1e-12 and SENSITIVITIES_A_V[-1] == 1e-3
    assert [sensitivity_index(g) for g in (1e12, 5e8, 1e3)] == [0, 10, 27]
    assert [sensitivity_index(g) for g in (None, 3e6, 0.0, -1e6, float("inf"))] == [None] * 5


def test_every_command_is_accepted_at_its_limits_and_never_answered(sr570: SR570Emulator) -> None:
    for mnemonic, allowed in COMMANDS.items():
        for value in (allowed.start, allowed.stop - 1):
            assert sr570.handle(f"{mnemonic} {value}") is None
            assert sr570.settings[mnemonic] == value
    for command in ("ROLD", "*RST"):
        assert sr570.handle(command) is None
    assert sr570.log == []
    assert sr570.overload_resets == 1


@pytest.mark.parametrize("command", [
    "SENS 28", "SENS -1", "SENS", "SENS 1.5", "SENS x", "SENS 1 2", "IOLV 30", "IOUC 1001", "SUCV 101",
    "BSLV 5001", "BSLV -5001", "BSLV 12.000000", "FLTT 6", "LFRQ 16", "HFRQ 12", "GNMD 3", "INVT 2", "BLNK 2",
    "IOON 2", "IOSN 2", "BSON 2", "SUCM 2", "ROLD 1", "*RST 0", "*IDN?", "SENS?", "FOO 1", "12",
])
def test_bad_commands_are_ignored_silently_and_logged(bench: FakeBench, sr570: SR570Emulator, command: str) -> None:
    before = dict(sr570.settings)
    assert sr570.handle(command) is None
    assert sr570.log == [command]
    assert sr570.settings == before
    assert bench.optics.preamp_gain_V_A == 1e6 and bench.optics.records == 0


@pytest.mark.parametrize("message", ["SENS 9\r", "SENS 9\n", "SENS 9\r\n", "\rSENS 9\r\n\n", "sens 9", " SENS9 ",
                                     "SENS +9"])
def test_terminations_case_and_spacing(bench: FakeBench, sr570: SR570Emulator, message: str) -> None:
    sr570.handle(message)
    assert bench.optics.preamp_gain_V_A == pytest.approx(1e9)
    assert sr570.log == []


def test_several_commands_in_one_message(bench: FakeBench, sr570: SR570Emulator) -> None:
    sr570.handle("SENS 12\rBSON 1;BSLV -250\nIOON 1")
    assert bench.optics.preamp_gain_V_A == pytest.approx(1e8)
    assert (sr570.settings["BSON"], sr570.settings["BSLV"], sr570.settings["IOON"]) == (1, -250, 1)
    assert sr570.received == ["SENS 12", "BSON 1", "BSLV -250", "IOON 1"]


def test_invert_blank_and_uncalibrated_vernier_shape_the_gain(bench: FakeBench, sr570: SR570Emulator) -> None:
    optics = bench.optics
    sr570.handle("SENS 21")  # 10 µA/V
    assert optics.preamp_gain_V_A == pytest.approx(1e5)
    sr570.handle("INVT 1")
    assert optics.preamp_gain_V_A == pytest.approx(-1e5)
    sr570.handle("BLNK 1")
    assert optics.preamp_gain_V_A == 0.0
    sr570.handle("BLNK 0")
    sr570.handle("INVT 0")
    sr570.handle("SUCV 40")  # calibrated: the vernier does nothing yet
    assert optics.preamp_gain_V_A == pytest.approx(1e5)
    sr570.handle("SUCM 1")
    assert optics.preamp_gain_V_A == pytest.approx(4e4)
    sr570.handle("SUCM 0")
    assert optics.preamp_gain_V_A == pytest.approx(1e5)
    assert optics.records == 7


def test_settings_that_are_not_emulated_leave_the_gain_alone(bench: FakeBench, sr570: SR570Emulator) -> None:
    for command in ("FLTT 3", "LFRQ 4", "HFRQ 2", "GNMD 1", "IOON 1", "IOLV 5", "IOSN 0", "IOUC 10", "BSON 1",
                    "BSLV 300", "ROLD"):
        sr570.handle(command)
    assert bench.optics.records == 0
    assert sr570.log == []


def test_reset_restores_the_power_on_sensitivity_and_defaults(bench: FakeBench, sr570: SR570Emulator) -> None:
    sr570.handle("SENS 3")
    sr570.handle("INVT 1")
    sr570.handle("BSON 1")
    sr570.handle("FLTT 0")
    assert bench.optics.preamp_gain_V_A == pytest.approx(-1e11)
    sr570.handle("*RST")
    assert sr570.settings == {"SENS": 18, **RESET_DEFAULTS}
    assert bench.optics.preamp_gain_V_A == 1e6


def test_power_on_gain_outside_the_table() -> None:
    """A configured gain that is no SENS value: the sensitivity is unknown until SENS, *RST brings it back."""
    bench = FakeBench(gain=3.3e6)
    sr570 = SR570Emulator(bench)
    assert sr570.sensitivity_A_V is None and sr570.gain_V_A == 3.3e6
    sr570.handle("INVT 1")
    assert bench.optics.preamp_gain_V_A == -3.3e6
    sr570.handle("SENS 27")
    assert bench.optics.preamp_gain_V_A == pytest.approx(-1e3)
    sr570.handle("*RST")
    assert bench.optics.preamp_gain_V_A == 3.3e6


def test_no_preamp_gain_at_power_on() -> None:
    """The bench had no preamp (lock-in current input): SENS puts one in, *RST takes it out again."""
    bench = FakeBench(gain=None)
    sr570 = SR570Emulator(bench)
    assert sr570.gain_V_A is None
    sr570.handle("INVT 1")
    assert bench.optics.preamp_gain_V_A is None and bench.optics.records == 0
    sr570.handle("SENS 18")
    assert bench.optics.preamp_gain_V_A == pytest.approx(-1e6)
    sr570.handle("*RST")
    assert bench.optics.preamp_gain_V_A is None


def test_the_optics_setter_is_preferred_when_it_exists() -> None:
    bench = FakeBench(optics=SetterOptics)
    sr570 = SR570Emulator(bench)
    sr570.handle("SENS 15")
    assert bench.optics.set_calls == [pytest.approx(1e7)]
    assert bench.optics.records == 1


@pytest.mark.parametrize("termination", ["\r", "\n", "\r\n"])
def test_transport_never_sends_anything(bench: FakeBench, sr570: SR570Emulator, termination: str) -> None:
    adapter = EmulatorAdapter(sr570, read_termination=termination, write_termination=termination)
    adapter.write("SENS 24")
    adapter.write("*IDN?")
    assert adapter.bytes_in_buffer == 0
    assert bench.optics.preamp_gain_V_A == pytest.approx(1e4)
    assert sr570.log == ["*IDN?"]


def test_framing_hint() -> None:
    assert FRAMING["echo"] is False and FRAMING["prompt"] == ""
    assert SR570Emulator.echo is False and SR570Emulator.prompt == ""
