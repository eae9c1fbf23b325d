"""Maximum-power-point trackers as pure state machines (methods ref. §7.1).

A tracker is fed one reading at a time (the voltage that was applied and the power density measured there,
photocurrent-positive P = V·J in mW/cm²) and answers the next voltage to apply. It does no I/O and keeps no clock:
the dwell between readings is the caller's (for perovskites it must exceed the ionic response, seconds; §7.1).
Everything it needs to continue is in :class:`TrackerState`, which is JSON-able (``to_dict`` / ``from_dict``
round-trip exactly), so a checkpointed run continues where it was. The settings (step limits, grow/shrink, ...)
are not part of the state: they are the run's parameters and are passed again to :func:`tracker_from_state`.

Two phases:

* ``"approach"``: from ``start_V`` (e.g. Voc) towards ``target_V`` (e.g. Vmp of a J–V) by at most
  ``ramp_step_V`` per update, so the device never sees a voltage jump (capacitive current spikes);
* ``"track"``: the algorithm proper.

Algorithms (:data:`ALGORITHMS`):

* ``"perturb-observe"``: perturb and observe (hill climbing) with an adaptive step: ×``grow`` after a success
  (power rose), ×``shrink`` on a reversal (power fell), clipped to [``step_min_V``, ``step_max_V``]
  (methods ref. §7.1). With ``grow = shrink = 1`` and ``step_min_V = step_max_V`` it is the classic fixed-step
  P&O. When the tracker has converged (step ≤ 2·``step_min_V``) and a power change exceeds what the noise
  explains (``noise_sigmas`` × the typical |ΔP| at convergence, or the given ``noise_mW_cm2``), the step is
  re-inflated to ``step_max_V``: an irradiance or temperature change moved the MPP (§7.1).
* ``"gradient-momentum"``: gradient ascent with momentum on the relative power,
  ``v ← μ·v + η·g/|P|``, ``V ← V + v``, with |v| clipped to [``step_min_V``, ``step_max_V``] (the minimum keeps
  a perturbation so the gradient stays observable). The gradient g = dP/dV is the slope of an exponentially
  weighted least-squares line of P against V over the readings so far (memory factor λ = ``memory`` per
  reading, ≈ 1/(1 − λ) readings): a two-point difference ΔP/ΔV at 1 mV steps amplifies the reading noise by
  √2/ΔV, the regression averages it. Normalising by |P| makes the gain independent of the irradiance and of the
  cell's size; η = ``gain_V2`` (V²) must stay well below 1/|P''/P| at the MPP (≈ 0.04 V² for set A of methods
  ref. §1.6, P''/P ≈ −24.5 V⁻²). The defaults (η = 0.01 V², μ = 0.2, λ = 0.6) were chosen on set A: ⟨P⟩ ≥ 99.99 %
  of Pmp without noise and ≥ 99.9 % with reading noise of 0.1 % of Pmp; P&O is the more noise-robust of the two.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

ALGORITHMS: tuple[str, ...] = ("perturb-observe", "gradient-momentum")
PHASES: tuple[str, ...] = ("approach", "track")

CONVERGED_STEP_FACTOR = 2.0  # P&O counts as converged (noise dominates ΔP) while step ≤ this × step_min_V
NOISE_EWMA_WEIGHT = 0.1  # weight of a new |ΔP| in the running estimate of the noise at convergence
NOISE_MIN_SAMPLES = 10  # converged readings needed before the running estimate alone may trigger a re-inflation
RELATIVE_NOISE_FLOOR = 1e-5  # |ΔP| below this fraction of |P| is never "more than noise" (SMU reading noise, §1.7)


@dataclass
class TrackerState:
    """Everything a tracker needs to continue; JSON-able (floats, ints, str, None).

    Attributes
    ----------
    algorithm : str
        One of :data:`ALGORITHMS`.
    voltage_V : float
        The next device voltage to apply (V).
    step_V : float
        Current perturbation size (V, > 0).
    direction : int
        +1 or −1: the sign of the next move.
    phase : str
        ``"approach"`` or ``"track"``.
    target_V : float or None
        Approach target (V); None once there is none.
    last_voltage_V, last_power_mW_cm2 : float or None
        The previous reading (V, mW/cm²); None before the first one.
    velocity_V : float
        Gradient-momentum: the last move (V); 0 for perturb-observe.
    noise_mW_cm2 : float or None
        Running estimate of the typical |ΔP| at convergence (mW/cm²); None until measured.
    noise_samples : int
        Readings that went into ``noise_mW_cm2``.
    regression : tuple of 5 floats or None
        Gradient-momentum: the exponentially weighted sums (Σw, Σw·V, Σw·P, Σw·V², Σw·V·P) of the readings while
        tracking; None before the first one.
    updates : int
        Readings fed so far.
    reinflations : int
        Times the step was re-inflated because |ΔP| exceeded what noise explains.
    """

    algorithm: str
    voltage_V: float
    step_V: float
    direction: int
    phase: str
    target_V: float | None = None
    last_voltage_V: float | None = None
    last_power_mW_cm2: float | None = None
    velocity_V: float = 0.0
    noise_mW_cm2: float | None = None
    noise_samples: int = 0
    regression: tuple[float, float, float, float, float] | None = None
    updates: int = 0
    reinflations: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The state as a JSON-able dict (exact round-trip through :meth:`from_dict` and ``json``)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrackerState:
        """Rebuild a state from :meth:`to_dict`'s output; one-line ValueError on unknown/missing keys or values."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"tracker state: unknown key(s) {unknown}; allowed: {sorted(names)}")
        for key in ("algorithm", "voltage_V", "step_V", "direction", "phase"):
            if key not in d:
                raise ValueError(f"tracker state: missing key {key!r}")
        d = dict(d)
        if d.get("regression") is not None:
            reg = d["regression"]
            if len(reg) != 5:
                raise ValueError(f"tracker state: regression={reg!r}; allowed: None or 5 numbers")
            d["regression"] = tuple(float(x) for x in reg)
        state = cls(**d)
        _check_state(state)
        return state


def _check_state(state: TrackerState) -> None:
    if state.algorithm not in ALGORITHMS:
        raise ValueError(f"tracker state: algorithm={state.algorithm!r}; allowed: {list(ALGORITHMS)}")
    if state.phase not in PHASES:
        raise ValueError(f"tracker state: phase={state.phase!r}; allowed: {list(PHASES)}")
    for key in ("voltage_V", "step_V", "velocity_V", "target_V", "last_voltage_V", "last_power_mW_cm2",
                "noise_mW_cm2"):
        value = getattr(state, key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ValueError(f"tracker state: {key}={value!r}; allowed: a number" +
                             ("" if key in ("voltage_V", "step_V", "velocity_V") else " or None"))
    if state.direction not in (1, -1):
        raise ValueError(f"tracker state: direction={state.direction!r}; allowed: 1 or -1")
    if not (math.isfinite(state.voltage_V) and math.isfinite(state.step_V) and state.step_V > 0):
        raise ValueError(f"tracker state: voltage_V={state.voltage_V!r}, step_V={state.step_V!r} must be finite, "
                         "step_V > 0")
    if state.phase == "approach" and state.target_V is None:
        raise ValueError("tracker state: phase='approach' needs a target_V")


@dataclass(frozen=True)
class TrackerSettings:
    """A tracker's settings (the run's parameters; not part of its state). Voltages in V, power in mW/cm²."""

    step_initial_V: float = 0.01
    step_min_V: float = 0.001
    step_max_V: float = 0.05
    grow: float = 1.2
    shrink: float = 0.5
    ramp_step_V: float = 0.01
    noise_mW_cm2: float | None = None
    noise_sigmas: float = 6.0
    momentum: float = 0.2
    gain_V2: float = 0.01
    memory: float = 0.6

    def __post_init__(self) -> None:
        def need(ok: bool, what: str) -> None:
            if not ok:
                raise ValueError(f"MPP tracker: {what}")

        for name in ("step_initial_V", "step_min_V", "step_max_V", "ramp_step_V", "grow", "shrink",
                     "noise_sigmas", "gain_V2"):
            value = getattr(self, name)
            need(isinstance(value, (int, float)) and math.isfinite(value) and value > 0,
                 f"{name}={value!r}; allowed: a finite number > 0")
        need(self.step_min_V <= self.step_max_V,
             f"step_min_V={self.step_min_V!r} > step_max_V={self.step_max_V!r}; allowed: step_min_V <= step_max_V")
        need(self.grow >= 1.0, f"grow={self.grow!r}; allowed: >= 1")
        need(self.shrink <= 1.0, f"shrink={self.shrink!r}; allowed: 0 < shrink <= 1")
        need(0.0 <= self.momentum < 1.0, f"momentum={self.momentum!r}; allowed: 0 <= momentum < 1")
        need(0.0 < self.memory < 1.0, f"memory={self.memory!r}; allowed: 0 < memory < 1")
        need(self.noise_mW_cm2 is None or (math.isfinite(self.noise_mW_cm2) and self.noise_mW_cm2 >= 0),
             f"noise_mW_cm2={self.noise_mW_cm2!r}; allowed: None or a finite number >= 0")

    @property
    def max_move_V(self) -> float:
        """The largest voltage change one update may make (V)."""
        return max(self.step_max_V, self.ramp_step_V)

    def clip_step(self, step_V: float) -> float:
        """``step_V`` clipped to [step_min_V, step_max_V]."""
        return min(max(step_V, self.step_min_V), self.step_max_V)


def _sign(x: float) -> int:
    return 1 if x >= 0 else -1


class Tracker:
    """Base class: the approach ramp and the bookkeeping; subclasses implement :meth:`_track`."""

    algorithm = ""

    def __init__(self, state: TrackerState, settings: TrackerSettings) -> None:
        if state.algorithm != self.algorithm:
            raise ValueError(f"tracker state: algorithm={state.algorithm!r}; this tracker is {self.algorithm!r}")
        _check_state(state)
        self.state = state
        self.settings = settings

    def update(self, voltage_V: float, power_mW_cm2: float) -> float:
        """Feed the reading taken at ``voltage_V`` (V) with power density ``power_mW_cm2`` (photocurrent-positive,
        mW/cm²); return the next voltage to apply (V), at most ``max(step_max_V, ramp_step_V)`` from ``voltage_V``.

        A non-finite power (a failed reading) is ignored: the answer is ``voltage_V`` again (measure there once more).
        """
        voltage_V = float(voltage_V)
        power_mW_cm2 = float(power_mW_cm2)
        if not math.isfinite(voltage_V):
            raise ValueError(f"MPP tracker: voltage_V={voltage_V!r}; allowed: a finite number")
        s = self.state
        if not math.isfinite(power_mW_cm2):
            s.voltage_V = voltage_V
            return voltage_V
        if s.phase == "approach":
            nxt = self._approach(voltage_V)
        else:
            nxt = self._track(voltage_V, power_mW_cm2)
        limit = self.settings.max_move_V
        nxt = min(max(nxt, voltage_V - limit), voltage_V + limit)
        s.last_voltage_V, s.last_power_mW_cm2 = voltage_V, power_mW_cm2
        s.updates += 1
        s.voltage_V = nxt
        return nxt

    def approach(self, start_V: float, target_V: float | None = None) -> float:
        """Start a new approach from ``start_V`` (V) to ``target_V`` (default: the state's ``voltage_V``, the
        voltage it would have applied next) and return ``start_V``, the voltage to apply now.

        For a resumed run (from Voc to the saved voltage) or after a suspension (from the safe bias): the step,
        direction and noise estimate are kept; the previous reading is forgotten (it is from another time).
        """
        s = self.state
        start_V = float(start_V)
        target = s.voltage_V if target_V is None else float(target_V)
        if not (math.isfinite(start_V) and math.isfinite(target)):
            raise ValueError(f"MPP tracker: start_V={start_V!r}, target_V={target_V!r}; allowed: finite numbers")
        s.last_voltage_V = s.last_power_mW_cm2 = None
        s.regression = None
        s.velocity_V = 0.0
        if target == start_V:
            s.phase, s.target_V = "track", None
        else:
            s.phase, s.target_V, s.direction = "approach", target, _sign(target - start_V)
        s.voltage_V = start_V
        return start_V

    def _approach(self, voltage_V: float) -> float:
        s = self.state
        assert s.target_V is not None
        delta = s.target_V - voltage_V
        if abs(delta) <= self.settings.ramp_step_V:
            s.phase = "track"  # the reading at the target is the first one the algorithm sees
            if delta != 0.0:
                s.direction = _sign(delta)
            return s.target_V
        s.direction = _sign(delta)
        return voltage_V + s.direction * self.settings.ramp_step_V

    def _track(self, voltage_V: float, power_mW_cm2: float) -> float:  # pragma: no cover - abstract
        raise NotImplementedError


class PerturbObserveTracker(Tracker):
    """Adaptive-step perturb and observe with noise-based re-inflation (methods ref. §7.1)."""

    algorithm = "perturb-observe"

    def _track(self, voltage_V: float, power_mW_cm2: float) -> float:
        s, cfg = self.state, self.settings
        if s.last_power_mW_cm2 is None or s.last_voltage_V is None or voltage_V == s.last_voltage_V:
            return voltage_V + s.direction * s.step_V
        dp = power_mW_cm2 - s.last_power_mW_cm2
        moved = _sign(voltage_V - s.last_voltage_V)
        converged = s.step_V <= CONVERGED_STEP_FACTOR * cfg.step_min_V
        if converged and s.step_V < cfg.step_max_V and self._more_than_noise(abs(dp), power_mW_cm2):
            s.step_V = cfg.step_max_V
            s.reinflations += 1
        else:
            if converged:
                self._learn_noise(abs(dp))
            s.step_V = cfg.clip_step(s.step_V * (cfg.grow if dp > 0 else cfg.shrink))
        s.direction = moved if dp > 0 else -moved
        return voltage_V + s.direction * s.step_V

    def _more_than_noise(self, abs_dp: float, power_mW_cm2: float) -> bool:
        s, cfg = self.state, self.settings
        scales = [RELATIVE_NOISE_FLOOR * abs(power_mW_cm2)]
        if cfg.noise_mW_cm2 is not None:
            scales.append(math.sqrt(2.0) * cfg.noise_mW_cm2)  # ΔP of two readings with σ each
        elif s.noise_mW_cm2 is None or s.noise_samples < NOISE_MIN_SAMPLES:
            return False  # nothing known about the noise yet
        if s.noise_mW_cm2 is not None:
            scales.append(s.noise_mW_cm2)
        return abs_dp > cfg.noise_sigmas * max(scales)

    def _learn_noise(self, abs_dp: float) -> None:
        s = self.state
        if not math.isfinite(abs_dp):  # the difference of two absurd readings overflowed
            return
        s.noise_mW_cm2 = abs_dp if s.noise_mW_cm2 is None else (
            (1.0 - NOISE_EWMA_WEIGHT) * s.noise_mW_cm2 + NOISE_EWMA_WEIGHT * abs_dp)
        s.noise_samples += 1


class GradientMomentumTracker(Tracker):
    """Gradient ascent with momentum on the relative power (see the module docstring)."""

    algorithm = "gradient-momentum"

    def _gradient(self, voltage_V: float, power_mW_cm2: float) -> float | None:
        """Add the reading to the weighted sums; their least-squares slope dP/dV (mW/cm²/V), None if undefined."""
        lam = self.settings.memory
        w, sv, sp, svv, svp = self.state.regression or (0.0, 0.0, 0.0, 0.0, 0.0)
        v, p = voltage_V, power_mW_cm2
        w, sv, sp, svv, svp = (lam * w + 1.0, lam * sv + v, lam * sp + p, lam * svv + v * v, lam * svp + v * p)
        if not all(math.isfinite(x) for x in (sv, sp, svv, svp)):  # absurd readings: start the memory afresh
            self.state.regression = None
            return None
        self.state.regression = (w, sv, sp, svv, svp)
        spread = w * svv - sv * sv
        if w <= 1.0 or not spread > 1e-14 * w * w:
            return None
        return (w * svp - sv * sp) / spread

    def _track(self, voltage_V: float, power_mW_cm2: float) -> float:
        s, cfg = self.state, self.settings
        gradient = self._gradient(voltage_V, power_mW_cm2)
        if gradient is None:
            v = s.direction * s.step_V
        else:
            v = cfg.momentum * s.velocity_V + cfg.gain_V2 * gradient / max(abs(power_mW_cm2), 1e-300)
            if not math.isfinite(v):
                v = s.direction * cfg.step_max_V
        magnitude = cfg.clip_step(abs(v))
        s.direction = _sign(v) if v != 0.0 else s.direction
        s.velocity_V = s.direction * magnitude
        s.step_V = magnitude
        return voltage_V + s.velocity_V


_TRACKERS: dict[str, type[Tracker]] = {cls.algorithm: cls for cls in (PerturbObserveTracker, GradientMomentumTracker)}


def _settings(**kwargs: Any) -> TrackerSettings:
    return TrackerSettings(**kwargs)


def make_tracker(
    algorithm: str,
    *,
    start_V: float,
    target_V: float | None = None,
    step_initial_V: float = 0.01,
    step_min_V: float = 0.001,
    step_max_V: float = 0.05,
    grow: float = 1.2,
    shrink: float = 0.5,
    ramp_step_V: float = 0.01,
    noise_mW_cm2: float | None = None,
    **extra: float,
) -> Tracker:
    """A new tracker starting at ``start_V`` (V), approaching ``target_V`` first when given.

    Parameters
    ----------
    algorithm : str
        One of :data:`ALGORITHMS`.
    start_V : float
        The first voltage to apply (V): e.g. Voc, or the saved voltage of a resumed run.
    target_V : float, optional
        Approach target (V): ramp there by ``ramp_step_V`` per update before tracking. None: track from ``start_V``.
    step_initial_V, step_min_V, step_max_V : float
        First, smallest and largest perturbation (V). ``step_initial_V`` is clipped into [min, max].
    grow, shrink : float
        Step factors after a success (≥ 1) and on a reversal (0 < shrink ≤ 1); perturb-observe only.
    ramp_step_V : float
        Largest voltage change per update during the approach (V).
    noise_mW_cm2 : float, optional
        Standard deviation of one power reading (mW/cm²) if known; otherwise estimated while converged.
    **extra
        ``noise_sigmas`` (6), ``momentum`` (0.2), ``gain_V2`` (0.01 V²), ``memory`` (0.6): see the module
        docstring.
    """
    if algorithm not in _TRACKERS:
        raise ValueError(f"MPP tracker: algorithm={algorithm!r}; allowed: {list(ALGORITHMS)}")
    cfg = _settings(step_initial_V=step_initial_V, step_min_V=step_min_V, step_max_V=step_max_V, grow=grow,
                    shrink=shrink, ramp_step_V=ramp_step_V, noise_mW_cm2=noise_mW_cm2, **extra)
    start_V = float(start_V)
    if not math.isfinite(start_V) or (target_V is not None and not math.isfinite(float(target_V))):
        raise ValueError(f"MPP tracker: start_V={start_V!r}, target_V={target_V!r}; allowed: finite numbers")
    approach = target_V is not None and float(target_V) != start_V
    state = TrackerState(
        algorithm=algorithm,
        voltage_V=start_V,
        step_V=cfg.clip_step(step_initial_V),
        direction=_sign(float(target_V) - start_V) if approach else 1,
        phase="approach" if approach else "track",
        target_V=float(target_V) if approach else None,
    )
    return _TRACKERS[algorithm](state, cfg)


def tracker_from_state(
    state: TrackerState | dict[str, Any],
    *,
    step_initial_V: float = 0.01,
    step_min_V: float = 0.001,
    step_max_V: float = 0.05,
    grow: float = 1.2,
    shrink: float = 0.5,
    ramp_step_V: float = 0.01,
    noise_mW_cm2: float | None = None,
    **extra: float,
) -> Tracker:
    """A tracker continuing from ``state`` (a :class:`TrackerState` or its ``to_dict()``), with the run's settings
    (the same keywords as :func:`make_tracker`). The state is copied: the caller's object is not modified."""
    st = TrackerState.from_dict(state) if isinstance(state, dict) else replace(state)
    cfg = _settings(step_initial_V=step_initial_V, step_min_V=step_min_V, step_max_V=step_max_V, grow=grow,
                    shrink=shrink, ramp_step_V=ramp_step_V, noise_mW_cm2=noise_mW_cm2, **extra)
    return _TRACKERS[st.algorithm](st, cfg)


def ramp_voltages(from_V: float, to_V: float, max_step_V: float) -> list[float]:
    """Equal steps from ``from_V`` to ``to_V`` (V), none larger than ``max_step_V``; excludes ``from_V``, ends
    exactly at ``to_V``; empty when they are equal."""
    from_V, to_V, max_step_V = float(from_V), float(to_V), float(max_step_V)
    if not (math.isfinite(from_V) and math.isfinite(to_V)):
        raise ValueError(f"ramp_voltages: from_V={from_V!r}, to_V={to_V!r}; allowed: finite numbers")
    if not (math.isfinite(max_step_V) and max_step_V > 0):
        raise ValueError(f"ramp_voltages: max_step_V={max_step_V!r}; allowed: a finite number > 0")
    span = to_V - from_V
    if span == 0.0:
        return []
    n = max(1, math.ceil(abs(span) / max_step_V))
    while abs(span) / n > max_step_V:  # rounding of the quotient
        n += 1
    out = [from_V + span * k / n for k in range(1, n)]
    out.append(to_V)
    return out
