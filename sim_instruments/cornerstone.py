"""Emulator of the Newport/Oriel Cornerstone 130 and 260 monochromators (drives ``bench.optics``).

Protocol (RS-232 9600 8N1, standard mode): statements end in CR LF, any case; every received character is
echoed; a query's answer follows the echo as one upper-case line ending CR LF; a command prints nothing more.
A bad statement prints only its echo, records an error code (``ERROR?``) and sets bit 5 of the status byte::

    host ``GOWAVE 500\\r\\n``  ->  ``GOWAVE 500\\r\\n``
    host ``WAVE?\\r\\n``       ->  ``WAVE?\\r\\n500.000\\r\\n``        (answered once the move is over)
    host ``GOWAVE 9000\\r\\n`` ->  ``GOWAVE 9000\\r\\n``              (error 3 recorded, STB? -> ``20``)

:meth:`handle` returns the answer text only; echo and terminations are added by the transport from
:attr:`echo`/:attr:`prompt` and :data:`FRAMING`.

Motion: a move statement (GOWAVE, GRAT, FILTER) returns at once and the unit becomes busy until
:attr:`busy_until_s`; the next statement waits (``bench.clock.sleep``) until then, so a ``WAVE?`` sent right
after ``GOWAVE`` is answered after the move. ``ABORT`` is the exception: it stops a wavelength slew where it
is. The new optical state is written to ``bench.optics`` when the move is *commanded* (the optics stamp the
change at that time), so the bench never shows a stale state to a client that does not poll the monochromator;
the light is therefore modelled as jumping to the target at the start of the move.

Sources and confidence ([H] manual or drivers of real units, [M] one secondary source, [L] assumption), all
from the lab's instrument reference §4:
- Framing, echo, CR LF, case rules, ``GOWAVE``/``WAVE?``/``GRAT``/``FILTER``/``FILTERnLABEL``/``SHUTTER``/
  ``ABORT``/``HANDSHAKE``/``STB?``/``ERROR?``/``INFO?``, error codes 1, 2, 3, 6, 9, status bit 5 [H];
  ``UNITS NM|UM|WN`` [M]; ``*IDN?``/``*OPC?``/``*WAI`` on the B models only [H for the 260B, M for the 130B].
- Commands run in order; ``WAVE?`` after ``GOWAVE`` answers after the move [M].
- Turret: 3 gratings on the 260, 2 on the 130 [M]. All motion times below, ``STB?`` printed as two hex digits
  (``20``; ``status_decimal=True`` prints ``32``), ``INFO?``/``*IDN?`` texts, labels limited to 8 characters
  for gratings too, a grating change clamping the wavelength into the new grating's range, ``ABORT`` acting
  on wavelength slews only, and the ``WAVE?`` number formats in UM/WN are assumptions [L].
- Fault injection (:mod:`sim_instruments.faults`): a stalled move (:meth:`CornerstoneEmulator.stall`) changes
  nothing and the unit answers nothing until the stall is over; :meth:`CornerstoneEmulator.power_on` is a power
  cycle (units NM, handshake off, no error, labels and optics kept) [L].
- Not emulated: ``ECHO 0`` (echo is a transport setting here), ``OUTPORT``, ``SLITn``, ``STEP``, ``GRATnLINES``/
  ``ZERO``/``FACTOR``/``OFFSET``, ``*ESR?``, error 7 (older CS260 only), 8 and 10: they answer error 1.
"""

from __future__ import annotations

import re
from typing import Any

#: wavelength slew rate (nm/s) [L: reference §4.3 gives 100-200 nm/s]
SLEW_NM_PER_S = 150.0
#: settling after a wavelength move (s) [L]
SETTLE_S = 0.5
#: internal filter wheel, per slot moved, shorter direction (s) [L: §4.3 suggests 2-5 s per move]
FILTER_S_PER_SLOT = 2.0
#: grating (turret) change incl. re-homing (s) [L: §4.3 gives ~10-20 s]
GRATING_CHANGE_S = 15.0

FILTER_POSITIONS = 6
LABEL_MAX_CHARS = 8
TURRET_POSITIONS = {"130": 2, "260": 3}
MODELS = ("130", "130B", "260", "260B")
FIRMWARE = "1.00"  # [L]

ERR_NONE = 0
ERR_NOT_UNDERSTOOD = 1
ERR_BAD_PARAMETER = 2
ERR_WAVELENGTH = 3
ERR_NO_ACCESSORY = 6
ERR_LABEL_TOO_LONG = 9
STB_ERROR = 0x20

FRAMING: dict[str, Any] = {"read_termination": "\r\n", "write_termination": "\r\n", "echo": True, "prompt": ""}
_EOL = FRAMING["read_termination"]
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_LABEL_STATEMENT = re.compile(r"(FILTER|GRAT)(\d+)LABEL(\??)")
_UNITS = ("NM", "UM", "WN")


class _StatementError(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class CornerstoneEmulator:
    """One Cornerstone monochromator (wavelength drive, grating turret, 6-position filter wheel, shutter).

    bench: object with ``bench.clock`` and ``bench.optics`` (contract in docs/architecture.md); the optical
        state is read from and written to ``bench.optics`` (nothing is written at construction: the emulator
        starts from the bench's state).
    model: ``"130"``, ``"260"`` or a B model (``"130B"``, ``"260B"``: adds ``*IDN?``, ``*OPC?``, ``*WAI``).
    filter_wheel: whether the internal filter wheel is fitted (if not, FILTER statements give error 6).
    status_decimal: print ``STB?`` in decimal (``32``) instead of hex (``20``) — the manuals disagree.
    """

    #: the ``sim://<name>`` resources of the bench this emulator can be (the monochromator)
    SIM_NAMES: tuple[str, ...] = ("monochromator",)

    echo = True
    prompt = ""

    def __init__(self, bench: Any, model: str = "260", filter_wheel: bool = True,
                 status_decimal: bool = False) -> None:
        model = str(model).upper()
        if model not in MODELS:
            raise ValueError(f"unknown Cornerstone model {model!r}; known: {', '.join(MODELS)}")
        self.model = model
        self.ieee_commands = model.endswith("B")
        self.turret_positions = TURRET_POSITIONS[model[:3]]
        self.bench = bench
        self.optics = bench.optics
        self.clock = bench.clock
        self.filter_wheel = bool(filter_wheel)
        self.status_decimal = bool(status_decimal)
        self.units = "NM"
        self.handshake = False
        self.error_code = ERR_NONE
        self.status_error = False
        self.busy_until_s = self.clock.now()
        self._slew: tuple[float, float, float, float] | None = None  # (t0_s, t1_s, from_nm, to_nm)
        self.filter_labels = {n: "" for n in range(1, FILTER_POSITIONS + 1)}
        self.grating_labels = {g.number: str(g.label).upper() for g in self.optics.gratings}
        self._stalled = self._stall_fresh = False  # fault injection: a move that never completes
        self._stall_until_s: float | None = None

    # -- fault injection -----------------------------------------------------------------------------------
    def stall(self, message: str, until_s: float | None) -> bool:
        """If ``message`` is a move (``GOWAVE``, ``GRAT``, ``FILTER`` with an argument), it never completes:
        nothing moves, and no statement is answered until station time ``until_s`` (None: the next statement
        is lost too, then the unit answers again). True when it stalled (False: not a move)."""
        keyword, arg = _split(message)
        if keyword not in ("GOWAVE", "GRAT", "FILTER") or arg is None:
            return False
        self._stalled = self._stall_fresh = True
        self._stall_until_s = until_s
        return True

    def power_on(self) -> None:
        """A power cycle: units NM, handshake off, no error; the optics stay where they are, a stall is over."""
        self.units, self.handshake, self.error_code, self.status_error = "NM", False, ERR_NONE, False
        self.busy_until_s, self._slew = self.clock.now(), None
        self._stalled = self._stall_fresh = False

    def _stalled_now(self) -> bool:
        """Whether this statement is lost to a stalled move (and the stall's end)."""
        if not self._stalled:
            return False
        if self._stall_fresh:
            self._stall_fresh = False
            return True
        if self._stall_until_s is None:
            self._stalled = False
            return True
        if self.clock.now() < self._stall_until_s:
            return True
        self._stalled = False
        return False

    # -- protocol ------------------------------------------------------------------------------------------
    def handle(self, message: str) -> str | None:
        """One statement (terminator stripped) in; the answer line out, or None (echo only)."""
        if self._stalled_now():
            return None
        keyword, arg = _split(message)
        if keyword == "ABORT" and arg is None:
            self._abort()
        else:
            self.wait_idle()
        try:
            reply, failed = self._dispatch(keyword, arg), False
        except _StatementError as exc:
            self.error_code = exc.code
            self.status_error = True
            reply, failed = None, True
        if not self.handshake:
            return reply
        self.wait_idle()  # handshake mode: the status byte comes when the action is complete
        status = self._format_status(STB_ERROR if failed else 0)
        return status if reply is None else reply + _EOL + status

    def wait_idle(self) -> None:
        """Sleep the bench clock until the current move is over."""
        remaining = self.busy_until_s - self.clock.now()
        if remaining > 0:
            self.clock.sleep(remaining)
        self._slew = None

    def _dispatch(self, keyword: str, arg: str | None) -> str | None:
        match = _LABEL_STATEMENT.fullmatch(keyword)
        if match:
            return self._label(match.group(1), int(match.group(2)), match.group(3) == "?", arg)
        if keyword.endswith("?"):
            if arg is not None:
                raise _StatementError(ERR_NOT_UNDERSTOOD)
            query = self._queries().get(keyword)
            if query is None:
                raise _StatementError(ERR_NOT_UNDERSTOOD)
            return query()
        command = self._commands().get(keyword)
        if command is None:
            raise _StatementError(ERR_NOT_UNDERSTOOD)
        if arg is None and keyword not in ("ABORT", "*WAI"):
            raise _StatementError(ERR_BAD_PARAMETER)
        if arg is not None and keyword in ("ABORT", "*WAI"):
            raise _StatementError(ERR_NOT_UNDERSTOOD)
        command(arg)
        return None

    def _queries(self) -> dict[str, Any]:
        queries = {
            "WAVE?": lambda: self._format_wavelength(self.optics.wavelength_nm),
            "UNITS?": lambda: self.units,
            "GRAT?": self._grating_query,
            "FILTER?": self._filter_query,
            "SHUTTER?": lambda: "O" if self.optics.mono_shutter_open else "C",
            "STB?": self._stb,
            "ERROR?": self._error,
            "INFO?": lambda: f"CORNERSTONE {self.model} VER {FIRMWARE}",
        }
        if self.ieee_commands:
            queries["*IDN?"] = lambda: f"NEWPORT CORPORATION,CS{self.model},0,{FIRMWARE}"
            queries["*OPC?"] = lambda: "1"  # the wait for the end of the move has happened already
        return queries

    def _commands(self) -> dict[str, Any]:
        commands = {
            "GOWAVE": self._gowave,
            "UNITS": self._set_units,
            "GRAT": self._set_grating,
            "FILTER": self._set_filter,
            "SHUTTER": self._set_shutter,
            "HANDSHAKE": self._set_handshake,
            "ABORT": lambda _arg: None,  # handled before dispatch
        }
        if self.ieee_commands:
            commands["*WAI"] = lambda _arg: None  # statements already run in order
        return commands

    # -- wavelength ----------------------------------------------------------------------------------------
    def _gowave(self, arg: str) -> None:
        value = _number(arg)
        if self.units == "NM":
            target_nm = value
        elif self.units == "UM":
            target_nm = value * 1000.0
        else:  # wavenumbers, cm^-1
            if value <= 0:
                raise _StatementError(ERR_BAD_PARAMETER)
            target_nm = 1e7 / value
        grating = self._grating(self.optics.grating)
        if not grating.min_nm <= target_nm <= grating.max_nm:
            raise _StatementError(ERR_WAVELENGTH)
        self._move_wavelength(target_nm)

    def _move_wavelength(self, target_nm: float) -> None:
        now = self.clock.now()
        start_nm = float(self.optics.wavelength_nm)
        distance_nm = abs(target_nm - start_nm)
        if distance_nm == 0:
            return
        slew_s = distance_nm / SLEW_NM_PER_S
        self._slew = (now, now + slew_s, start_nm, target_nm)
        self.busy_until_s = now + slew_s + SETTLE_S
        self.optics.set_wavelength(target_nm)

    def _abort(self) -> None:
        """Stop a wavelength slew at the wavelength reached now; any other move runs to its end."""
        now = self.clock.now()
        if self._slew is None or now >= self.busy_until_s:
            self.wait_idle()
            return
        t0_s, t1_s, from_nm, to_nm = self._slew
        fraction = min(1.0, (now - t0_s) / (t1_s - t0_s))
        self.optics.set_wavelength(from_nm + (to_nm - from_nm) * fraction)
        self.busy_until_s = now
        self._slew = None

    def _format_wavelength(self, nm: float) -> str:
        if self.units == "NM":
            return f"{nm:.3f}"
        if self.units == "UM":
            return f"{nm / 1000.0:.6f}"
        return f"{1e7 / nm:.3f}" if nm > 0 else "0.000"

    def _set_units(self, arg: str) -> None:
        if arg not in _UNITS:
            raise _StatementError(ERR_BAD_PARAMETER)
        self.units = arg

    # -- grating, filter, shutter --------------------------------------------------------------------------
    def _grating(self, number: int) -> Any:
        for grating in self.optics.gratings:
            if grating.number == number:
                return grating
        raise _StatementError(ERR_BAD_PARAMETER)

    def _valid_grating(self, arg: str) -> Any:
        number = _integer(arg)
        if not 1 <= number <= self.turret_positions:
            raise _StatementError(ERR_BAD_PARAMETER)
        return self._grating(number)

    def _grating_query(self) -> str:
        grating = self._grating(self.optics.grating)
        label = self.grating_labels.get(grating.number, str(grating.label).upper())
        return f"{grating.number},{grating.lines_per_mm},{label}"

    def _set_grating(self, arg: str) -> None:
        grating = self._valid_grating(arg)
        if grating.number == self.optics.grating:
            return
        now = self.clock.now()
        self.optics.set_grating(grating.number)
        wavelength_nm = float(self.optics.wavelength_nm)
        clamped_nm = min(max(wavelength_nm, grating.min_nm), grating.max_nm)
        if clamped_nm != wavelength_nm:
            self.optics.set_wavelength(clamped_nm)
        self.busy_until_s = now + GRATING_CHANGE_S

    def _require_wheel(self) -> None:
        if not self.filter_wheel:
            raise _StatementError(ERR_NO_ACCESSORY)

    def _filter_query(self) -> str:
        self._require_wheel()
        return str(self.optics.mono_filter)

    def _set_filter(self, arg: str) -> None:
        self._require_wheel()
        position = _integer(arg)
        if not 1 <= position <= FILTER_POSITIONS:
            raise _StatementError(ERR_BAD_PARAMETER)
        steps = abs(position - int(self.optics.mono_filter)) % FILTER_POSITIONS
        steps = min(steps, FILTER_POSITIONS - steps)
        if steps == 0:
            return
        self.busy_until_s = self.clock.now() + steps * FILTER_S_PER_SLOT
        self.optics.set_mono_filter(position)

    def _set_shutter(self, arg: str) -> None:
        if arg not in ("O", "C"):
            raise _StatementError(ERR_BAD_PARAMETER)
        self.optics.set_mono_shutter(arg == "O")

    def _label(self, kind: str, number: int, query: bool, arg: str | None) -> str | None:
        if kind == "FILTER":
            self._require_wheel()
            if not 1 <= number <= FILTER_POSITIONS:
                raise _StatementError(ERR_BAD_PARAMETER)
            labels = self.filter_labels
        else:
            labels = self.grating_labels
            self._valid_grating(str(number))
        if query:
            if arg is not None:
                raise _StatementError(ERR_NOT_UNDERSTOOD)
            return labels.get(number, "")
        if arg is None:
            raise _StatementError(ERR_BAD_PARAMETER)
        if len(arg) > LABEL_MAX_CHARS:
            raise _StatementError(ERR_LABEL_TOO_LONG)
        labels[number] = arg
        return None

    # -- status --------------------------------------------------------------------------------------------
    def _format_status(self, value: int) -> str:
        return str(value) if self.status_decimal else f"{value:02X}"

    def _stb(self) -> str:
        """Status byte; reading it clears the error bit."""
        value = STB_ERROR if self.status_error else 0
        self.status_error = False
        return self._format_status(value)

    def _error(self) -> str:
        """Last error code; reading it resets the code to 0."""
        code, self.error_code = self.error_code, ERR_NONE
        return str(code)

    def _set_handshake(self, arg: str) -> None:
        if arg not in ("0", "1"):
            raise _StatementError(ERR_BAD_PARAMETER)
        self.handshake = arg == "1"


def _split(message: str) -> tuple[str, str | None]:
    """Upper-cased keyword and argument text (None when absent); at least one space separates them."""
    parts = message.strip().upper().split(None, 1)
    if not parts:
        return "", None
    return parts[0], parts[1].strip() if len(parts) > 1 else None


def _number(arg: str) -> float:
    if not _NUMBER.fullmatch(arg):
        raise _StatementError(ERR_BAD_PARAMETER)
    return float(arg)


def _integer(arg: str) -> int:
    if not (arg.isascii() and arg.isdigit()):
        raise _StatementError(ERR_BAD_PARAMETER)
    return int(arg)
