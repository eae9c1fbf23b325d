"""Stanford Research SR570 low-noise current preamplifier, built on PyMeasure's ``SR570`` (instruments.md §8.3).

The SR570 is LISTEN-ONLY on its RS-232 port (9600 baud, 8 data bits, no parity, 2 stop bits, no handshake;
commands end CR or LF): it never sends a byte, so nothing can be queried — not its identity, not a setting,
not an error. This driver therefore only writes, and remembers what it last wrote: every setting's getter
returns the value last set through this object, or None while it has not been set (after :meth:`reset`, or
when another program or the front panel changed it, the remembered values are simply wrong — nothing can
tell). A read is refused at once (:class:`SR570Error`) instead of waiting for a VISA timeout.

Fixes to the stock PyMeasure class:

* ``offset_current`` sent ``BSLV`` (the bias level command) with a float; it now sends ``IOLV n``, the index
  into the 1 pA … 5 mA table;
* ``id`` / ``idn`` sent ``*IDN?``, which the unit never answers: they return a fixed descriptive string;
  ``status``, ``options``, ``complete``, ``next_error`` and ``clear`` (SCPI queries / ``*CLS``, which the unit
  does not implement) raise :class:`SR570Error` without sending anything;
* :meth:`check_errors` returns [] — the unit has no error reporting of any kind (an unknown or out-of-range
  command is silently ignored by the instrument), so there is never anything to read;
* every setting is validated strictly (``ValueError`` before anything is sent) instead of being silently
  truncated to the nearest table value or clamped: sensitivity (28 values, 1 pA/V … 1 mA/V), offset current
  (30 values, 1 pA … 5 mA), low-pass corner (16 values, 0.03 Hz … 1 MHz), high-pass corner (12 values,
  0.03 Hz … 10 kHz: the stock class allowed the low-pass table up to 1 MHz for ``HFRQ`` as well), bias
  −5…+5 V (rounded to 1 mV; the stock class truncated), filter type and gain mode by name (the stock
  ``truncated_discrete_set`` on strings did not work);
* the default name no longer says "Lock-in amplifier"; the constructor does not emit PyMeasure's
  "unknown SCPI" FutureWarning (the unit certainly has no SCPI layer).

Added: :attr:`SR570.sensitivity_A_V` / :attr:`SR570.gain_V_A`, uncalibrated sensitivity (``SUCM``/``SUCV``)
and offset vernier (``IOUC``), :meth:`SR570.configure`, :meth:`SR570.safe_state`.
Sources: command names and tables instruments.md §8.3 ([H] PyMeasure's lists; ``IOLV``, ``SUCM``/``SUCV``,
``IOUC``, the ``HFRQ`` upper index and the serial framing [M]).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

from pymeasure.instruments import Instrument
from pymeasure.instruments.srs import SR570 as _StockSR570
from pyvisa.constants import Parity, StopBits

from drivers.identity import IdentitySpec
from drivers.io_helpers import set_serial_framing
from drivers.registration import ConnectionDefaults, InstrumentRegistration
from drivers.safe import driver_safe_state

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

SENSITIVITIES_A_V: tuple[float, ...] = tuple(_StockSR570.SENSITIVITIES)
"""``SENS`` index 0–27 → sensitivity (A/V), 1 pA/V … 1 mA/V in a 1-2-5 sequence."""
OFFSET_CURRENTS_A: tuple[float, ...] = tuple(_StockSR570.OFFSET_CURRENTS)
"""``IOLV`` index 0–29 → input offset current (A), 1 pA … 5 mA in a 1-2-5 sequence."""
LOWPASS_FREQUENCIES_HZ: tuple[float, ...] = tuple(_StockSR570.FREQUENCIES)
"""``LFRQ`` index 0–15 → low-pass corner (Hz), 0.03 Hz … 1 MHz in a 1-3 sequence."""
HIGHPASS_FREQUENCIES_HZ: tuple[float, ...] = LOWPASS_FREQUENCIES_HZ[:12]
"""``HFRQ`` index 0–11 → high-pass corner (Hz), 0.03 Hz … 10 kHz ([M] upper index)."""
FILTER_TYPES: tuple[str, ...] = ("6dB highpass", "12dB highpass", "6dB bandpass", "6dB lowpass", "12dB lowpass",
                                 "none")
"""``FLTT`` index 0–5 → filter type (names are matched case-insensitively)."""
GAIN_MODES: tuple[str, ...] = ("low noise", "high bandwidth", "low drift")
"""``GNMD`` index 0–2 → gain mode (names are matched case-insensitively)."""
FILTERS_WITH_HIGHPASS = {"6dB highpass", "12dB highpass", "6dB bandpass"}
FILTERS_WITH_LOWPASS = {"6dB bandpass", "6dB lowpass", "12dB lowpass"}
BIAS_LIMITS_V = (-5.0, 5.0)
SENSITIVITY_VERNIER_PERCENT = range(0, 101)
OFFSET_VERNIER = range(0, 1001)
IDENTITY = "Stanford Research Systems SR570 (listen-only; no identity query)"
"""What :attr:`SR570.id` returns and the station records: the unit cannot be asked who it is."""

#: serial framing of the SR570's RS-232 port (pyvisa attribute names), 9600 8N2, no handshake
SERIAL_SETTINGS: dict[str, Any] = {"baud_rate": 9600, "data_bits": 8, "parity": Parity.none, "stop_bits": StopBits.two}


class SR570Error(RuntimeError):
    """Something that needs a reply from the SR570 was asked of it: the unit is listen-only."""


# ------------------------------------------------------------------------------------------- pure helpers
def table_index(value: Any, table: Sequence[float], what: str, unit: str) -> int:
    """Index of ``value`` in ``table`` (relative tolerance 1e-6); ValueError naming the allowed values."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        for i, entry in enumerate(table):
            if math.isclose(value, entry, rel_tol=1e-6):
                return i
    allowed = ", ".join(f"{entry:g}" for entry in table)
    raise ValueError(f"{what} {value!r} {unit} is not one of: {allowed}")


def name_index(value: Any, names: Sequence[str], what: str) -> int:
    """Index of ``value`` in ``names``, ignoring case and surrounding blanks; ValueError otherwise."""
    if isinstance(value, str):
        key = value.strip().lower()
        for i, name in enumerate(names):
            if key == name.lower():
                return i
    raise ValueError(f"{what} {value!r} is not one of: {', '.join(names)}")


def _bool_code(value: Any, what: str) -> int:
    if isinstance(value, bool) or value in (0, 1):
        return int(bool(value))
    raise ValueError(f"{what} must be True or False, not {value!r}")


def _int_in(value: Any, allowed: range, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value not in allowed:
        raise ValueError(f"{what} {value!r} is not an integer from {allowed.start} to {allowed.stop - 1}")
    return value


def _tracked(key: str, mnemonic: str, doc: str, encode: Callable[[Any], tuple[int, Any]]) -> property:
    """A write-only-on-the-wire setting: ``encode(value) -> (code, stored value)`` validates (ValueError),
    then ``"<mnemonic> <code>"`` is sent and the stored value remembered; the getter returns it (None: unset)."""

    def fget(self: SR570) -> Any:
        return self._state.get(key)

    def fset(self: SR570, value: Any) -> None:
        code, stored = encode(value)
        self.write(f"{mnemonic} {code}")
        self._state[key] = stored

    return property(fget, fset, doc=doc + " Write-only on the wire; reads the value last set here (None: unset).")


def _table_setting(key: str, mnemonic: str, doc: str, table: Sequence[float], what: str, unit: str) -> property:
    def encode(value: Any) -> tuple[int, float]:
        i = table_index(value, table, what, unit)
        return i, table[i]

    return _tracked(key, mnemonic, doc, encode)


def _name_setting(key: str, mnemonic: str, doc: str, names: Sequence[str], what: str) -> property:
    def encode(value: Any) -> tuple[int, str]:
        i = name_index(value, names, what)
        return i, names[i]

    return _tracked(key, mnemonic, doc, encode)


def _bool_setting(key: str, mnemonic: str, doc: str) -> property:
    def encode(value: Any) -> tuple[int, bool]:
        code = _bool_code(value, key)
        return code, bool(code)

    return _tracked(key, mnemonic, doc, encode)


def _bias_code(value: Any) -> tuple[int, float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"bias level {value!r} V is not a number")
    mv = round(value * 1000.0)
    if not BIAS_LIMITS_V[0] * 1000 <= mv <= BIAS_LIMITS_V[1] * 1000:
        raise ValueError(f"bias level {value!r} V is outside {BIAS_LIMITS_V[0]:g} … {BIAS_LIMITS_V[1]:g} V")
    return mv, mv / 1000.0


def _sign_code(value: Any) -> tuple[int, str]:
    i = name_index(value, ("negative", "positive"), "offset current sign")
    return i, ("negative", "positive")[i]


class SR570(_StockSR570):
    """SR570 current preamplifier on RS-232 (listen-only: every method only writes; the constructor sends nothing).

    adapter: VISA resource name (e.g. ``ASRL/dev/ttyUSB0::INSTR``) or a PyMeasure adapter. With a resource
    name the serial framing (9600 8N2) and CR terminations are set here (``asrl={...}`` overrides); with an
    adapter object whose VISA connection is a serial port, data bits, parity and stop bits are set on that
    connection (its baud rate is left to the caller); any other adapter is used as it is.
    """

    #: listen-only: nothing is sent to verify it, so a wrong instrument at its port cannot be detected
    IDENTITY = IdentitySpec.listen_only(IDENTITY)

    # --- settings (strict, tracked) -----------------------------------------------------------------------
    sensitivity_A_V = _table_setting(
        "sensitivity_A_V", "SENS", "Sensitivity in A/V, an exact table value 1e-12 … 1e-3 (1-2-5) (``SENS n``).",
        SENSITIVITIES_A_V, "sensitivity", "A/V")
    sensitivity = sensitivity_A_V  # the stock name; now strict
    uncalibrated_sensitivity = _bool_setting(
        "uncalibrated_sensitivity", "SUCM",
        "True: the sensitivity vernier (``SUCV``) applies, so the gain is no longer known (``SUCM 0|1``).")
    sensitivity_vernier_percent = _tracked(
        "sensitivity_vernier_percent", "SUCV", "Uncalibrated sensitivity vernier, integer 0–100 % (``SUCV n``).",
        lambda v: (_int_in(v, SENSITIVITY_VERNIER_PERCENT, "sensitivity vernier"),) * 2)
    offset_current = _table_setting(
        "offset_current", "IOLV", "Input offset current magnitude in A, an exact table value 1e-12 … 5e-3 "
        "(``IOLV n``; the stock setter sent BSLV).", OFFSET_CURRENTS_A, "offset current", "A")
    offset_current_sign = _tracked(
        "offset_current_sign", "IOSN", "Offset current sign, 'positive' or 'negative' (``IOSN 1|0``).", _sign_code)
    offset_current_enabled = _bool_setting("offset_current_enabled", "IOON", "Input offset current on (``IOON``).")
    offset_current_vernier = _tracked(
        "offset_current_vernier", "IOUC", "Uncalibrated offset-current vernier, integer 0–1000 (``IOUC n``, [M]).",
        lambda v: (_int_in(v, OFFSET_VERNIER, "offset current vernier"),) * 2)
    bias_level = _tracked(
        "bias_level", "BSLV", "Bias voltage in V, −5 … +5, sent in mV (``BSLV n``); applied only when "
        ":attr:`bias_enabled`.", _bias_code)
    bias_enabled = _bool_setting("bias_enabled", "BSON", "Bias voltage output on (``BSON``).")
    filter_type = _name_setting(
        "filter_type", "FLTT", f"Filter type, one of {list(FILTER_TYPES)} (case-insensitive) (``FLTT n``).",
        FILTER_TYPES, "filter type")
    lowpass_frequency_Hz = _table_setting(
        "lowpass_frequency_Hz", "LFRQ", "Low-pass corner (Hz), exact table value 0.03 … 1e6 (1-3) (``LFRQ n``).",
        LOWPASS_FREQUENCIES_HZ, "low-pass frequency", "Hz")
    low_freq = lowpass_frequency_Hz  # the stock name
    highpass_frequency_Hz = _table_setting(
        "highpass_frequency_Hz", "HFRQ", "High-pass corner (Hz), exact table value 0.03 … 1e4 (1-3) "
        "(``HFRQ n``).", HIGHPASS_FREQUENCIES_HZ, "high-pass frequency", "Hz")
    high_freq = highpass_frequency_Hz  # the stock name
    gain_mode = _name_setting(
        "gain_mode", "GNMD", f"Gain mode, one of {list(GAIN_MODES)} (case-insensitive) (``GNMD n``).",
        GAIN_MODES, "gain mode")
    signal_inverted = _bool_setting("signal_inverted", "INVT", "Output inverted (``INVT``).")
    invert_signal_sign = signal_inverted  # the stock alias
    front_blanked = _bool_setting(
        "front_blanked", "BLNK", "Front-end output blanked, i.e. the amplifier output held at zero (``BLNK``).")

    def __init__(self, adapter: Any, name: str = "Stanford Research SR570 current preamplifier",
                 **kwargs: Any) -> None:
        kwargs.setdefault("read_termination", "\r")
        kwargs.setdefault("write_termination", "\r")
        kwargs["asrl"] = dict(SERIAL_SETTINGS) | kwargs.pop("asrl", {})
        # Instrument.__init__ directly: the stock chain passes through SCPIUnknownMixin, which only warns
        Instrument.__init__(self, adapter, name, includeSCPI=False, **kwargs)
        self._state: dict[str, Any] = {}
        set_serial_framing(self.adapter, SERIAL_SETTINGS)

    # --- gain ---------------------------------------------------------------------------------------------
    @property
    def gain_V_A(self) -> float | None:
        """Transimpedance gain (V/A) = 1 / :attr:`sensitivity_A_V` as last set here; None while the sensitivity
        is unknown (never set, after :meth:`reset`) or uncalibrated (``SUCM 1``: the vernier scales it)."""
        sens = self._state.get("sensitivity_A_V")
        if sens is None or self._state.get("uncalibrated_sensitivity"):
            return None
        return 1.0 / sens

    # --- a listen-only unit -------------------------------------------------------------------------------
    def _no_reply(self, what: str) -> SR570Error:
        return SR570Error(f"{self.name}: {what} needs a reply, and the SR570 is listen-only (it never replies)")

    def read(self, **kwargs: Any) -> str:
        """Refused: the SR570 never sends anything (raises :class:`SR570Error` instead of a VISA timeout)."""
        raise self._no_reply("read")

    def read_bytes(self, count: int, **kwargs: Any) -> bytes:
        raise self._no_reply("read_bytes")

    def ask(self, command: str, query_delay: float | None = None) -> str:
        """Refused before anything is sent (a query would only time out)."""
        raise self._no_reply(f"query {command!r}")

    @property
    def id(self) -> str:
        """A fixed description (the unit has no identity query; nothing is sent)."""
        return IDENTITY

    @property
    def idn(self) -> str:
        """Same as :attr:`id`."""
        return IDENTITY

    @property
    def status(self) -> str:
        raise self._no_reply("status (*STB?)")

    @property
    def options(self) -> str:
        raise self._no_reply("options (*OPT?)")

    @property
    def complete(self) -> str:
        raise self._no_reply("complete (*OPC?)")

    @property
    def next_error(self) -> Any:
        raise self._no_reply("next_error (SYST:ERR?)")

    def clear(self) -> None:
        """Refused: there is no status byte to clear (``*CLS`` is not an SR570 command)."""
        raise SR570Error(f"{self.name}: the SR570 has no status registers to clear")

    def check_errors(self) -> list[tuple[int, str]]:
        """Always []: the SR570 reports no errors at all (it cannot send; a bad command is silently ignored).

        Validation before sending is the only protection; nothing is sent here.
        """
        return []

    def check_set_errors(self, context: str = "") -> list[tuple[int, str]]:
        """Always [] (see :meth:`check_errors`): there is nothing to raise."""
        return self.check_errors()

    # --- methods ------------------------------------------------------------------------------------------
    def reset(self) -> None:
        """``*RST`` (factory settings); every remembered setting becomes unknown (None)."""
        self.write("*RST")
        self._state.clear()

    def configure(
        self,
        sensitivity_A_V: float,
        filter_type: str = "none",
        gain_mode: str = "low noise",
        *,
        lowpass_Hz: float | None = None,
        highpass_Hz: float | None = None,
        invert: bool = False,
    ) -> None:
        """Set up the preamplifier as a calibrated transimpedance amplifier for an EQE measurement.

        Validates everything first (ValueError, nothing sent), then sends, in this order: calibrated
        sensitivity (``SUCM 0``), ``SENS``, ``GNMD``, ``FLTT``, the high-pass (``HFRQ``) and low-pass (``LFRQ``)
        corners if given (ValueError if the filter type has no such corner; not given: the unit keeps its own),
        ``INVT``, bias off, offset current off and output unblanked, so the device under test sits at the
        virtual ground with nothing added.
        """
        sens = table_index(sensitivity_A_V, SENSITIVITIES_A_V, "sensitivity", "A/V")
        mode = name_index(gain_mode, GAIN_MODES, "gain mode")
        filt = name_index(filter_type, FILTER_TYPES, "filter type")
        hp = lp = None
        if highpass_Hz is not None:
            if FILTER_TYPES[filt] not in FILTERS_WITH_HIGHPASS:
                raise ValueError(f"filter type {FILTER_TYPES[filt]!r} has no high-pass corner")
            hp = table_index(highpass_Hz, HIGHPASS_FREQUENCIES_HZ, "high-pass frequency", "Hz")
        if lowpass_Hz is not None:
            if FILTER_TYPES[filt] not in FILTERS_WITH_LOWPASS:
                raise ValueError(f"filter type {FILTER_TYPES[filt]!r} has no low-pass corner")
            lp = table_index(lowpass_Hz, LOWPASS_FREQUENCIES_HZ, "low-pass frequency", "Hz")
        inv = _bool_code(invert, "invert")
        self.uncalibrated_sensitivity = False
        self.sensitivity_A_V = SENSITIVITIES_A_V[sens]
        self.gain_mode = GAIN_MODES[mode]
        self.filter_type = FILTER_TYPES[filt]
        if hp is not None:
            self.highpass_frequency_Hz = HIGHPASS_FREQUENCIES_HZ[hp]
        if lp is not None:
            self.lowpass_frequency_Hz = LOWPASS_FREQUENCIES_HZ[lp]
        self.signal_inverted = bool(inv)
        self.safe_state()
        self.front_blanked = False

    def safe_state(self) -> None:
        """Harmless state: bias voltage off (``BSON 0``), offset current off (``IOON 0``); the gain is kept."""
        self.bias_enabled = False
        self.offset_current_enabled = False

    def shutdown(self) -> None:
        """:meth:`safe_state`, then mark the instrument shut down."""
        self.safe_state()
        super().shutdown()


SR570_REGISTRATION = InstrumentRegistration(
    name="sr570",
    driver=SR570,
    model="Stanford Research SR570",
    capabilities=("current_preamplifier",),
    # listen-only RS-232: 9600 Bd 8N2, commands end CR (SR570 manual, "Remote programming"); the driver sets
    # the framing on the serial connection
    connection=ConnectionDefaults(read_termination="\r", write_termination="\r", timeout_ms=5000,
                                  baud_rate=9600, serial=True),
    safe_state=driver_safe_state("bias off, offset current off"),
    emulator="sim_instruments.sr570:SR570Emulator",
)
