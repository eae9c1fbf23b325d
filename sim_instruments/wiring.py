"""The wiring of the simulated substrate fixture: switch channels → devices → SMU terminals.

A multi-pixel fixture connects each pixel (a :class:`sim_instruments.bench.SolarCell` of ``Bench.devices``)
through one relay (a switch channel) to the HI/LO pair of one source meter (a *terminal*, named by the SMU's
``sim://`` name: ``smu``, ``smu2``, ``smu3``, ``smu4``). ``simulation.wiring`` lists the wires (:class:`Wire`);
the switch emulators report the relays they have closed (``Bench.relays_changed``), and a terminal then sees

- no device: an open circuit (0 A at any forced voltage; a sourced current drives the voltage to its limit);
- one device: that device, with its ``contact_resistance_ohm`` in series (added to its Rs: R·area in Ω·cm²);
- two or more: the devices in parallel: their currents add at the forced voltage, and the voltage of a sourced
  current is solved numerically on the sum (so a broken "one pixel per SMU" guarantee shows in the data).

:class:`WiredTerminal` is the object an SMU emulator drives (the terminal interface of
:class:`sim_instruments.bench.Bench`: ``set_cell_bias``, ``cell_current_A``, ``voltage_at_current_V``,
``open_circuit_voltage_V``, ``source_current``, ``steady_light``, ``clock``, ``rng``, ``lock``,
``line_frequency_Hz``, ``instrument_options``). Voltages here are HI − LO (the SMU's frame); a device's own frame
is the SMU frame times its stack's sign (+1: n-i-p, anode on HI; −1: p-i-n).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import brentq

from sim_instruments.capacitance import CurrentSource, relax_voltage_V

#: the SMU terminals of the fixture, by the ``sim://`` name of the source meter on them
TERMINALS: tuple[str, ...] = ("smu", "smu2", "smu3", "smu4")
#: the search for the voltage of a current on parallel devices gives up beyond this (V): no voltage gives it
SOLVE_SPAN_V = 1e4


@dataclass(frozen=True)
class Wire:
    """One wire of the fixture: channel ``channel`` of switch ``switch`` (its ``sim://`` name) connects device
    ``device`` (number from 1) to terminal ``terminal`` (an SMU's ``sim://`` name, one of :data:`TERMINALS`)."""

    switch: str
    channel: int
    device: int
    terminal: str


def wiring_problem(wires: Sequence[Wire], device_count: int, section: str = "simulation") -> str | None:
    """One line saying what is wrong with ``wires`` on a bench of ``device_count`` devices, or None; the keys
    are named under ``section`` (the ``simulation:`` block's path).

    Each (switch, channel) carries one wire; a device is on one terminal (it may be on several channels of it);
    device numbers are 1..device_count; terminals are :data:`TERMINALS`."""
    seen: dict[tuple[str, int], int] = {}
    terminal_of: dict[int, str] = {}
    for k, w in enumerate(wires):
        where = f"{section}.wiring.{k}"
        if w.terminal not in TERMINALS:
            return f"{where}.terminal = {w.terminal!r}: no such SMU terminal (allowed: {', '.join(TERMINALS)})"
        if not 1 <= w.device <= device_count:
            return (f"{where}.device = {w.device}: the bench has {device_count} "
                    f"device{'s' if device_count > 1 else ''} (allowed: 1-{device_count})")
        key = (w.switch, w.channel)
        if key in seen:
            return (f"{where}: channel {w.channel} of switch '{w.switch}' is already wired ({section}.wiring."
                    f"{seen[key]}) (allowed: one wire per switch channel)")
        seen[key] = k
        other = terminal_of.setdefault(w.device, w.terminal)
        if other != w.terminal:
            return (f"{where}.terminal = '{w.terminal}': device {w.device} is already wired to terminal "
                    f"'{other}' (allowed: each device on one terminal)")
    return None


def connections(wires: Iterable[Wire], closed: Mapping[str, Iterable[int]]) -> dict[str, tuple[int, ...]]:
    """Terminal name → the device numbers (from 1, ascending) whose wire's channel is in ``closed`` (switch
    ``sim://`` name → its closed channels); every terminal of :data:`TERMINALS` is a key."""
    closed_sets = {name: frozenset(ch) for name, ch in closed.items()}
    found: dict[str, set[int]] = {name: set() for name in TERMINALS}
    for w in wires:
        if w.channel in closed_sets.get(w.switch, frozenset()):
            found[w.terminal].add(w.device)
    return {name: tuple(sorted(devices)) for name, devices in found.items()}


def _sign(cell: Any) -> float:
    """+1 for a device with its anode on HI (n-i-p in the fixture), −1 for p-i-n."""
    return -1.0 if cell.params.stack == "p-i-n" else 1.0


def _increasing_root(f: Callable[[float], float], start_V: float = 0.0) -> float | None:
    """Root (V) of the increasing ``f`` (a terminal's current into HI minus a target, A), bracketed by doubling
    steps from ``start_V``; None if there is none within ±:data:`SOLVE_SPAN_V`."""
    f0 = f(start_V)
    if f0 == 0.0:
        return start_V
    direction = -1.0 if f0 > 0 else 1.0
    edge, step = start_V, 0.1
    while step <= SOLVE_SPAN_V:
        nxt = start_V + direction * step
        if (f(nxt) > 0) != (f0 > 0):
            lo, hi = sorted((edge, nxt))
            return float(brentq(f, lo, hi, xtol=1e-12, rtol=4 * 2.220446049250313e-16))
        edge, step = nxt, step * 2.0
    return None


class WiredTerminal:
    """The HI/LO pair of SMU ``name`` on ``bench``: what an SMU emulator forces and measures (module docstring).

    Its state: the connected devices (set by the bench on a relay change, :meth:`connect`), the voltage the
    SMU forces (``None``: output off, open circuit) or, on devices with capacitance under a sourced current, the
    terminal voltage as a state (:class:`sim_instruments.capacitance.CurrentSource`, as the bench's own terminal
    does), and the light held for one reading (:meth:`steady_light`)."""

    def __init__(self, bench: Any, name: str) -> None:
        self.bench = bench
        self.name = name
        self.clock = bench.clock
        seed = getattr(bench, "seed", None)
        #: this terminal's own noise stream (its SMU's reading noise, the lamp's flicker in its readings), from
        #: the bench's seed and the terminal's name: SMUs reading concurrently draw what each would draw alone
        self.rng = np.random.default_rng(None if seed is None else [seed, TERMINALS.index(name) + 1])
        self.lock = bench.lock
        self.line_frequency_Hz = bench.line_frequency_Hz
        self.instrument_options = getattr(bench, "instrument_options", {})
        self._numbers: tuple[int, ...] = ()
        self._bias_V: float | None = None  # HI − LO (V), the forced voltage or the state
        self._source: CurrentSource | None = None
        self._source_suns: tuple[float, ...] = ()
        self._held: tuple[float, ...] | None = None

    # -- what is connected ----------------------------------------------------------------------------------
    @property
    def connected(self) -> tuple[int, ...]:
        """The numbers (from 1) of the devices the relays connect to this terminal now."""
        return self._numbers

    @property
    def devices(self) -> tuple[Any, ...]:
        return tuple(self.bench.devices[n - 1] for n in self._numbers)

    def connect(self, numbers: Sequence[int]) -> None:
        """The relays now connect devices ``numbers`` (called by the bench, under its lock, after advancing).

        A forced voltage stays forced onto the new load; a terminal voltage that was a state restarts from the
        new load's static Voc (it has floated there until now), as :meth:`Bench.select_device` does."""
        numbers = tuple(sorted(numbers))
        if numbers == self._numbers:
            return
        self._numbers = numbers
        self._held = None
        if self._source is None:
            return
        if self._capacitance_F() > 0:
            self._bias_V = self._static_voc_V()
            self._source_suns = self._suns_now()
            return
        floating, self._source = self._source.floating, None
        self._bias_V = None if floating else self._static_voc_V()

    # -- the light ------------------------------------------------------------------------------------------
    def _draw(self) -> tuple[float, ...]:
        """The light on each connected device now (suns): one draw of the lamp's flicker for all of them (from
        this terminal's stream), the laser's noise drawn per device (from the laser path's)."""
        devices = self.devices
        if not devices:
            return ()
        b = self.bench
        lamp = b.light.effective_irradiance_W_m2(self.rng, b.time_s()) / 1000.0
        return tuple(lamp + d.laser_suns(b.laser, b.laser_path.device_power_W(d.params.area_cm2))
                     for d in devices)

    def _suns_now(self) -> tuple[float, ...]:
        held = self._held
        return held if held is not None and len(held) == len(self._numbers) else self._draw()

    def _static_suns(self) -> tuple[float, ...]:
        return tuple(self.bench.suns_on(d) for d in self.devices)

    @contextmanager
    def steady_light(self) -> Iterator[None]:
        """One draw of the light for everything inside (one reading, a search for the voltage of a current)."""
        with self.lock:
            held = self._held
            if held is None:
                self._held = self._draw()
            try:
                yield
            finally:
                self._held = held

    # -- the load -------------------------------------------------------------------------------------------
    def _load_current_A(self, v_V: float, suns: Sequence[float], static: bool = False) -> float:
        """Current into HI (A) at HI − LO = ``v_V`` of the connected devices in parallel, each with its contact
        resistance in series (``static``: ions in equilibrium)."""
        total = 0.0
        for d, s in zip(self.devices, suns, strict=True):
            sign = _sign(d)
            j = (d.static_current_density_A_cm2(sign * v_V, s) if static
                 else d.current_density_A_cm2(sign * v_V, s))
            total -= sign * j * d.params.area_cm2
        return total

    def _solve_V(self, current_A: float, suns: Sequence[float], static: bool) -> float | None:
        """HI − LO (V) at which the connected devices carry ``current_A`` into HI; None if none does (or nothing
        is connected). One device: the closed form of its model; several: Brent's method on the sum."""
        devices = self.devices
        if not devices:
            return None
        if len(devices) == 1 and static:
            d, sign = devices[0], _sign(devices[0])
            v = sign * d.voltage_at_density_V(-sign * current_A / d.params.area_cm2, suns[0])
            return v if math.isfinite(v) else None
        return _increasing_root(lambda v: self._load_current_A(v, suns, static) - current_A)

    def _static_voc_V(self) -> float:
        """HI − LO (V) with nothing forcing the connected devices, ions in equilibrium, no flicker: 0 with
        nothing connected; one device: its Voc (:meth:`SolarCell.open_circuit_voltage_V`); several: where their
        currents cancel."""
        devices = self.devices
        if not devices:
            return 0.0
        if len(devices) == 1:
            d = devices[0]
            return _sign(d) * d.open_circuit_voltage_V(self.bench.suns_on(d))
        v = self._solve_V(0.0, self._static_suns(), static=True)
        return 0.0 if v is None else v

    def _capacitance_F(self) -> float:
        """The connected devices' capacitance in parallel (F)."""
        return sum(d.params.capacitance_nF_cm2 * 1e-9 * d.params.area_cm2 for d in self.devices)

    def _floating(self) -> bool:
        return self._source is not None and self._source.floating

    # -- the terminal interface -----------------------------------------------------------------------------
    def set_cell_bias(self, voltage_V: float | None) -> None:
        """The voltage HI − LO the SMU forces from now on (V); None = output off (open circuit; on devices with
        capacitance the terminal floats, a state relaxing towards the load's Voc)."""
        with self.lock:
            self.bench._advance()
            if voltage_V is None and self._capacitance_F() > 0:
                self._start_source(CurrentSource(floating=True))
                return
            self._source = None
            self._bias_V = None if voltage_V is None else float(voltage_V)

    def cell_current_A(self) -> float:
        """Current into HI at the forced voltage (A), no instrument noise; 0 with nothing connected or the
        output off."""
        with self.lock:
            self.bench._advance()
            if self._bias_V is None or self._floating() or not self._numbers:
                return 0.0
            return self._load_current_A(self._bias_V, self._suns_now())

    def voltage_at_current_V(self, current_A: float) -> float | None:
        """HI − LO (V) at which the load carries ``current_A`` into HI, with the light as it is now; None when
        no voltage gives it (nothing connected and a current other than 0: the source goes to its limit) or
        under ion-lag hysteresis (the caller searches). 0 V for 0 A on nothing. Does not bias the terminal."""
        with self.lock:
            if any(d.params.hysteresis.enabled for d in self.devices):
                return None
            self.bench._advance()
            if not self._numbers:
                return 0.0 if current_A == 0 else None
            return self._solve_V(float(current_A), self._suns_now(), static=True)

    def open_circuit_voltage_V(self) -> float:
        """HI − LO (V) with nothing forcing the load: the floating state, else the static Voc (0: nothing)."""
        with self.lock:
            self.bench._advance()
            if self._floating():
                return self._bias_V
            return self._static_voc_V()

    def source_current(self, current_A: float, parallel_ohm: float = math.inf,
                       limit_V: float = math.inf) -> tuple[float, bool] | None:
        """As :meth:`sim_instruments.bench.Bench.source_current` on the connected load: (HI − LO now (V),
        whether the limit holds it) with capacitance, None without (the caller solves the static balance)."""
        with self.lock:
            if not self._capacitance_F() > 0:
                return None
            self.bench._advance()
            self._start_source(CurrentSource(float(current_A), float(parallel_ohm), float(limit_V)))
            v = self._bias_V
            return v, abs(v) >= limit_V

    def _start_source(self, source: CurrentSource) -> None:
        if self._source is None and self._bias_V is None:
            self._bias_V = self._static_voc_V()
        self._source_suns = self._suns_now()
        self._source = source

    def charge(self, dt_s: float) -> None:
        """The terminal voltage state after ``dt_s`` (s) under the source and the interval's light (called by
        the bench as time passes). In the frame of the first device's stack (where the load's net current is
        decreasing and concave, as :func:`relax_voltage_V` wants)."""
        source = self._source
        capacitance_F = self._capacitance_F()
        if source is None or not capacitance_F > 0:
            self._source = None
            return
        sign = _sign(self.devices[0])
        suns = self._source_suns

        def net_current_A(u_V: float) -> float:  # into the capacitance, in the first device's frame
            return sign * (source.current_A - self._load_current_A(sign * u_V, suns)) - u_V / source.parallel_ohm

        u = relax_voltage_V(net_current_A, sign * self._bias_V, dt_s, capacitance_F, -source.limit_V,
                            source.limit_V)
        self._bias_V = sign * u
        self._source_suns = self._suns_now()

    def light_changed(self) -> None:
        """The light changed (after the bench advanced to now): a state goes on under the new light."""
        if self._source is not None:
            self._source_suns = self._suns_now()

    def device_voltage_V(self, cell: Any) -> float | None:
        """The voltage (V, the device's own frame, behind its contact) the connected device ``cell`` is held at
        for its slow state (ions); None: it floats at its own Voc (the output off and no other device with it).
        Devices in parallel with the output off float together at their common Voc."""
        if self._bias_V is None:
            if len(self._numbers) < 2:
                return None
            v = self._static_voc_V()
        else:
            v = self._bias_V
        sign = _sign(cell)
        u = sign * v
        return cell.behind_contact_V(u, self.bench.suns_on(cell))
