"""PyMeasure driver for the Thorlabs SC10 optical beam shutter controller (RS-232, 9600 baud, CR).

The SC10 is a serial console: it echoes every command, prints a reply line for queries (and for errors), then
the prompt ``"> "`` (no terminator). So every exchange here is

    write ``cmd`` -> read echo line -> [read reply line] -> read the 2-byte prompt

and a command whose next bytes are not the prompt produced an error line (``Command error CMD_...``), which
is raised as :class:`SC10Error`. Command set and framing sources: see ``sim_instruments/sc10.py``.
The shutter is "open" when the controller output is enabled in manual mode (``mode=1``); ``ens`` toggles it.
"""

from __future__ import annotations

from typing import Any

from pymeasure.instruments import Instrument
from pymeasure.instruments.validators import strict_discrete_set

PROMPT = "> "
MODE_MANUAL = 1


class SC10Error(RuntimeError):
    """The controller answered with an error string, or the exchange broke the echo/prompt framing."""


class ThorlabsSC10(Instrument):
    """Thorlabs SC10 shutter controller.

    adapter: VISA resource name (e.g. ``ASRL/dev/ttyUSB0::INSTR``, ``ASRLsocket://127.0.0.1:5025::INSTR``)
    or a PyMeasure adapter; with an adapter object the caller sets its terminations to CR.
    """

    def __init__(self, adapter: Any, name: str = "Thorlabs SC10 shutter controller", **kwargs: Any) -> None:
        kwargs.setdefault("read_termination", "\r")
        kwargs.setdefault("write_termination", "\r")
        asrl = {"baud_rate": 9600, "data_bits": 8} | kwargs.pop("asrl", {})
        super().__init__(adapter, name, includeSCPI=False, asrl=asrl, **kwargs)

    # -- framing -------------------------------------------------------------------------------------------
    def write(self, command: str, **kwargs: Any) -> None:
        """Send ``command``, consume its echo; for a non-query also consume the prompt (raise on an error)."""
        super().write(command, **kwargs)
        echo = super().read()
        if echo.strip() != command:
            raise SC10Error(f"{self.name}: sent {command!r}, echo was {echo!r}")
        if not command.endswith("?"):
            self._expect_prompt(command)

    def read(self, **kwargs: Any) -> str:
        """Read a query's reply line and the prompt after it; raise :class:`SC10Error` on an error line."""
        reply = super().read(**kwargs)
        self._expect_prompt("query")
        if _is_error(reply):
            raise SC10Error(f"{self.name}: {reply.strip()}")
        return reply.strip()

    def _expect_prompt(self, context: str) -> None:
        head = self.read_bytes(len(PROMPT)).decode("ascii", errors="replace")
        if head == PROMPT:
            return
        line = head + super().read()  # an error line came before the prompt
        tail = self.read_bytes(len(PROMPT)).decode("ascii", errors="replace")
        if tail != PROMPT:
            raise SC10Error(f"{self.name}: expected prompt after {line!r}, got {tail!r}")
        raise SC10Error(f"{self.name}: {context!r} -> {line.strip()}")

    # -- identity and state --------------------------------------------------------------------------------
    @property
    def idn(self) -> str:
        """Model and firmware, e.g. ``THORLABS SC10 VERSION 1.07`` (``id?``)."""
        return self.ask("id?")

    @property
    def id(self) -> str:
        """Same as :attr:`idn` (the SC10 has no ``*IDN?``-style SCPI layer)."""
        return self.idn

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


def _is_error(reply: str) -> bool:
    return "CMD_NOT_DEFINED" in reply or "CMD_ARG_INVALID" in reply or reply.startswith("Command error")
