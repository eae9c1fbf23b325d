"""Driver of the Lake Shore Model 211 temperature monitor: PyMeasure's ``LakeShore211`` with what labctl needs.

The Model 211 user's manual, chapter 4 "Remote operation" (Table 4-1): RS-232C only, 9600 baud, 7 data bits,
odd parity, 1 stop bit, CR LF terminators, at most 20 commands per second. It has no error queue: it ignores a
misspelled command or query and a query without its ``?`` (§4.1.6.2), so a wrong command shows only as a missing
reply (a timeout). The reading status (``RDGST?``) is what it reports about its input, and :meth:`check_errors`
returns its fault bits.

The stock driver is kept for its command set (``KRDG?``, ``CRDG?``, ``ALARM``, ``RELAY``, ``ANALOG``,
``DISPFLD``); this class adds the identity check, the ``temperature_sensor`` capability
(:meth:`read_temperature_K`), the reading status, and the serial framing on a connection made elsewhere (the
stock class sets 7 data bits and odd parity only when it opens the resource itself). Its constructor sends
nothing; it bypasses the stock chain's ``SCPIUnknownMixin``, which only warns (the 211 answers ``*IDN?`` and
``*RST``, nothing else of SCPI).
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pymeasure.instruments import Instrument
from pymeasure.instruments.lakeshore.lakeshore211 import LakeShore211 as _StockLakeShore211
from pyvisa.constants import Parity, StopBits

from drivers.identity import IdentitySpec
from drivers.io_helpers import set_serial_framing
from drivers.registration import ConnectionDefaults, InstrumentRegistration

log = logging.getLogger(__name__)

#: RS-232 framing (manual Table 4-1: 1 start, 7 data, 1 parity (odd), 1 stop)
SERIAL_SETTINGS: dict[str, Any] = {"baud_rate": 9600, "data_bits": 7, "parity": Parity.odd,
                                   "stop_bits": StopBits.one}

#: ``RDGST?`` bits that mean the reading is not valid (manual §4.2, RDGST?); 4 and 8 are the alarms, not faults
READING_FAULTS: dict[int, str] = {
    2: "A/D not responding",
    16: "temperature under range",
    32: "temperature over range",
    64: "sensor units zero",
    128: "sensor units over range",
}
ALARM_LOW, ALARM_HIGH = 4, 8
#: ``ALARM?`` prints its values as ``+nnn.n`` (manual §4.2): a read-back agrees to half of this (K)
ALARM_RESOLUTION_K = 0.1


class LakeShore211(_StockLakeShore211):
    """Lake Shore Model 211 temperature monitor (one sensor input).

    adapter: VISA resource name (e.g. ``ASRL/dev/ttyUSB0::INSTR``) or a PyMeasure adapter; with an adapter object
    whose connection is a pyvisa serial port the 7O1 framing is set on it here.
    """

    IDENTITY = IdentitySpec(query="*IDN?", accepts=(r"^LSCI,MODEL211,",),
                            expected="LSCI,MODEL211,<serial>,<firmware date mmddyy>")

    def __init__(self, adapter: Any, name: str = "Lake Shore 211 temperature monitor", **kwargs: Any) -> None:
        kwargs.setdefault("read_termination", "\r\n")
        kwargs.setdefault("write_termination", "\r\n")
        kwargs["asrl"] = dict(SERIAL_SETTINGS) | kwargs.pop("asrl", {})
        Instrument.__init__(self, adapter, name, includeSCPI=False, **kwargs)
        set_serial_framing(self.adapter, SERIAL_SETTINGS)

    @property
    def id(self) -> str:
        """The identification (``*IDN?``), e.g. ``LSCI,MODEL211,21A0000,022607``."""
        return self.ask("*IDN?").strip()

    def read_temperature_K(self) -> float:
        """The sensor temperature (K, ``KRDG?``)."""
        return float(self.ask("KRDG?").strip())

    def reading_status(self) -> int:
        """The reading status bits (``RDGST?``; 0: a valid reading)."""
        return int(self.ask("RDGST?").strip())

    def alarms_active(self) -> tuple[bool, bool]:
        """(low alarm, high alarm) active, from the reading status."""
        status = self.reading_status()
        return bool(status & ALARM_LOW), bool(status & ALARM_HIGH)

    def check_errors(self) -> list[tuple[int, str]]:
        """The reading faults of ``RDGST?`` as (bit weight, text); [] for a valid reading. The 211 has no error
        queue (it ignores commands it does not know), so this is all it can report."""
        status = self.reading_status()
        return [(bit, text) for bit, text in READING_FAULTS.items() if status & bit]

    def reset(self) -> None:
        """Power-up settings (``*RST``)."""
        self.write("*RST")


class LakeShore211Settings(BaseModel):
    """instruments.<role>.settings of a Model 211 (each left out: as set on the instrument)."""

    model_config = ConfigDict(extra="forbid")
    display_units: Literal["kelvin", "celsius", "sensor", "fahrenheit"] | None = Field(
        None, description="front-panel display (DISPFLD); readings over the interface are always per query"
    )
    alarm_high_K: float | None = Field(None, gt=0, le=1000, description="high alarm (K): ALARM on, latched")


def configure_lakeshore211(inst: LakeShore211, settings: LakeShore211Settings) -> None:
    """Apply the settings given (``DISPFLD``, ``ALARM``); a 211 ignores a command it refuses, so each is read
    back (RuntimeError when it did not take)."""
    if settings.display_units is not None:
        inst.display_units = settings.display_units
        shown = inst.display_units
        if shown != settings.display_units:
            raise RuntimeError(f"DISPFLD reads {shown!r} after setting {settings.display_units!r}")
    if settings.alarm_high_K is not None:
        inst.configure_alarm(on=True, high_value=settings.alarm_high_K, low_value=0.0, deadband=0.0, latch=True)
        status = inst.get_alarm_status()
        if not status["on"] or abs(status["high_value"] - settings.alarm_high_K) > ALARM_RESOLUTION_K / 2 + 1e-9:
            raise RuntimeError(f"ALARM? reads {status} after setting the high alarm to {settings.alarm_high_K} K")


def lakeshore211_safe_state(inst: LakeShore211, settings: LakeShore211Settings) -> str:
    """A monitor has no output to switch off: nothing is sent (so a lost link cannot make the station's safe state
    report a failure for an instrument that was never unsafe), and it says so."""
    return "nothing to make safe (a temperature monitor: no output)"


LAKESHORE211_REGISTRATION = InstrumentRegistration(
    name="lakeshore211",
    driver=LakeShore211,
    model="Lake Shore 211",
    capabilities=("temperature_sensor",),
    # RS-232C 9600 Bd 7O1, CR LF (Model 211 manual, Table 4-1); the driver sets 7O1 on the serial connection
    connection=ConnectionDefaults(read_termination="\r\n", write_termination="\r\n", timeout_ms=2000,
                                  baud_rate=9600, serial=True),
    settings=LakeShore211Settings,
    configure=configure_lakeshore211,
    safe_state=lakeshore211_safe_state,
    emulator="sim_instruments.lakeshore211:LakeShore211Emulator",
)
