"""Framing shared by the Thorlabs serial-console controllers (SC10 shutter, FW102C filter wheel), RS-232, CR.

These controllers are serial consoles: they echo every command, print a reply line for queries (and for
errors), then the prompt ``"> "`` (no terminator). So every exchange is

    write ``cmd`` -> read echo line -> [read reply line] -> read the 2-byte prompt

and a command whose next bytes are not the prompt produced an error line (``Command error CMD_NOT_DEFINED``
/ ``CMD_ARG_INVALID``), which is raised as the driver's :attr:`ThorlabsConsoleMixin.console_error`.
"""

from __future__ import annotations

from typing import Any

from drivers.identity import IdentitySpec

PROMPT = "> "


class ThorlabsConsoleError(RuntimeError):
    """The controller answered with an error string, or the exchange broke the echo/prompt framing."""


def is_error_line(reply: str) -> bool:
    """Whether a reply line is one of the console's error messages."""
    return "CMD_NOT_DEFINED" in reply or "CMD_ARG_INVALID" in reply or reply.startswith("Command error")


class ThorlabsConsoleMixin:
    """Echo/prompt framing, CR terminations, serial settings and identity of a Thorlabs console controller.

    Put it before ``Instrument`` in the bases (``class Driver(ThorlabsConsoleMixin, Instrument)``); a driver
    sets :attr:`baud_rate`, ``IDENTITY`` and :attr:`console_error` (a :class:`ThorlabsConsoleError`
    subclass). ``adapter``: VISA resource name or a PyMeasure adapter (whose terminations the caller sets to CR).
    """

    #: serial speed (8 data bits); ``asrl={...}`` given to the constructor overrides it
    baud_rate: int = 9600
    #: the identity query of the controller and the replies accepted (:mod:`drivers.identity`)
    IDENTITY: IdentitySpec
    #: exception class raised on an error line or broken framing
    console_error: type[ThorlabsConsoleError] = ThorlabsConsoleError

    def __init__(self, adapter: Any, name: str, **kwargs: Any) -> None:
        kwargs.setdefault("read_termination", "\r")
        kwargs.setdefault("write_termination", "\r")
        asrl = {"baud_rate": self.baud_rate, "data_bits": 8} | kwargs.pop("asrl", {})
        super().__init__(adapter, name, includeSCPI=False, asrl=asrl, **kwargs)

    # -- framing -------------------------------------------------------------------------------------------
    def write(self, command: str, **kwargs: Any) -> None:
        """Send ``command``, consume its echo; for a non-query also consume the prompt (raise on an error)."""
        super().write(command, **kwargs)
        echo = super().read()
        if echo.strip() != command:
            raise self.console_error(f"{self.name}: sent {command!r}, echo was {echo!r}")
        if not command.endswith("?"):
            self._expect_prompt(command)

    def read(self, **kwargs: Any) -> str:
        """Read a query's reply line and the prompt after it; raise :attr:`console_error` on an error line."""
        reply = super().read(**kwargs)
        self._expect_prompt("query")
        if is_error_line(reply):
            raise self.console_error(f"{self.name}: {reply.strip()}")
        return reply.strip()

    def _expect_prompt(self, context: str) -> None:
        head = self.read_bytes(len(PROMPT)).decode("ascii", errors="replace")
        if head == PROMPT:
            return
        line = head + super().read()  # an error line came before the prompt
        tail = self.read_bytes(len(PROMPT)).decode("ascii", errors="replace")
        if tail != PROMPT:
            raise self.console_error(f"{self.name}: expected prompt after {line!r}, got {tail!r}")
        raise self.console_error(f"{self.name}: {context!r} -> {line.strip()}")

    # -- identity ------------------------------------------------------------------------------------------
    @property
    def idn(self) -> str:
        """Model and firmware, the reply to the driver's identity query (``IDENTITY.query``)."""
        return self.ask(self.IDENTITY.query)

    @property
    def id(self) -> str:
        """Same as :attr:`idn` (these controllers have no SCPI layer)."""
        return self.idn

    def check_errors(self) -> list[tuple[int, str]]:
        """Always []: these controllers queue no errors; an error line comes back with the command that caused
        it and that command raises :attr:`console_error` (Thorlabs SC10 / FW102C manuals, "Computer interface").

        Sends nothing (the labctl check_errors contract: a list of (code, message), never raises).
        """
        return []

    def check_set_errors(self, context: str = "") -> list[tuple[int, str]]:
        """Always [] (see :meth:`check_errors`)."""
        return self.check_errors()
