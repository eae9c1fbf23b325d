"""The summary of a substrate: figures of merit per pixel, dead and shunted pixels flagged, statistics over the rest.

Input: one outcome per pixel as the substrate runner records it, a mapping ``pixel name → {"status", "results",
"reason", "x_mm", "y_mm", "area_cm2"}`` where ``status`` is ``"completed"``, ``"aborted"``, ``"failed"``,
``"skipped"`` (the contact check failed: ``reason`` says why; no run) or ``"not measured"`` (the substrate stopped
first), and ``results`` is the pixel run's results dict as its procedure's ``analyse`` gives it.

Which figures (:data:`JV_FIGURES`, :data:`RUN_FIGURES`), per *group*:

* a light J–V (``procedures.jv``): ``results["reverse"]``, ``results["forward"]`` and/or ``results["qss"]`` each
  hold Voc, Jsc, FF and PCE of one scan direction (``labctl.analysis.jv.JVFigures``); each direction is a group;
* a run without J–V figures (an MPP track or a hold, ``procedures.mpp`` / ``procedures.hold``): the scalar results
  listed in :data:`RUN_FIGURES` that are present (stabilised and settled PCE, retained %, held Voc/Jsc/power) form
  the group :data:`RUN_GROUP`.

Flags per pixel (thresholds are the module constants below, each documented, all in ``summary["thresholds"]``):

* ``dead``: no photocurrent. Every group that has a figure shows one of: the analysis' ``no_photocurrent`` flag,
  Jsc < :data:`DEAD_JSC_MA_CM2`, Voc < :data:`DEAD_VOC_V`, PCE < :data:`DEAD_PCE_PCT` (a dead short shows Jsc but
  no Voc; a delaminated or unlit pixel shows no Jsc). A pixel with one working scan is not dead.
* ``shunted``: the shunt resistance normalised by the characteristic resistance R_ch = Voc/Jsc is below
  :data:`SHUNT_NORMALISED_RSH` in every J–V direction that gives it. The shunt resistance is the measured slope
  −dV/dJ at 0 V (``r_sc_ohm_cm2``, model-free), else the single-diode fit's ``rsh_ohm_cm2``.
* ``skipped``: the status is ``"skipped"``; the pixel's ``reason`` is kept.

Statistics (per group and figure): over the **included** pixels — status ``"completed"`` and not dead (shunted
pixels are included: they are measured devices, flagged) — and only their finite values of that figure. ``best`` is
the largest value and ``best_pixel`` its pixel (the first in pixel order on a tie) — for the figures that are
higher-is-better; for those in :data:`NO_BEST` (an ideality factor says which recombination dominates, not how good
the cell is) both are None; ``median``, ``mean``, ``min``, ``max``; ``std`` the sample standard deviation (ddof =
1, None for fewer than 2 values); ``q1``/``q3`` the quartiles by linear interpolation between order statistics
(Hyndman & Fan type 7, numpy's default) and ``iqr`` = q3 − q1. A figure no included pixel has: ``n`` 0 and every
statistic None.

Everything returned is JSON-able (floats, str, bool, None, lists and dicts), for the substrate record.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

#: the J–V result groups, in the order they are shown (one per scan direction, or the quasi-steady-state scan)
JV_GROUPS = ("reverse", "forward", "qss")

#: the group of the scalar results of a run without J–V figures (MPP tracking, a hold)
RUN_GROUP = "run"

#: the J–V figures summarised per direction: result key → (label, unit); FF is a fraction
JV_FIGURES: dict[str, tuple[str, str]] = {
    "pce_pct": ("PCE", "%"),
    "voc_V": ("Voc", "V"),
    "jsc_mA_cm2": ("Jsc", "mA/cm²"),
    "ff": ("FF", ""),
}

#: the scalar results of a stability run (``procedures.mpp``, ``procedures.hold``) summarised when present:
#: result key → (label, unit); every one is higher-is-better
RUN_FIGURES: dict[str, tuple[str, str]] = {
    "stabilised_pce_pct": ("Stabilised PCE", "%"),
    "settled_pce_pct": ("Settled PCE", "%"),
    "pce_final_pct": ("Final PCE", "%"),
    "retained_pct": ("Retained", "%"),
    "voc_mean_V": ("Mean Voc", "V"),
    "jsc_mean_mA_cm2": ("Mean Jsc", "mA/cm²"),
    "power_mean_mW_cm2": ("Mean power", "mW/cm²"),
    "n_global": ("Ideality n (Voc vs ln intensity)", ""),
}
#: figures with no "best" value (neither larger nor smaller is better)
NO_BEST = frozenset({"n_global"})

#: the PCE-like figures in the order the substrate's primary figure (the map's colour) is looked for
PRIMARY_ORDER = (("reverse", "pce_pct"), ("qss", "pce_pct"), ("forward", "pce_pct"),
                 (RUN_GROUP, "stabilised_pce_pct"), (RUN_GROUP, "settled_pce_pct"), (RUN_GROUP, "pce_final_pct"))

#: Jsc (mA/cm²) below which a pixel has no photocurrent. 0.1 mA/cm² is ~0.5 % of the Jsc of the cells these labs
#: make (15–35 mA/cm² at 1 sun) and ~1000× the current noise of the SMU on a 0.05 cm² pixel (nA), so a lit,
#: working pixel is never below it and an unlit, delaminated or disconnected one is never above it.
DEAD_JSC_MA_CM2 = 0.1

#: Voc (V) below which a pixel is dead: a dead short (a pinhole through the absorber) still passes photocurrent
#: but holds almost no voltage. 0.1 V is far below the Voc of any working cell here (a 1.1 eV PbS cell: ~0.5 V).
DEAD_VOC_V = 0.1

#: PCE (%) below which a pixel is dead: 0.1 % is ~1/100 of a poor working cell; a tracked (MPP) pixel that
#: delivers less is not a solar cell worth a statistic.
DEAD_PCE_PCT = 0.1

#: normalised shunt resistance r_sh = R_sh / R_ch (R_ch = Voc/Jsc) below which a pixel is shunted. With Green's
#: empirical expression FF ≈ FF0·[1 − (v_oc + 0.7)/v_oc · FF0/r_sh] (M. A. Green, Solar Cells, 1982, §5.4; v_oc =
#: Voc/(n·kT/q) ≈ 30–45) a shunt of r_sh = 10 costs ≈ 8–9 % of the fill factor: below it the shunt, not the diode,
#: sets the FF (methods set A: R_sh 2000 Ω·cm², R_ch 64 Ω·cm² → r_sh 31; a 100 Ω·cm² shunt → 1.6).
SHUNT_NORMALISED_RSH = 10.0

#: the statuses; only ``completed`` pixels enter the statistics
STATUSES = ("completed", "aborted", "failed", "skipped", "not measured")

#: the statistics per figure, in order
STAT_KEYS = ("n", "best", "best_pixel", "median", "mean", "std", "min", "max", "q1", "q3", "iqr")


def _number(value: Any) -> float | None:
    """A finite float, or None (a figure not computed: None, NaN, ±inf, or not a number)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _groups(results: Mapping[str, Any]) -> dict[str, dict[str, float | None]]:
    """The figures of one pixel's results, per group (only groups with at least one figure)."""
    out: dict[str, dict[str, float | None]] = {}
    for group in JV_GROUPS:
        direction = results.get(group)
        if isinstance(direction, Mapping):
            out[group] = {key: _number(direction.get(key)) for key in JV_FIGURES}
    if not out:
        run = {key: _number(results.get(key)) for key in RUN_FIGURES if key in results}
        if any(v is not None for v in run.values()):
            out[RUN_GROUP] = run
    return out


def _dead_reasons(figures: Mapping[str, float | None], flags: list[str]) -> list[str]:
    """Why one group's figures say "no working cell" (empty: it works, as far as its figures tell)."""
    reasons = []
    if "no_photocurrent" in flags:
        reasons.append("no photocurrent at 0 V")
    if "no_power_quadrant" in flags:
        reasons.append("no power quadrant (no point with V > 0 and J > 0)")
    jsc = figures.get("jsc_mA_cm2", figures.get("jsc_mean_mA_cm2"))
    if jsc is not None and jsc < DEAD_JSC_MA_CM2:
        reasons.append(f"Jsc {jsc:.3g} mA/cm² < {DEAD_JSC_MA_CM2:g}")
    voc = figures.get("voc_V", figures.get("voc_mean_V"))
    if voc is not None and voc < DEAD_VOC_V:
        reasons.append(f"Voc {voc:.3g} V < {DEAD_VOC_V:g}")
    pce = next((figures[k] for k in ("pce_pct", "stabilised_pce_pct", "settled_pce_pct", "pce_final_pct")
                if figures.get(k) is not None), None)
    if pce is not None and pce < DEAD_PCE_PCT:
        reasons.append(f"PCE {pce:.3g} % < {DEAD_PCE_PCT:g}")
    return reasons


def normalised_shunt(direction: Mapping[str, Any]) -> float | None:
    """r_sh = R_sh / (Voc/Jsc) of one J–V direction's results (dimensionless), None when a figure is missing.

    R_sh is ``r_sc_ohm_cm2`` (the slope −dV/dJ at 0 V, Ω·cm²) or, without it, ``rsh_ohm_cm2`` (single-diode fit);
    R_ch = Voc (V) / Jsc (A/cm²) in Ω·cm².
    """
    rsh = _number(direction.get("r_sc_ohm_cm2"))
    if rsh is None:
        rsh = _number(direction.get("rsh_ohm_cm2"))
    voc, jsc = _number(direction.get("voc_V")), _number(direction.get("jsc_mA_cm2"))
    if rsh is None or voc is None or jsc is None or voc <= 0 or jsc <= 0:
        return None
    return rsh / (voc / (jsc * 1e-3))


def _pixel(name: str, outcome: Mapping[str, Any]) -> dict[str, Any]:
    status = str(outcome.get("status") or "not measured")
    results = outcome.get("results") or {}
    if not isinstance(results, Mapping):
        results = {}
    groups = _groups(results) if status != "skipped" else {}
    notes: list[str] = []
    dead_by_group = {}
    for group, figures in groups.items():
        flags = list(results.get(group, {}).get("flags") or []) if group != RUN_GROUP else []
        if any(v is not None for v in figures.values()) or {"no_photocurrent", "no_power_quadrant"} & set(flags):
            dead_by_group[group] = _dead_reasons(figures, flags)
    dead = bool(dead_by_group) and all(dead_by_group.values())
    if dead:
        first = next(iter(dead_by_group))
        notes.append(f"dead: {'; '.join(dead_by_group[first])} ({first})")
    shunts = {g: normalised_shunt(results[g]) for g in groups if g in JV_GROUPS}
    known = {g: r for g, r in shunts.items() if r is not None}
    shunted = bool(known) and all(r < SHUNT_NORMALISED_RSH for r in known.values())
    if shunted:
        g, r = min(known.items(), key=lambda item: item[1])
        notes.append(f"shunted: R_sh/R_ch {r:.3g} < {SHUNT_NORMALISED_RSH:g} ({g})")
    has_figures = any(v is not None for figures in groups.values() for v in figures.values())
    if status == "completed" and not has_figures:
        notes.append("no figures of merit in the results")
    reason = outcome.get("reason")
    return {
        "status": status,
        "reason": None if reason is None else str(reason),
        "x_mm": _number(outcome.get("x_mm")),
        "y_mm": _number(outcome.get("y_mm")),
        "area_cm2": _number(outcome.get("area_cm2")),
        "figures": groups,
        "normalised_rsh": shunts,
        "dead": dead,
        "shunted": shunted,
        "skipped": status == "skipped",
        "included": status == "completed" and not dead and has_figures,
        "notes": notes,
    }


def statistics(values: Mapping[str, float], has_best: bool = True) -> dict[str, Any]:
    """The statistics of one figure over pixels (``pixel name → value``, finite values only; see module doc);
    ``has_best`` False: ``best`` and ``best_pixel`` stay None."""
    out: dict[str, Any] = dict.fromkeys(STAT_KEYS)
    out["n"] = len(values)
    if not values:
        return out
    names = list(values)
    x = np.array([values[n] for n in names], dtype=float)
    best = int(np.argmax(x))  # the first maximum: pixel order breaks ties
    q1, median, q3 = (float(q) for q in np.percentile(x, [25.0, 50.0, 75.0]))
    if has_best:
        out.update(best=float(x[best]), best_pixel=names[best])
    out.update(median=median, mean=float(np.mean(x)),
               std=float(np.std(x, ddof=1)) if x.size >= 2 else None, min=float(np.min(x)),
               max=float(np.max(x)), q1=q1, q3=q3, iqr=q3 - q1)
    return out


def summarise_substrate(pixels: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The substrate summary of the pixel outcomes ``pixels`` (name → outcome, see the module docstring).

    Returns
    -------
    dict
        ``pixels``: name → ``{"status", "reason", "x_mm", "y_mm", "area_cm2", "figures": {group: {key: value}},
        "normalised_rsh": {direction: r_sh}, "dead", "shunted", "skipped", "included", "notes": [str]}`` in input
        order; ``groups``: the groups present, in display order; ``figures``: group → its figure keys;
        ``labels``: figure key → (label, unit); ``primary``: ``[group, key]`` of the figure that ranks pixels
        (the reverse-scan PCE when there is one; see :data:`PRIMARY_ORDER`) or None; ``statistics``: group →
        key → :data:`STAT_KEYS`; ``counts``: pixels per status and ``dead``, ``shunted``, ``included``;
        ``thresholds``: the flag thresholds used.
    """
    out_pixels = {str(name): _pixel(str(name), outcome) for name, outcome in pixels.items()}
    present = {g for p in out_pixels.values() for g in p["figures"]}
    groups = [g for g in (*JV_GROUPS, RUN_GROUP) if g in present]
    figures = {}
    for g in groups:
        if g == RUN_GROUP:
            keys = {k for p in out_pixels.values() for k, v in p["figures"].get(g, {}).items() if v is not None}
            figures[g] = [k for k in RUN_FIGURES if k in keys]
        else:
            figures[g] = list(JV_FIGURES)
    stats = {
        g: {k: statistics({name: p["figures"][g][k] for name, p in out_pixels.items()
                           if p["included"] and p["figures"].get(g, {}).get(k) is not None}, k not in NO_BEST)
            for k in figures[g]}
        for g in groups
    }
    primary = next(([g, k] for g, k in PRIMARY_ORDER if g in figures and k in figures[g]), None)
    if primary is None and groups and figures[groups[0]]:
        primary = [groups[0], figures[groups[0]][0]]
    counts: dict[str, int] = {"pixels": len(out_pixels)}
    for status in STATUSES:
        counts[status] = sum(p["status"] == status for p in out_pixels.values())
    for flag in ("dead", "shunted", "included"):
        counts[flag] = sum(bool(p[flag]) for p in out_pixels.values())
    return {
        "pixels": out_pixels,
        "groups": groups,
        "figures": figures,
        "labels": {k: list(v) for k, v in (JV_FIGURES | RUN_FIGURES).items()},
        "primary": primary,
        "statistics": stats,
        "counts": counts,
        "thresholds": {"dead_jsc_mA_cm2": DEAD_JSC_MA_CM2, "dead_voc_V": DEAD_VOC_V,
                       "dead_pce_pct": DEAD_PCE_PCT, "shunt_normalised_rsh": SHUNT_NORMALISED_RSH},
    }
