"""The reporting checklist of a report (``labctl report``): a journal's solar-cell reporting summary and the ISOS
stability fields, filled from the runs' metadata, with what is missing.

**The journal items** (:func:`journal_checklist`) follow the topics of the solar-cell reporting checklist that
Nature Portfolio journals ask authors to fill in (introduced in 2015: https://www.nature.com/articles/nphoton.2015.233,
"detailing the size and stability of cells, the number of samples tested, the use of a mask and the illumination
conditions during characterization, and whether an accredited third party has certified the cell efficiency"; the
form is now published with the paper as the "Solar Cells Reporting Summary"), as our anchors reference (§4) lists
them: device area and how it was determined, mask/aperture; J–V scan direction, rate and dwell, preconditioning,
test environment; stabilised output and its duration; hysteresis; EQE with its integrated Jsc against the J–V Jsc;
light source, reference cell and its calibration, spectral mismatch; certification; statistics over devices;
stability conditions. The wording of each item is ours, not the form's.

**The ISOS items** (:func:`isos_items`) are :func:`labctl.isos.checklist` of each stability run (Khenkin et al.,
Nat. Energy 5, 35–49 (2020), Table 3).

An item's ``value`` is None when no run in the report says it (it is then *missing*); ``sources`` names the runs
the value comes from; ``note`` says why a value is missing or what to do. Nothing here touches an instrument.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from labctl import isos

#: where the journal items come from (shown in the report)
JOURNAL_SOURCE = ("Solar-cell reporting summary of the Nature Portfolio journals (checklist introduced 2015, "
                  "https://www.nature.com/articles/nphoton.2015.233); items as listed in anchors ref. §4")
#: where the ISOS items come from
ISOS_SOURCE = "ISOS consensus, Khenkin et al., Nat. Energy 5, 35-49 (2020), Table 3"

#: the procedures whose runs are stability runs (ISOS fields, stabilised output)
STABILITY_PROCEDURES = ("mpp", "hold")


@dataclass(frozen=True)
class Item:
    """One checklist item: its ``section`` (journal / ISOS of a run), what is asked, the value the runs give (None:
    missing), the runs it comes from, and a note."""

    section: str
    item: str
    value: str | None
    sources: tuple[str, ...] = ()
    note: str = ""

    @property
    def missing(self) -> bool:
        return self.value is None


@dataclass
class _Run:
    """What the checklist reads of one run (a :class:`labctl.storage.RunData` or a substrate's pixel run)."""

    run_id: str
    procedure: str
    sample: str
    pixel: str | None
    parameters: Mapping[str, Any]
    results: Mapping[str, Any]
    station: Mapping[str, Any] = field(default_factory=dict)
    idn: Mapping[str, str] = field(default_factory=dict)


def _view(run: Any) -> _Run:
    info = run.info
    return _Run(str(info.get("run_id", run.path.stem)), str(info.get("procedure", "")), str(info.get("sample", "")),
                info.get("pixel"), run.parameters, run.results, run.station or {}, run.idn or {})


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _is_true(value: Any) -> bool:
    return str(value).strip().lower() in ("true", "1") if isinstance(value, str) else bool(value)


def _g(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _light_jv(r: _Run) -> bool:
    return r.procedure == "jv" and _is_true(r.parameters.get("light", True))


def short_id(run_id: str) -> str:
    """A run id without its leading UTC time stamp (``20261202T070807Z_jv_CELL-1_fe6e`` → ``jv_CELL-1_fe6e``)."""
    return re.sub(r"^\d{8}T\d{6}Z_", "", run_id)


def _count(ids: Sequence[str]) -> str:
    """'1 run: jv_CELL-1_fe6e', '3 runs: a, b, c', or '9 runs' (the runs are listed in the sources column)."""
    n = f"{len(ids)} run{'s' if len(ids) > 1 else ''}"
    return f"{n}: {', '.join(short_id(i) for i in ids)}" if len(ids) <= 3 else n


def _distinct(values: Iterable[tuple[str, str]], among: int | None = None) -> tuple[str | None, tuple[str, ...]]:
    """(value text, run ids) from (run id, text) pairs: one text when all runs agree, else each text with its runs;
    None when no run gives one. ``among``: how many runs should give it (fewer did: said so)."""
    by_text: dict[str, list[str]] = {}
    for run_id, text in values:
        if text:
            by_text.setdefault(text, []).append(run_id)
    if not by_text:
        return None, ()
    runs = tuple(dict.fromkeys(r for ids in by_text.values() for r in ids))
    if len(by_text) == 1:
        text, ids = next(iter(by_text.items()))
        value = f"{text} ({len(ids)} run{'s' if len(ids) > 1 else ''})"
    else:
        value = "; ".join(f"{text} ({_count(ids)})" for text, ids in by_text.items())
    if among is not None and len(runs) < among:
        value += f"; not recorded for {among - len(runs)} of {among} runs"
    return value, runs


def _param(runs: Sequence[_Run], name: str, unit: str = "", among: int | None = None
           ) -> tuple[str | None, tuple[str, ...]]:
    return _distinct(((r.run_id, f"{_g(r.parameters[name])}{' ' + unit if unit else ''}") for r in runs
                      if name in r.parameters and _text(r.parameters[name])), among)


def bench_and_clock(station: Mapping[str, Any]) -> tuple[str, str] | None:
    """(bench, clock) as the installed simulator describes a run it simulated (``labctl show``'s bench and clock
    lines), else None: real instruments on the real clock."""
    from labctl.simulators import simulator_class

    simulator = simulator_class()
    described = simulator.describe_snapshot(station) if simulator is not None and station else None
    return tuple(described) if described else None  # type: ignore[return-value]


def _bench(station: Mapping[str, Any]) -> str | None:
    """The simulated bench that ran the run (its description), else None (real instruments)."""
    described = bench_and_clock(station)
    return described[0] if described else None


def _scan(r: _Run) -> str:
    p = r.parameters
    if p.get("mode") == "qss":
        return (f"quasi-steady-state, {_g(p.get('start_V'))} to {_g(p.get('stop_V'))} V, {p.get('qss_points')} "
                f"points, window {_g(p.get('qss_window_s'))} s, NPLC {_g(p.get('nplc'))}")
    return (f"{p.get('mode', 'staircase')}, {_g(p.get('start_V'))} to {_g(p.get('stop_V'))} V, step "
            f"{_g(p.get('step_V'))} V, {_g(p.get('scan_rate_V_s'))} V/s, delay {_g(p.get('delay_s'))} s, NPLC "
            f"{_g(p.get('nplc'))}")


def _preconditioning(r: _Run) -> str:
    p = r.parameters
    seconds = float(p.get("precondition_s") or 0.0)
    if seconds <= 0:
        return "none"
    light = "light on" if _is_true(p.get("precondition_light", True)) else "dark"
    return f"{seconds:g} s at {_g(p.get('precondition_V'))} V, {light}"


def _eqe_settings(r: _Run) -> str:
    """An EQE run's bias light, chopper frequency (the station's ``eqe.chopper_frequency_Hz``) and lock-in
    settings, and its calibration run (ISOS Table 3: lock-in frequency and light bias)."""
    p = r.parameters
    chopper = (r.station.get("eqe") or {}).get("chopper_frequency_Hz") if isinstance(r.station, Mapping) else None
    parts = [f"bias light {'on' if _is_true(p.get('bias_light')) else 'off'}"]
    if chopper is not None:
        parts.append(f"chopper {_g(chopper)} Hz")
    if p.get("time_constant_s") not in (None, ""):
        parts.append(f"lock-in τ {_g(p['time_constant_s'])} s, {p.get('filter_slope_dB', '?')} dB/oct, "
                     f"{p.get('reserve', '?')} reserve")
    if r.results.get("reference_run"):
        parts.append(f"calibration run {r.results['reference_run']}")
    return ", ".join(parts)


def _devices(jv: Sequence[_Run]) -> list[tuple[str, str | None]]:
    return list(dict.fromkeys((r.sample, r.pixel) for r in jv))


def _device_pce(jv: Sequence[_Run]) -> dict[tuple[str, str | None], float]:
    """The best light-J–V PCE (%) of each device (sample, pixel) over its runs and scan directions."""
    best: dict[tuple[str, str | None], float] = {}
    for r in jv:
        for d in ("reverse", "forward", "qss"):
            pce = (r.results.get(d) or {}).get("pce_pct") if isinstance(r.results.get(d), Mapping) else None
            if pce is not None and math.isfinite(pce):
                key = (r.sample, r.pixel)
                best[key] = max(best.get(key, -math.inf), float(pce))
    return best


def journal_checklist(runs: Sequence[Any]) -> list[Item]:
    """The journal reporting items filled from ``runs`` (:class:`labctl.storage.RunData`, every run of the report
    including a substrate's pixel runs)."""
    section = "journal"
    views = [_view(r) for r in runs]
    jv = [r for r in views if _light_jv(r)]
    lit = [r for r in views if r.procedure in ("jv", "mpp", "hold", "eqe") and
           (r.procedure == "eqe" or _is_true(r.parameters.get("light", True)))]
    stability = [r for r in views if r.procedure in STABILITY_PROCEDURES]
    eqe = [r for r in views if r.procedure == "eqe"]
    items: list[Item] = []

    def add(item: str, found: tuple[str | None, tuple[str, ...]], note: str = "") -> None:
        items.append(Item(section, item, found[0], found[1], note if found[0] is None else ""))

    add("device area", _param([r for r in views if "area_cm2" in r.parameters], "area_cm2", "cm²"),
        "no run gives its area")
    add("how the area was determined (mask / aperture and its size)",
        _param(views, "isos_area_method", among=len(views)),
        "not recorded: give it with --set isos_area_method=... (stability runs), e.g. 'laser-cut mask, 0.049 cm², "
        "optical microscope'")
    sources = _distinct((r.run_id, _text(r.parameters.get("isos_light_source")) or (_bench(r.station) or ""))
                        for r in lit)
    add("light source (type, spectrum, filters)", sources, "not recorded: --set isos_light_source=... and "
        "isos_light_spectrum=... (stability runs)")
    add("irradiance", _param([r for r in views if _light_jv(r) or r.procedure in STABILITY_PROCEDURES],
                             "irradiance_W_m2", "W/m²"), "no light J–V or stability run")
    add("light calibration (reference cell and its certificate)",
        _param(views, "isos_light_calibration", among=len(lit)),
        "not recorded: --set isos_light_calibration=... (reference cell, certificate, date)")
    corrected = [(r.run_id, f"M = {float(r.parameters['mismatch']):.4g}") for r in jv
                 if r.parameters.get("mismatch") not in (None, "") and float(r.parameters["mismatch"]) != 1.0]
    add("spectral mismatch factor", _distinct(corrected),
        "M = 1 in every light J–V (no correction applied): compute it with `labctl analyze mismatch` and run with "
        "--set mismatch=M" if jv else "no light J–V")
    add("J–V scan (mode, range, step, rate, dwell, NPLC)", _distinct((r.run_id, _scan(r)) for r in jv),
        "no light J–V")
    add("J–V scan direction(s)", _param(jv, "direction"), "no light J–V")
    add("preconditioning", _distinct((r.run_id, _preconditioning(r)) for r in jv), "no light J–V")
    add("contacting (2-wire / 4-wire)", _distinct(
        (r.run_id, "4-wire" if _is_true(r.parameters.get("four_wire")) else "2-wire") for r in jv
        if "four_wire" in r.parameters), "no light J–V")
    add("device temperature", _distinct(
        [(r.run_id, f"{_g(r.parameters['temperature_K'])} K (as entered)") for r in jv if
         r.parameters.get("temperature_K") not in (None, "")] +
        [(r.run_id, _text(r.parameters.get("isos_temperature"))) for r in stability]),
        "not recorded")
    add("test environment (atmosphere, humidity)", _distinct(
        ((r.run_id, ", ".join(x for x in (_text(r.parameters.get("isos_atmosphere")),
                                         _text(r.parameters.get("isos_humidity"))) if x)) for r in views),
        among=len(views)),
        "not recorded: --set isos_atmosphere=... and isos_humidity=... (stability runs)")
    hysteresis = []
    for r in jv:
        h = r.results.get("hysteresis")
        if isinstance(h, Mapping) and h.get("hi_pce") is not None:
            hysteresis.append((r.run_id, float(h["hi_pce"]), _g(r.parameters.get("scan_rate_V_s"))))
    if len(hysteresis) > 3:  # many runs: the range of the index and the scan rates, not one entry per run
        values = [v for _, v, _ in hysteresis]
        rates = ", ".join(sorted({rate for _, _, rate in hysteresis}, key=float))
        items.append(Item(section, "hysteresis (both scan directions, index)",
                          f"HI_PCE {min(values):+.4f} to {max(values):+.4f} over {len(values)} runs (scan rates "
                          f"{rates} V/s)", tuple(i for i, _, _ in hysteresis)))
    else:
        add("hysteresis (both scan directions, index)",
            _distinct((i, f"HI_PCE {v:+.4f}, scan rate {rate} V/s") for i, v, rate in hysteresis),
            "no light J–V with both scan directions (--set direction=reverse-forward)")
    stabilised = []
    for r in stability:
        res, hours = r.results, r.results.get("hours")
        span = f" over {hours:.3g} h" if isinstance(hours, (int, float)) else ""
        if res.get("stabilised_pce_pct") is not None:
            stabilised.append((r.run_id, f"{res['stabilised_pce_pct']:.2f} % stabilised (at "
                                         f"{res.get('stabilised_at_h', 0):.3g} h){span}"))
        elif res.get("settled_pce_pct") is not None:
            stabilised.append((r.run_id, f"{res['settled_pce_pct']:.2f} % settled, not stabilised by the drift "
                                         f"criterion{span}"))
        elif res.get("pce_final_pct") is not None:
            stabilised.append((r.run_id, f"{res['pce_final_pct']:.2f} % final{span}"))
    add("stabilised output (MPP tracking or hold) and its duration", _distinct(stabilised),
        "no MPP-tracking or hold run in the report")
    comparison = []
    for r in eqe:
        res = r.results
        if res.get("jsc_integrated_mA_cm2") is None:
            continue
        text = f"integrated {res['jsc_integrated_mA_cm2']:.2f} mA/cm²"
        if res.get("jsc_ratio") is not None:
            text += f" vs J–V {res['jsc_jv_mA_cm2']:.2f} mA/cm² (ratio {res['jsc_ratio']:.3f})"
        else:
            text += " (no J–V Jsc to compare: --set jv_file=...)"
        comparison.append((r.run_id, text))
    add("EQE: integrated Jsc against the J–V Jsc", _distinct(comparison), "no EQE run in the report")
    add("EQE: light bias, chopper and lock-in settings", _distinct((r.run_id, _eqe_settings(r)) for r in eqe),
        "no EQE run in the report")
    devices = _devices(jv)
    if devices:
        names = ", ".join(s if p is None else f"{s}/{p}" for s, p in devices)
        items.append(Item(section, "number of devices measured (light J–V)", f"{len(devices)}: {names}",
                          tuple(r.run_id for r in jv)))
    else:
        items.append(Item(section, "number of devices measured (light J–V)", None, (), "no light J–V"))
    pce = list(_device_pce(jv).values())
    if len(pce) >= 2:
        mean = sum(pce) / len(pce)
        sd = math.sqrt(sum((x - mean) ** 2 for x in pce) / (len(pce) - 1))
        ordered = sorted(pce)
        mid = len(ordered) // 2
        median = ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
        items.append(Item(section, "statistics over devices (best PCE of each)",
                          f"mean {mean:.2f} ± {sd:.2f} % (sample sd), median {median:.2f} %, range "
                          f"{ordered[0]:.2f}–{ordered[-1]:.2f} % over {len(pce)} devices",
                          tuple(r.run_id for r in jv)))
    else:
        items.append(Item(section, "statistics over devices (best PCE of each)", None, (),
                          "fewer than two devices with a PCE: no distribution to report"))
    items.append(Item(section, "independent certification of the efficiency", None, (),
                      "not in the run metadata: say whether an accredited laboratory certified the cell"))
    protocols = _distinct((r.run_id, _text(r.parameters.get("preset")).upper() or "no ISOS protocol claimed")
                          for r in stability)
    add("stability test: protocol and conditions (see the ISOS items)", protocols,
        "no stability run in the report")
    return items


def isos_items(run: Any) -> list[Item]:
    """The ISOS checklist of one stability run (:func:`labctl.isos.checklist`) as items."""
    r = _view(run)
    section = f"ISOS: {r.run_id}"
    keys = {label: key for key, label in isos.FIELDS.items()} | _ISOS_KEYS
    return [Item(section, item, value, (r.run_id,) if value is not None else (),
                 "" if value is not None else f"not recorded: --set {keys.get(item, 'KEY')}=... on the stability run")
            for item, value in isos.checklist(r.parameters, r.station, r.procedure)]


#: the parameter that gives each ISOS checklist item that is not one of :data:`labctl.isos.FIELDS`
_ISOS_KEYS = {"protocol claimed": "preset", "J-V during ageing: interval": "jv_interval_min",
              "stress duration": "duration_h", "active area": "area_cm2", "MPPT: tracking algorithm": "algorithm",
              "MPPT: delay (dwell) time and step": "dwell_s", "electrical bias": "bias"}


def checklist(runs: Sequence[Any]) -> list[Item]:
    """The report's checklist: the journal items over every run, then the ISOS items of each stability run (runs
    whose ISOS checklists are the same, e.g. the pixels of one substrate, share one section:
    ``ISOS: <n> runs (<ids>)``)."""
    items = journal_checklist(runs)
    groups: dict[tuple[Any, ...], list[Any]] = {}
    for run in runs:
        if isos.is_stability_run(run.parameters):
            r = _view(run)
            key = tuple(isos.checklist(r.parameters, r.station, r.procedure))
            groups.setdefault(key, []).append(run)
    for group in groups.values():
        if len(group) == 1:
            items += isos_items(group[0])
            continue
        ids = tuple(_view(run).run_id for run in group)
        names = [short_id(i) for i in ids]
        listed = ", ".join(names) if len(names) <= 3 else f"{names[0]} and {len(names) - 1} more"
        section = f"ISOS: {len(ids)} runs with the same fields ({listed})"
        items += [Item(section, i.item, i.value, ids if i.value is not None else (), i.note)
                  for i in isos_items(group[0])]
    return items


def missing(items: Sequence[Item]) -> list[str]:
    """``section: item`` of every item without a value."""
    return [f"{i.section}: {i.item}" for i in items if i.missing]
