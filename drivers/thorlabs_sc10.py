"""PyMeasure driver for the Thorlabs SC10 optical beam shutter controller (RS-232, 9600 baud, CR).

The SC10 is a serial console: it echoes every command, prints a reply line for queries (and for errors), then
the prompt ``"> "`` (no terminator). So every exchange here is

    write ``cmd`` -> read echo line -> [read reply line] -> read the 2-byte prompt

and a command whose next bytes are not the prompt produced an error line (``Command error CMD_...``), which
is raised as :class:`SC10Error`. Command set: Thorlabs SC10 manual (the keyword table); framing and identity:
the Thorlabs console firmware as drivers of real units see it (instruments ref. §0, §5).
The shutter is "open" when the controller output is enabled in manual mode (``mode=1``); ``ens`` toggles it.
"""

from __future__ import annotations

from typing import Any

from pymeasure.instruments import Instrument
from pymeasure.instruments.validators import strict_discrete_set

from drivers.identity import IdentitySpec
from drivers.registration import ConnectionDefaults, InstrumentRegistration
from drivers.safe import shutter_safe_state
from drivers.thorlabs_console import PROMPT as PROMPT
from drivers.thorlabs_console import ThorlabsConsoleError, ThorlabsConsoleMixin

MODE_MANUAL = 1


class SC10Error(ThorlabsConsoleError):
    """The controller answered with an error string, or the exchange broke the echo/prompt framing."""


class ThorlabsSC10(ThorlabsConsoleMixin, Instrument):
    """Thorlabs SC10 shutter controller.

    adapter: VISA resource name (e.g. ``ASRL/dev/ttyUSB0::INSTR``, ``ASRLsocket://127.0.0.1:5025::INSTR``)
    or a PyMeasure adapter; with an adapter object the caller sets its terminations to CR.
    Framing (echo, ``"> "`` prompt, error lines) and :attr:`idn` / :attr:`id` come from
    :class:`~drivers.thorlabs_console.ThorlabsConsoleMixin`.
    """

    baud_rate = 9600
    #: ``id?`` answers the model and firmware, e.g. ``THORLABS SC10 VERSION 1.07`` (no ``*IDN?``-style SCPI layer)
    IDENTITY = IdentitySpec(query="id?", accepts=(r"THORLABS SC10\b",), expected="THORLABS SC10 VERSION <firmware>")
    console_error = SC10Error

    def __init__(self, adapter: Any, name: str = "Thorlabs SC10 shutter controller", **kwargs: Any) -> None:
        super().__init__(adapter, name, **kwargs)

    # -- state ---------------------------------------------------------------------------------------------
    mode = Instrument.control(
        "mode?", "mode=%d",
        """Operating mode: 1 manual, 2 auto, 3 single, 4 repeat, 5 external gate (int).""",
        validator=strict_discrete_set, values=[1, 2, 3, 4, 5], cast=int,
    )

    closed = Instrument.measurement(
        "closed?", """Whether the shutter is closed (bool, ``closed?``).""",
        cast=int, get_process=lambda v: bool(v),
    )

    interlock_tripped = Instrument.measurement(
        "interlock?", """Whether the interlock is tripped (bool, ``interlock?``).""",
        cast=int, get_process=lambda v: bool(v),
    )

    @property
    def enabled(self) -> bool:
        """Whether the controller output is enabled (``ens?``)."""
        reply = self.ask("ens?")
        if reply not in ("0", "1"):
            raise SC10Error(f"{self.name}: unexpected reply {reply!r} to 'ens?'")
        return reply == "1"

    @property
    def shutter_open(self) -> bool:
        """Shutter open (True) or closed (False). Setting toggles ``ens`` only if the state differs, then
        checks the new state (raises :class:`SC10Error` if it did not change, e.g. interlock tripped)."""
        return self.enabled

    @shutter_open.setter
    def shutter_open(self, value: bool) -> None:
        value = bool(value)
        if self.enabled == value:
            return
        self.write("ens")
        if self.enabled != value:
            action = "open" if value else "close"
            raise SC10Error(f"{self.name}: shutter did not {action} (interlock tripped?)")

    def open_shutter(self) -> None:
        """Put the controller in manual mode if needed, then open the shutter."""
        if self.mode != MODE_MANUAL:
            self.mode = MODE_MANUAL
        self.shutter_open = True

    def close_shutter(self) -> None:
        """Close the shutter (disable the output; safe in every mode)."""
        self.shutter_open = False

    def safe_state(self) -> None:
        """Safe state of a light source: shutter closed."""
        self.close_shutter()

    def shutdown(self) -> None:
        """Close the shutter, then mark the instrument shut down."""
        self.safe_state()
        super().shutdown()


THORLABS_SC10_REGISTRATION = InstrumentRegistration(
    name="thorlabs_sc10",
    driver=ThorlabsSC10,
    model="Thorlabs SC10",
    capabilities=("shutter",),
    # RS-232 9600 Bd 8N1, commands and replies end with CR (SC10 manual, "Computer interface")
    connection=ConnectionDefaults(read_termination="\r", write_termination="\r", timeout_ms=5000,
                                  baud_rate=9600, serial=True),
    safe_state=shutter_safe_state,
    emulator="sim_instruments.sc10:SC10Emulator",
)
