"""SR570 driver: exact traffic per command (it only ever writes), strict validation, tracking, end to end."""

from __future__ import annotations

import warnings

import pytest
from pymeasure.test import expected_protocol
from pyvisa.constants import Parity, StopBits
from pyvisa.resources import SerialInstrument

from drivers.sr570 import (
    HIGHPASS_FREQUENCIES_HZ,
    IDENTITY,
    LOWPASS_FREQUENCIES_HZ,
    OFFSET_CURRENTS_A,
    SENSITIVITIES_A_V,
    SR570,
    SR570Error,
)
from sim_instruments.adapter import EmulatorAdapter
from sim_instruments.sr570 import SR570Emulator
from tests.test_sim_sr570 import FakeBench


def test_constructor_sends_nothing_and_does_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with expected_protocol(SR570, []) as sr:
            assert sr.name == "Stanford Research SR570 current preamplifier"


def test_tables() -> None:
    assert len(SENSITIVITIES_A_V) == 28 and (SENSITIVITIES_A_V[0], SENSITIVITIES_A_V[-1]) == (1e-12, 1e-3)
    assert len(OFFSET_CURRENTS_A) == 30 and OFFSET_CURRENTS_A[-1] == 5e-3
    assert len(LOWPASS_FREQUENCIES_HZ) == 16 and LOWPASS_FREQUENCIES_HZ[-1] == 1e6
    assert len(HIGHPASS_FREQUENCIES_HZ) == 12 and HIGHPASS_FREQUENCIES_HZ[-1] == 1e4


@pytest.mark.parametrize(("prop", "value", "sent", "stored"), [
    ("sensitivity_A_V", 1e-12, "SENS 0", 1e-12),
    ("sensitivity_A_V", 2e-7, "SENS 16", 2e-7),
    ("sensitivity_A_V", 1e-3, "SENS 27", 1e-3),
    ("sensitivity", 5e-6, "SENS 20", 5e-6),
    ("uncalibrated_sensitivity", True, "SUCM 1", True),
    ("uncalibrated_sensitivity", False, "SUCM 0", False),
    ("sensitivity_vernier_percent", 0, "SUCV 0", 0),
    ("sensitivity_vernier_percent", 100, "SUCV 100", 100),
    ("offset_current", 1e-12, "IOLV 0", 1e-12),
    ("offset_current", 10e-12, "IOLV 3", 10e-12),
    ("offset_current", 5e-3, "IOLV 29", 5e-3),
    ("offset_current_sign", "positive", "IOSN 1", "positive"),
    ("offset_current_sign", "Negative", "IOSN 0", "negative"),
    ("offset_current_enabled", True, "IOON 1", True),
    ("offset_current_enabled", False, "IOON 0", False),
    ("offset_current_vernier", 1000, "IOUC 1000", 1000),
    ("bias_level", -5.0, "BSLV -5000", -5.0),
    ("bias_level", 0.25, "BSLV 250", 0.25),
    ("bias_level", 1.0004, "BSLV 1000", 1.0),
    ("bias_level", 5, "BSLV 5000", 5.0),
    ("bias_enabled", True, "BSON 1", True),
    ("bias_enabled", False, "BSON 0", False),
    ("filter_type", "6dB highpass", "FLTT 0", "6dB highpass"),
    ("filter_type", "12dB Highpass", "FLTT 1", "12dB highpass"),
    ("filter_type", "6dB Bandpass", "FLTT 2", "6dB bandpass"),
    ("filter_type", "6dB lowpass", "FLTT 3", "6dB lowpass"),
    ("filter_type", "12dB lowpass", "FLTT 4", "12dB lowpass"),
    ("filter_type", "none", "FLTT 5", "none"),
    ("lowpass_frequency_Hz", 0.03, "LFRQ 0", 0.03),
    ("lowpass_frequency_Hz", 1e6, "LFRQ 15", 1e6),
    ("low_freq", 300, "LFRQ 8", 300),
    ("highpass_frequency_Hz", 0.03, "HFRQ 0", 0.03),
    ("highpass_frequency_Hz", 1e4, "HFRQ 11", 1e4),
    ("high_freq", 1, "HFRQ 3", 1),
    ("gain_mode", "Low Noise", "GNMD 0", "low noise"),
    ("gain_mode", "high bandwidth", "GNMD 1", "high bandwidth"),
    ("gain_mode", "LOW DRIFT", "GNMD 2", "low drift"),
    ("signal_inverted", True, "INVT 1", True),
    ("invert_signal_sign", False, "INVT 0", False),
    ("front_blanked", True, "BLNK 1", True),
    ("front_blanked", False, "BLNK 0", False),
])
def test_every_setting_sends_one_command_and_is_tracked(prop: str, value: object, sent: str, stored: object) -> None:
    with expected_protocol(SR570, [(sent, None)]) as sr:
        assert getattr(sr, prop) is None
        setattr(sr, prop, value)
        assert getattr(sr, prop) == stored


@pytest.mark.parametrize(("prop", "bad"), [
    ("sensitivity_A_V", [3e-6, 2e-3, 0.5e-12, 0, -1e-6, True, "1e-6", None, float("nan")]),
    ("offset_current", [1e-2, 3e-9, 0]),
    ("lowpass_frequency_Hz", [2e6, 5, 0.01]),
    ("highpass_frequency_Hz", [3e4, 1e6, 5]),
    ("bias_level", [5.001, -5.0006, float("inf"), "1", True]),
    ("filter_type", ["bandpass", 5, "", None]),
    ("gain_mode", ["fast", 0]),
    ("offset_current_sign", ["+", 1, True]),
    ("sensitivity_vernier_percent", [-1, 101, 50.0, True]),
    ("offset_current_vernier", [-1, 1001, 2.5]),
    ("bias_enabled", [2, "on", None]),
    ("signal_inverted", [-1, "yes"]),
])
def test_bad_values_are_refused_before_sending(prop: str, bad: list[object]) -> None:
    with expected_protocol(SR570, []) as sr:
        for value in bad:
            with pytest.raises(ValueError):
                setattr(sr, prop, value)
            assert getattr(sr, prop) is None


def test_stock_offset_current_fault_is_fixed() -> None:
    """The stock setter sent ``BSLV <float>`` (changing the bias!); ours sends the IOLV index."""
    with expected_protocol(SR570, [("IOLV 18", None)]) as sr:
        sr.offset_current = 1e-6


def test_gain_follows_the_last_calibrated_sensitivity() -> None:
    pairs = [("SENS 18", None), ("SENS 9", None), ("SUCM 1", None), ("SUCM 0", None), ("*RST", None)]
    with expected_protocol(SR570, pairs) as sr:
        assert sr.gain_V_A is None
        sr.sensitivity_A_V = 1e-6
        assert sr.gain_V_A == pytest.approx(1e6)
        sr.sensitivity_A_V = 1e-9
        assert sr.gain_V_A == pytest.approx(1e9)
        sr.uncalibrated_sensitivity = True
        assert sr.gain_V_A is None  # the vernier scales it: unknown
        sr.uncalibrated_sensitivity = False
        assert sr.gain_V_A == pytest.approx(1e9)
        sr.reset()
        assert sr.gain_V_A is None and sr.sensitivity_A_V is None and sr.bias_enabled is None


def test_refused_sensitivity_keeps_the_tracked_gain() -> None:
    with expected_protocol(SR570, [("SENS 27", None)]) as sr:
        sr.sensitivity_A_V = 1e-3
        with pytest.raises(ValueError, match="not one of"):
            sr.sensitivity_A_V = 3e-3
        assert sr.gain_V_A == pytest.approx(1e3)


def test_identity_and_errors_send_nothing() -> None:
    with expected_protocol(SR570, []) as sr:
        assert sr.id == sr.idn == IDENTITY
        assert "listen-only" in IDENTITY and "SR570" in IDENTITY
        assert sr.check_errors() == []
        assert sr.check_set_errors("configure") == []


@pytest.mark.parametrize("action", [
    lambda sr: sr.ask("SENS?"), lambda sr: sr.read(), lambda sr: sr.read_bytes(1), lambda sr: sr.values("X?"),
    lambda sr: sr.status, lambda sr: sr.options, lambda sr: sr.complete, lambda sr: sr.next_error,
    lambda sr: sr.clear(),
])
def test_anything_needing_a_reply_is_refused_without_sending(action) -> None:
    with expected_protocol(SR570, []) as sr, pytest.raises(SR570Error):
        action(sr)


def test_stock_helper_methods() -> None:
    pairs = [("BSON 1", None), ("BSON 0", None), ("IOON 1", None), ("IOON 0", None), ("ROLD", None),
             ("BLNK 1", None), ("BLNK 0", None)]
    with expected_protocol(SR570, pairs) as sr:
        sr.enable_bias()
        sr.disable_bias()
        sr.enable_offset_current()
        sr.disable_offset_current()
        sr.clear_overload()
        sr.blank_front()
        sr.unblank_front()


def test_safe_state_and_shutdown() -> None:
    with expected_protocol(SR570, [("BSON 0", None), ("IOON 0", None)]) as sr:
        sr.safe_state()
        assert (sr.bias_enabled, sr.offset_current_enabled) == (False, False)
    with expected_protocol(SR570, [("BSON 0", None), ("IOON 0", None)]) as sr:
        sr.shutdown()
        assert sr.isShutdown


CONFIGURE_TAIL = [("INVT 0", None), ("BSON 0", None), ("IOON 0", None), ("BLNK 0", None)]


def test_configure_defaults() -> None:
    pairs = [("SUCM 0", None), ("SENS 18", None), ("GNMD 0", None), ("FLTT 5", None), *CONFIGURE_TAIL]
    with expected_protocol(SR570, pairs) as sr:
        sr.configure(1e-6)
        assert sr.gain_V_A == pytest.approx(1e6)
        assert (sr.filter_type, sr.gain_mode, sr.signal_inverted) == ("none", "low noise", False)


def test_configure_with_filter_corners() -> None:
    pairs = [("SUCM 0", None), ("SENS 14", None), ("GNMD 1", None), ("FLTT 2", None), ("HFRQ 3", None),
             ("LFRQ 9", None), ("INVT 1", None), ("BSON 0", None), ("IOON 0", None), ("BLNK 0", None)]
    with expected_protocol(SR570, pairs) as sr:
        sr.configure(50e-9, filter_type="6dB bandpass", gain_mode="high bandwidth", highpass_Hz=1.0,
                     lowpass_Hz=1e3, invert=True)
        assert sr.gain_V_A == pytest.approx(2e7)
        assert (sr.highpass_frequency_Hz, sr.lowpass_frequency_Hz) == (1.0, 1e3)


@pytest.mark.parametrize("kwargs", [
    {"sensitivity_A_V": 3e-6},
    {"sensitivity_A_V": 1e-6, "filter_type": "lowpass"},
    {"sensitivity_A_V": 1e-6, "gain_mode": "turbo"},
    {"sensitivity_A_V": 1e-6, "filter_type": "none", "lowpass_Hz": 1e3},
    {"sensitivity_A_V": 1e-6, "filter_type": "12dB lowpass", "highpass_Hz": 1.0},
    {"sensitivity_A_V": 1e-6, "filter_type": "6dB highpass", "highpass_Hz": 1e5},
    {"sensitivity_A_V": 1e-6, "filter_type": "6dB lowpass", "lowpass_Hz": 2e3},
    {"sensitivity_A_V": 1e-6, "invert": "no"},
])
def test_configure_validates_before_sending(kwargs: dict) -> None:
    with expected_protocol(SR570, []) as sr, pytest.raises(ValueError):
        sr.configure(**kwargs)


def test_resource_name_gets_the_serial_framing(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict = {}

    class RecordingAdapter:
        def __init__(self, resource: str, **kwargs) -> None:
            seen.update(kwargs, resource=resource)
            self.connection = None

    monkeypatch.setattr("pymeasure.instruments.instrument.VISAAdapter", RecordingAdapter)
    SR570("ASRL/dev/ttyUSB0::INSTR")
    assert seen["asrl"] == {"baud_rate": 9600, "data_bits": 8, "parity": Parity.none, "stop_bits": StopBits.two}
    assert (seen["read_termination"], seen["write_termination"]) == ("\r", "\r")
    SR570("ASRL/dev/ttyUSB0::INSTR", asrl={"baud_rate": 4800}, write_termination="\n")
    assert seen["asrl"]["baud_rate"] == 4800 and seen["asrl"]["stop_bits"] == StopBits.two
    assert seen["write_termination"] == "\n"


def test_ready_made_serial_adapter_gets_8n2() -> None:
    """Station builds the VISAAdapter itself (baud rate only): the driver sets data bits, parity, stop bits."""

    class FakeSerial(SerialInstrument):
        data_bits = parity = stop_bits = baud_rate = _session = None

        def __init__(self) -> None:
            self.baud_rate = 19200

    class ReadyAdapter:
        def __init__(self) -> None:
            self.connection = FakeSerial()

    sr = SR570(ReadyAdapter())
    conn = sr.adapter.connection
    assert (conn.data_bits, conn.parity, conn.stop_bits) == (8, Parity.none, StopBits.two)
    assert conn.baud_rate == 19200  # left to the caller


# ----------------------------------------------------------------------------------------------- end to end
def connect(bench: FakeBench) -> tuple[SR570, SR570Emulator]:
    emu = SR570Emulator(bench)
    return SR570(EmulatorAdapter(emu, read_termination="\n", write_termination="\n")), emu


@pytest.mark.parametrize(("sensitivity", "gain"), [(1e-12, 1e12), (2e-8, 5e7), (1e-6, 1e6), (1e-3, 1e3)])
def test_end_to_end_sensitivity_sets_the_bench_gain(sensitivity: float, gain: float) -> None:
    bench = FakeBench(gain=1e6)
    sr, emu = connect(bench)
    sr.sensitivity_A_V = sensitivity
    assert bench.optics.preamp_gain_V_A == pytest.approx(gain, rel=1e-12)
    assert sr.gain_V_A == pytest.approx(bench.optics.preamp_gain_V_A, rel=1e-12)
    assert bench.optics.records == (0 if gain == 1e6 else 1)
    assert sr.adapter.bytes_in_buffer == 0
    assert emu.log == []


def test_end_to_end_configure_safe_state_and_reset() -> None:
    bench = FakeBench(gain=1e6)
    sr, emu = connect(bench)
    sr.bias_level = 0.5
    sr.bias_enabled = True
    sr.offset_current = 2e-9
    sr.offset_current_enabled = True
    sr.configure(1e-7, filter_type="12dB lowpass", lowpass_Hz=3e3)
    assert bench.optics.preamp_gain_V_A == pytest.approx(1e7)
    assert (emu.settings["BSON"], emu.settings["IOON"], emu.settings["FLTT"], emu.settings["LFRQ"]) == (0, 0, 4, 10)
    assert emu.settings["BSLV"] == 500 and emu.settings["IOLV"] == 10
    sr.signal_inverted = True
    assert bench.optics.preamp_gain_V_A == pytest.approx(-1e7)
    sr.safe_state()
    sr.reset()
    assert bench.optics.preamp_gain_V_A == 1e6  # *RST: the power-on sensitivity
    assert sr.gain_V_A is None
    assert emu.log == [] and sr.adapter.bytes_in_buffer == 0
    assert sr.id == IDENTITY
    assert sr.check_errors() == []
