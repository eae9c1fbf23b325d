"""PyMeasure drivers for the Newport/Oriel Cornerstone 130 and 260 monochromators (RS-232 9600 8N1, CR LF).

In standard mode over RS-232 the monochromator echoes every statement; a query's answer follows as a second
line; a failed statement prints nothing but its echo (the error code is read with ``STB?``/``ERROR?``, and a
failed query gives no answer at all, so the read times out). So every exchange here is

    write ``STATEMENT`` -> read the echo line and check it -> [read the answer line]

Moves (``GOWAVE``, ``GRAT``, ``FILTER``) return their echo at once; the *next* statement is answered only when
the move is over, so each setter confirms the move with the matching query under a read timeout long enough
for the move (``move_timeout_s``, ``grating_timeout_s``), then compares. Wavelengths are in nm: the driver sends
``UNITS NM`` before its first wavelength statement (:meth:`configure` does it explicitly). Handshake mode
(``HANDSHAKE 1``) is not supported: the driver assumes the factory standard mode.

Command set, error codes and framing: Oriel Cornerstone 260 manual and Cornerstone 260B manual (MCS260B), the
RS-232 command chapters (instruments ref. §4, which gives sources and confidence). The printed form of ``STB?``
is uncertain (hex ``20`` or decimal ``32`` for the error bit, instruments ref. §10.5): :func:`status_reports_error`
accepts both, and ``ERROR?`` has the final word.
"""

from __future__ import annotations

import numbers
from typing import Any, NamedTuple

from pymeasure.instruments import Instrument
from pymeasure.instruments.validators import strict_discrete_set, strict_range
from pyvisa.constants import StatusCode
from pyvisa.errors import VisaIOError

from drivers.identity import IdentitySpec
from drivers.io_helpers import timeout_at_least
from drivers.registration import ConnectionDefaults, InstrumentRegistration
from drivers.safe import shutter_safe_state

#: ``ERROR?`` codes (reference §4.2; 7 only on the older CS260, 10 on the CS260B)
ERROR_MEANINGS = {
    0: "no error",
    1: "command not understood",
    2: "bad parameter",
    3: "destination wavelength not allowed (outside the present grating's range)",
    6: "accessory not present (usually the filter wheel)",
    7: "accessory already at that position",
    8: "could not home the wavelength drive",
    9: "label too long",
    10: "system error",
}
STB_ERROR = 0x20
UNITS = ("NM", "UM", "WN")
LABEL_MAX_CHARS = 8


class CornerstoneError(RuntimeError):
    """The monochromator reported an error, did not reach a set-point, or broke the echo framing."""


class GratingInfo(NamedTuple):
    """The ``GRAT?`` answer: turret position, groove density (lines/mm) and label."""

    number: int
    lines_per_mm: int
    label: str


def parse_grating_reply(reply: str) -> GratingInfo:
    """``"1,1200,LABEL"`` -> ``GratingInfo(1, 1200, "LABEL")`` (the label may contain commas or be absent)."""
    fields = reply.strip().split(",", 2)
    try:
        number, lines = int(fields[0]), int(fields[1])
    except (ValueError, IndexError):
        raise CornerstoneError(f"unreadable GRAT? answer {reply!r}") from None
    return GratingInfo(number, lines, fields[2].strip() if len(fields) > 2 else "")


def status_reports_error(reply: str) -> bool:
    """Whether a ``STB?`` answer has the error bit (0x20) set, read as hex (``20``) or as decimal (``32``).

    Reading both ways never misses the error bit; a false alarm only costs an ``ERROR?`` that returns 0.
    """
    text = reply.strip()
    values = []
    for base in (16, 10):
        try:
            values.append(int(text, base))
        except ValueError:
            pass
    if not values:
        raise CornerstoneError(f"unreadable status byte {reply!r}")
    return any(value & STB_ERROR for value in values)


class CornerstoneMonochromator(Instrument):
    """Common driver of the Cornerstone family; use the model classes :class:`Cornerstone260`/``130``.

    adapter: VISA resource name (e.g. ``ASRL/dev/ttyUSB0::INSTR``, ``ASRLsocket://127.0.0.1:5025::INSTR``)
    or a PyMeasure adapter; with an adapter object the caller sets its terminations to CR LF.
    """

    grating_positions = 3
    filter_positions = 6
    wavelength_range_nm = (0.0, 2500.0)  # generic limit; each grating's own range is checked by the instrument
    wavelength_tolerance_nm = 0.1  # |WAVE? - set-point| accepted after a move [L]
    move_timeout_s = 30.0  # read timeout for the statement after a wavelength or filter move (full slew ~17 s)
    grating_timeout_s = 60.0  # read timeout for the statement after a grating change (~15 s [L])

    def __init__(self, adapter: Any, name: str = "Cornerstone monochromator", **kwargs: Any) -> None:
        self._units_nm = False
        self._diagnosing = False
        kwargs.setdefault("read_termination", "\r\n")
        kwargs.setdefault("write_termination", "\r\n")
        asrl = {"baud_rate": 9600, "data_bits": 8} | kwargs.pop("asrl", {})
        super().__init__(adapter, name, includeSCPI=False, asrl=asrl, **kwargs)

    # -- framing -------------------------------------------------------------------------------------------
    def write(self, command: str, **kwargs: Any) -> None:
        """Send ``command`` and consume its echo line (raise :class:`CornerstoneError` if it differs)."""
        super().write(command, **kwargs)
        echo = super().read()
        if echo.strip() != command.strip():
            raise CornerstoneError(f"{self.name}: sent {command!r}, echo was {echo!r}")

    def read(self, **kwargs: Any) -> str:
        """Read an answer line. If none comes (a failed query), raise the recorded error, else the timeout."""
        try:
            return super().read(**kwargs).strip()
        except VisaIOError as exc:
            if exc.error_code != StatusCode.error_timeout or self._diagnosing:
                raise
            self._diagnosing = True
            try:
                self.check_set_errors()
            finally:
                self._diagnosing = False
            raise

    def _number(self, command: str) -> float:
        reply = self.ask(command)
        try:
            return float(reply)
        except ValueError:
            raise CornerstoneError(f"{self.name}: unreadable answer {reply!r} to {command!r}") from None

    # -- errors --------------------------------------------------------------------------------------------
    @property
    def error_code(self) -> int:
        """Last error code (``ERROR?``; reading resets it to 0). Meanings: :data:`ERROR_MEANINGS`."""
        return int(self._number("ERROR?"))

    def check_errors(self) -> list[tuple[int, str]]:
        """``STB?``, then ``ERROR?`` if the error bit is set: ``[(code, meaning)]`` of the recorded error, or []
        (the labctl check_errors contract: never raises for a recorded error; reading it clears it).

        The Cornerstone records one error at a time (Cornerstone 260 manual, ``ERROR?``). An unreadable status
        byte or answer is a broken link, not a recorded error: :class:`CornerstoneError`.
        """
        if not status_reports_error(self.ask("STB?")):
            return []
        code = self.error_code
        if code == 0:
            return []
        return [(code, ERROR_MEANINGS.get(code, "unknown error code"))]

    def check_set_errors(self, context: str = "") -> list[tuple[int, str]]:
        """Raise :class:`CornerstoneError` naming the recorded error (code and meaning); [] when there is none."""
        errors = self.check_errors()
        if errors:
            code, meaning = errors[0]
            raise CornerstoneError(f"{self.name}: error {code}: {meaning}" + (f" (after {context})" if context else ""))
        return errors

    def _failed(self, what: str) -> CornerstoneError:
        """Raise the instrument's recorded error if any, else return an error describing ``what``."""
        self.check_set_errors()
        return CornerstoneError(f"{self.name}: {what}")

    # -- identity and configuration ------------------------------------------------------------------------
    @property
    def idn(self) -> str:
        """Model and firmware (``INFO?``, answered by every model; ``*IDN?`` exists on the B models only).

        A missing answer is not diagnosed with ``STB?``/``ERROR?`` as other queries are: this is the query that
        verifies the identity, and nothing else may be sent to an instrument before it is known to be ours.
        """
        self.write("INFO?")
        return Instrument.read(self).strip()

    @property
    def id(self) -> str:
        """Same as :attr:`idn`."""
        return self.idn

    def configure(self) -> None:
        """Put the instrument in the state this driver assumes: wavelength units nm."""
        self.units = "NM"

    @property
    def units(self) -> str:
        """Wavelength units of ``GOWAVE``/``WAVE?``: ``NM``, ``UM`` or ``WN`` (cm⁻¹). Setting confirms."""
        return self.ask("UNITS?")

    @units.setter
    def units(self, value: str) -> None:
        value = strict_discrete_set(str(value).upper(), UNITS)
        self.write(f"UNITS {value}")
        reply = self.ask("UNITS?")
        if reply != value:
            raise self._failed(f"units are {reply!r} after 'UNITS {value}'")
        self._units_nm = value == "NM"

    def _ensure_nm(self) -> None:
        if not self._units_nm:
            self.units = "NM"

    # -- wavelength ----------------------------------------------------------------------------------------
    @property
    def wavelength_nm(self) -> float:
        """Wavelength (nm). Setting sends ``GOWAVE`` and waits for ``WAVE?`` (answered after the move), then
        checks it; a wavelength outside the grating's range raises error 3 and leaves the position unchanged."""
        self._ensure_nm()
        return self._number("WAVE?")

    @wavelength_nm.setter
    def wavelength_nm(self, value: float) -> None:
        value = strict_range(float(value), self.wavelength_range_nm)
        self._ensure_nm()
        self.write(f"GOWAVE {value:.3f}")
        with timeout_at_least(self.adapter, self.move_timeout_s):
            reached = self._number("WAVE?")
        if abs(reached - value) > self.wavelength_tolerance_nm:
            raise self._failed(f"asked for {value:.3f} nm, the monochromator is at {reached:.3f} nm")

    def abort(self) -> None:
        """Stop a wavelength move where it is (``ABORT``)."""
        self.write("ABORT")

    # -- grating -------------------------------------------------------------------------------------------
    def grating_info(self) -> GratingInfo:
        """Present grating: number, lines/mm and label (``GRAT?``)."""
        return parse_grating_reply(self.ask("GRAT?"))

    @property
    def grating(self) -> int:
        """Turret position of the grating in use. Setting waits for the change (~15 s) and checks it."""
        return self.grating_info().number

    @grating.setter
    def grating(self, value: int) -> None:
        value = _position(value, self.grating_positions, "grating")
        self.write(f"GRAT {value}")
        with timeout_at_least(self.adapter, self.grating_timeout_s):
            info = self.grating_info()
        if info.number != value:
            raise self._failed(f"grating {info.number} in use after 'GRAT {value}'")

    # -- internal filter wheel -----------------------------------------------------------------------------
    @property
    def filter(self) -> int:
        """Position (1-6) of the internal filter wheel. Setting waits for the move and checks it."""
        return int(self._number("FILTER?"))

    @filter.setter
    def filter(self, value: int) -> None:
        value = _position(value, self.filter_positions, "filter")
        self.write(f"FILTER {value}")
        with timeout_at_least(self.adapter, self.move_timeout_s):
            reached = int(self._number("FILTER?"))
        if reached != value:
            raise self._failed(f"filter {reached} in place after 'FILTER {value}'")

    def filter_label(self, position: int) -> str:
        """Label stored for filter ``position`` (``FILTERnLABEL?``)."""
        position = _position(position, self.filter_positions, "filter")
        return self.ask(f"FILTER{position}LABEL?")

    def set_filter_label(self, position: int, label: str) -> None:
        """Store ``label`` (≤ 8 printable ASCII characters, no leading/trailing space) for filter ``position``."""
        position = _position(position, self.filter_positions, "filter")
        if not (label and len(label) <= LABEL_MAX_CHARS and label.isascii() and label.isprintable()
                and label == label.strip()):
            raise ValueError(f"a filter label is 1-{LABEL_MAX_CHARS} printable ASCII characters, not {label!r}")
        self.write(f"FILTER{position}LABEL {label}")

    # -- shutter -------------------------------------------------------------------------------------------
    @property
    def shutter_open(self) -> bool:
        """Shutter open (True) or closed (False) (``SHUTTER?`` -> ``O``/``C``). Setting checks the result."""
        reply = self.ask("SHUTTER?")
        if reply not in ("O", "C"):
            raise CornerstoneError(f"{self.name}: unexpected answer {reply!r} to 'SHUTTER?'")
        return reply == "O"

    @shutter_open.setter
    def shutter_open(self, value: bool) -> None:
        value = bool(value)
        # a long timeout: if a move is still running, the shutter statement is executed after it
        with timeout_at_least(self.adapter, self.grating_timeout_s):
            self.write(f"SHUTTER {'O' if value else 'C'}")
            state = self.shutter_open
        if state != value:
            raise self._failed(f"shutter did not {'open' if value else 'close'}")

    def open_shutter(self) -> None:
        self.shutter_open = True

    def close_shutter(self) -> None:
        self.shutter_open = False

    def safe_state(self) -> None:
        """Safe state of a light path: shutter closed."""
        self.close_shutter()

    def shutdown(self) -> None:
        """Close the shutter, then mark the instrument shut down."""
        self.safe_state()
        super().shutdown()


class Cornerstone260(CornerstoneMonochromator):
    """Oriel Cornerstone 260 (1/4 m; CS260 and CS260B), three-grating turret."""

    grating_positions = 3
    #: ``INFO?`` → ``CORNERSTONE 260 VER 1.00`` (or ``260B``); the exact text is [L] (instruments.md §4.2, §10.5)
    IDENTITY = IdentitySpec(query="INFO?", accepts=(r"CORNERSTONE 260B?\b",), expected="CORNERSTONE 260 VER <firmware>")

    def __init__(self, adapter: Any, name: str = "Oriel Cornerstone 260 monochromator", **kwargs: Any) -> None:
        super().__init__(adapter, name, **kwargs)


class Cornerstone130(CornerstoneMonochromator):
    """Oriel Cornerstone 130 (1/8 m; CS130 and CS130B), two-grating turret [M]; same command language."""

    grating_positions = 2
    #: ``INFO?`` → ``CORNERSTONE 130 VER 1.00`` (or ``130B``); the exact text is [L] (instruments.md §4.2, §10.5)
    IDENTITY = IdentitySpec(query="INFO?", accepts=(r"CORNERSTONE 130B?\b",), expected="CORNERSTONE 130 VER <firmware>")

    def __init__(self, adapter: Any, name: str = "Oriel Cornerstone 130 monochromator", **kwargs: Any) -> None:
        super().__init__(adapter, name, **kwargs)


def _position(value: Any, count: int, what: str) -> int:
    """Validate a 1-based integer position (bools and non-integral numbers are rejected)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not float(value).is_integer():
        raise ValueError(f"{what} position must be an integer 1-{count}, not {value!r}")
    return int(strict_range(int(value), (1, count)))


def _registration(name: str, driver: type, model: str) -> InstrumentRegistration:
    return InstrumentRegistration(
        name=name,
        driver=driver,
        model=f"Oriel Cornerstone {model}",
        capabilities=("monochromator", "shutter"),
        # RS-232 9600 Bd 8N1; the CS260B requires CR LF after a command (older units accept LF) and every
        # reply ends CR LF (Cornerstone 260 user manual, "Serial communication"); moves set their own
        # longer read timeouts (move_timeout_s, grating_timeout_s)
        connection=ConnectionDefaults(read_termination="\r\n", write_termination="\r\n", timeout_ms=5000,
                                      baud_rate=9600, serial=True),
        safe_state=shutter_safe_state,
        emulator="sim_instruments.cornerstone:CornerstoneEmulator",
        emulator_options={"model": model},
    )


CORNERSTONE260_REGISTRATION = _registration("cornerstone260", Cornerstone260, "260")
CORNERSTONE130_REGISTRATION = _registration("cornerstone130", Cornerstone130, "130")
