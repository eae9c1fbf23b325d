"""Emulator of the Thorlabs FW102C / FW212C motorised filter wheel (drives ``bench.optics.wheel_position``, or a
wheel on the laser path: :mod:`sim_instruments.laser_path`).

Protocol (RS-232/USB virtual COM, 115200 baud 8N1, commands end in CR, keywords lower case). The controller
echoes each command, prints the reply line (queries and errors only), then the prompt ``"> "``; after
``pos=n`` the prompt appears only once the wheel is in position::

    host ``pos?\\r``   ->  ``pos?\\r3\\r> ``
    host ``pos=5\\r``  ->  ``pos=5\\r`` ... (wheel moves) ... ``> ``
    host ``foo\\r``    ->  ``foo\\rCommand error CMD_NOT_DEFINED\\r> ``

:meth:`handle` returns the reply text only; echo, prompt and terminations come from :attr:`echo`,
:attr:`prompt` and :data:`FRAMING` (the transport adds them). The move time is slept on ``bench.clock``
inside :meth:`handle`, before the prompt is sent, and the new position is written to the optics on arrival.

Sources and confidence ([H] manual or drivers of real units, [M] secondary / driver models, [L] assumption),
all from the lab's instrument reference §5:
- Framing, command table (``*idn?``, ``pos=``/``pos?``, ``pcount=``/``pcount?`` 6|12, ``trig``, ``speed``,
  ``sensors``, ``baud`` 0|1, ``save``), identity string, error texts, lower-case keywords [H].
- Move time ~1 s per adjacent slot at high speed, ~2 s at slow speed, shorter direction [M].
- Power-on settings trig=0, speed=1, sensors=0, baud=1 [L]; the wheel starts where the bench's optics say
  (nothing is written at construction) [L]; the prompt comes right after the echo when already in position
  [L]; upper-case keywords and a bare CR answer CMD_NOT_DEFINED (no NUL bytes are emulated) [M].
- A jammed wheel (:attr:`FW102CEmulator.stuck`) echoes ``pos=n`` and never prints the prompt [L].
- Fault injection (:mod:`sim_instruments.faults`): ``stall`` jams one move (:meth:`FW102CEmulator.stall`), a
  power cycle (:meth:`FW102CEmulator.power_on`) loads the saved settings (``save``) [L].
"""

from __future__ import annotations

from typing import Any

IDENTITY = "THORLABS FW102C/FW212C Filter Wheel version 1.07"
ERR_NOT_DEFINED = "Command error CMD_NOT_DEFINED"
ERR_ARG_INVALID = "Command error CMD_ARG_INVALID"
FRAMING: dict[str, Any] = {"read_termination": "\r", "write_termination": "\r", "echo": True, "prompt": "> "}

#: move time per adjacent slot (s) at high / slow speed [M: odemis simulator model, reference §5.3]
MOVE_S_PER_SLOT_HIGH = 1.0
MOVE_S_PER_SLOT_SLOW = 2.0
SLOT_COUNTS = (6, 12)

# keyword -> allowed values; pcount is filled per instance
_BINARY = (0, 1)
_DEFAULTS = {"trig": 0, "speed": 1, "sensors": 0, "baud": 1}


class FW102CEmulator:
    """The FW102C controller and its wheel.

    bench: object with ``bench.clock`` and the wheel: ``bench.optics`` for ``sim://filter_wheel`` (the EQE
    optics' order-sorting wheel), ``bench.laser_path.wheel(name)`` for ``sim://od_wheel_1`` / ``sim://od_wheel_2``
    (the laser path's attenuators); each has ``wheel_position``, ``wheel_slots`` and ``set_wheel_position``.
    slots: the power-on ``pcount`` setting (6 or 12), which bounds ``pos=n``; default: the wheel's
    (``eqe.filter_wheel_slot_count``; an od wheel's from its ``simulation.filter_wheels`` table).
    sim_name: which wheel of the bench this controller drives.

    Fault injection: :attr:`stuck` True jams the wheel: ``pos=n`` is echoed but the wheel does not move and the
    prompt never comes (the driver's read times out).
    """

    #: the ``sim://<name>`` resources of the bench this emulator can be (the EQE wheel, the laser-path wheels)
    SIM_NAMES: tuple[str, ...] = ("filter_wheel", "od_wheel_1", "od_wheel_2")

    echo = True
    prompt = "> "

    def __init__(self, bench: Any, slots: int | None = None, sim_name: str = "filter_wheel") -> None:
        if sim_name not in self.SIM_NAMES:
            raise ValueError(f"no FW102C wheel {sim_name!r} on the bench (allowed: {', '.join(self.SIM_NAMES)})")
        wheel = bench.optics if sim_name == "filter_wheel" else bench.laser_path.wheel(sim_name)
        if slots is None:
            slots = getattr(wheel, "wheel_slots", 6)
        if slots not in SLOT_COUNTS:
            raise ValueError(f"an FW102C wheel has 6 or 12 slots, not {slots!r}")
        self.bench = bench
        #: the wheel this controller turns (the EQE optics, or a laser-path attenuator wheel)
        self.optics = wheel
        self.clock = bench.clock
        self.sim_name = sim_name
        self.settings: dict[str, int] = {"pcount": int(slots), **_DEFAULTS}
        self.saved_settings = dict(self.settings)
        #: fault injection: the wheel is jammed (``pos=n`` never answers its prompt)
        self.stuck = False
        self._withhold_prompt = False
        self._stalled = False  # a stalled move (fault injection): stuck until _stall_until_s (None: one move)
        self._stall_fresh = False
        self._stall_until_s: float | None = None

    def stall(self, message: str, until_s: float | None) -> bool:
        """Fault injection: if ``message`` is a valid ``pos=n``, this move stalls (echo, no prompt, the wheel
        stays) and the wheel stays jammed until station time ``until_s`` (None: for this move only). True when
        it stalled; False (not a move) leaves the fault for a later message."""
        key, sep, arg = message.strip().partition("=")
        target = _integer(arg) if sep and key == "pos" else None
        if target is None or not 1 <= target <= self.settings["pcount"]:
            return False
        self.stuck = self._stalled = self._stall_fresh = True
        self._stall_until_s = until_s
        return True

    def power_on(self) -> None:
        """A power cycle: the saved settings are loaded, a jam from a stalled move is gone (the wheel stays
        where it is)."""
        self.settings = dict(self.saved_settings)
        self._end_stall()
        self._withhold_prompt = False

    def _end_stall(self) -> None:
        if self._stalled:
            self.stuck = self._stalled = self._stall_fresh = False
            self._stall_until_s = None

    def sends_prompt(self) -> bool:
        """Whether the last command's prompt is sent (not after ``pos=n`` on a stuck wheel); the transport asks
        after each :meth:`handle` (:class:`sim_instruments.adapter.InstrumentLink`)."""
        return not self._withhold_prompt

    @property
    def position(self) -> int:
        return int(self.optics.wheel_position)

    def move_time_s(self, target: int) -> float:
        """Time to turn from the present slot to ``target`` the shorter way round (s)."""
        count = self.settings["pcount"]
        steps = abs(target - self.position) % count
        steps = min(steps, count - steps)
        per_slot = MOVE_S_PER_SLOT_HIGH if self.settings["speed"] else MOVE_S_PER_SLOT_SLOW
        return steps * per_slot

    # -- protocol ------------------------------------------------------------------------------------------
    def handle(self, message: str) -> str | None:
        """One command (terminator stripped) in; reply line out, or None for commands that print nothing."""
        cmd = message.strip()
        self._withhold_prompt = False
        if self._stalled:
            if self._stall_fresh:
                self._stall_fresh = False  # this is the move that stalls
            elif self._stall_until_s is None or self.clock.now() >= self._stall_until_s:
                self._end_stall()
        if cmd == "*idn?":
            return IDENTITY
        if cmd == "pos?":
            return str(self.position)
        if cmd == "save":
            self.saved_settings = dict(self.settings)
            return None
        if cmd.endswith("?") and cmd[:-1] in self.settings:
            return str(self.settings[cmd[:-1]])
        key, sep, arg = cmd.partition("=")
        if not sep:
            return ERR_NOT_DEFINED
        if key == "pos":
            return self._move(arg)
        if key in self.settings:
            return self._set(key, arg)
        return ERR_NOT_DEFINED

    def _move(self, arg: str) -> str | None:
        target = _integer(arg)
        if target is None or not 1 <= target <= self.settings["pcount"]:
            return ERR_ARG_INVALID
        if self.stuck:
            self._withhold_prompt = True  # the motor stalls: the controller never reports "in position"
            return None
        move_s = self.move_time_s(target)
        if move_s > 0:
            self.clock.sleep(move_s)  # the prompt is sent only when the wheel is in position
        if target != self.position:
            self.optics.set_wheel_position(target)
        return None

    def _set(self, key: str, arg: str) -> str | None:
        value = _integer(arg)
        allowed = SLOT_COUNTS if key == "pcount" else _BINARY
        if value is None or value not in allowed:
            return ERR_ARG_INVALID
        self.settings[key] = value
        return None


def _integer(arg: str) -> int | None:
    return int(arg) if arg.isascii() and arg.isdigit() and len(arg) <= 3 else None
