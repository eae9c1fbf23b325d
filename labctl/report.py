"""Run reports (``labctl report RUN... [--out DIR]``): one PDF, and one PNG per page, of runs and substrates.

The report reads run files (:func:`labctl.storage.load_run`, lazily: a 600 h run's streams are read only as far as
its plot asks) and substrate records (:func:`labctl.substrate.load_substrate`); a run id is looked up in the
catalog (:class:`labctl.catalog.Catalog`). Its pages, in order:

1. **Contents**: every input (run or substrate) with its procedure, sample, status and start.
2. **One page per run**: the procedure's own plot (its ``plot`` classmethod, as ``labctl plot`` draws it) and the
   summary table (:func:`summary_table`: the figures of merit per scan direction of a J–V, the stability figures of
   an MPP or hold run, the EQE checks, ...) with the run's details (bench, instruments, warnings).
3. **One section per substrate**: the substrate figure (:mod:`labctl.substrate_plots`: box plots and the map), the
   table of figures per pixel with the statistics, and the pixels' curves overlaid (J–V, or stability).
4. **Comparisons**: for several runs of one sample (runs given one by one), the figures of merit per run as box
   plots and a table, the J–V curves overlaid, and the stability curves overlaid; for several substrates of one
   sample, a box per substrate and figure over its pixels.
5. **The reporting checklist** (:mod:`labctl.report_checklist`): the journal items and the ISOS items, each with its
   value and the runs it comes from, or MISSING; then the list of what is missing.

Nothing here touches an instrument. Every page is a matplotlib figure (Agg): saved into the PDF (PdfPages, text as
TrueType so that it can be searched and extracted) and as ``page-NN-<what>.png``.
"""

from __future__ import annotations

import json
import math
import re
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.backends.backend_pdf import PdfPages  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from labctl.config import ConfigError  # noqa: E402
from labctl.report_checklist import ISOS_SOURCE, JOURNAL_SOURCE, Item, checklist, missing  # noqa: E402
from labctl.report_checklist import short_id as _short_id  # noqa: E402

#: a page: A4 landscape (inches)
PAGE_IN = (11.69, 8.27)
#: PNG resolution (dots per inch)
PNG_DPI = 110
#: the most points of one curve drawn on an overlay (a 600 h run is decimated to this)
OVERLAY_POINTS = 4000
#: the J–V figures of the comparison, with their labels (FF a fraction, shown in %)
COMPARE_FIGURES = (("pce_pct", "PCE (%)"), ("voc_V", "Voc (V)"), ("jsc_mA_cm2", "Jsc (mA/cm²)"), ("ff", "FF (%)"))
_DIRECTIONS = ("reverse", "forward", "qss")
_COLOURS = {"reverse": "tab:blue", "forward": "tab:green", "qss": "tab:purple"}


# -- the inputs ---------------------------------------------------------------------------------------------------
@dataclass
class Source:
    """One input of a report: a run (``run``) or a substrate (``substrate``, its pixel runs opened lazily), and what
    the user gave for it (``ref``)."""

    ref: str
    run: Any = None
    substrate: Any = None

    @property
    def label(self) -> str:
        if self.substrate is not None:
            return str(self.substrate.substrate_id)
        return str(self.run.info.get("run_id", self.run.path.stem))


def resolve(refs: Sequence[str], *, catalog_url: str | None = None, station: str | None = None,
            data_dir: str | Path | None = None) -> list[Source]:
    """Each ``ref`` as a :class:`Source`: a run file (``.h5``), a substrate record (``.substrate.json``), else a run id
    (of ``station``, or of any station when None) or a substrate id in the catalog ``catalog_url`` (reindexing
    ``data_dir`` once when the catalog does not know it).

    Raises :class:`ConfigError` (one line naming the reference) for a reference that is none of these, or a file
    that cannot be read."""
    from labctl.substrate import RECORD_SUFFIX

    sources: dict[Path, Source] = {}
    for ref in refs:
        path = Path(ref)
        if not path.is_file():
            found = _from_catalog(ref, catalog_url, station, Path(data_dir) if data_dir else None)
            if found is None:
                where = f"the catalog {catalog_url}" if catalog_url else "no catalog (give --station or --data)"
                raise ConfigError(f"RUN = {ref!r}: neither a run file, a {RECORD_SUFFIX} record, a run id nor a "
                                  f"substrate id in {where}")
            path = found
        key = path.resolve()
        if key not in sources:  # a run given twice (as a file and by its id) is reported once
            sources[key] = _open_file(ref, path)
    return list(sources.values())


def _open_file(ref: str, path: Path) -> Source:
    from labctl.storage import load_run
    from labctl.substrate import RECORD_SUFFIX, load_substrate

    try:
        if path.name.endswith(RECORD_SUFFIX):
            return Source(ref, substrate=load_substrate(path))
        return Source(ref, run=load_run(path, lazy=True))
    except (OSError, KeyError, ValueError) as exc:
        raise ConfigError(f"RUN = {ref!r}: cannot read {path}: {exc}") from None


def _from_catalog(ref: str, url: str | None, station: str | None, data_dir: Path | None) -> Path | None:
    """The file of run id (or substrate id) ``ref`` in the catalog, or None."""
    if url is None:
        return None
    from labctl.catalog import Catalog, CatalogError
    from labctl.substrate import RECORD_SUFFIX

    def lookup(catalog: Catalog) -> Path | None:
        row = catalog.get(station, ref) if station is not None else None
        if row is None:  # a run of another station sharing the catalog (or no station given)
            row = next((r for r in catalog.runs(check_running=False) if r.run_id == ref), None)
        if row is not None and Path(row.path).is_file():
            return Path(row.path)
        for pixel in catalog.runs(substrate=ref, check_running=False):
            record = Path(pixel.path).parent / f"{ref}{RECORD_SUFFIX}"
            if record.is_file():
                return record
        return None

    try:
        with Catalog(url) as catalog:
            found = lookup(catalog)
            if found is None and data_dir is not None and data_dir.is_dir():
                catalog.reindex(data_dir)
                found = lookup(catalog)
    except CatalogError as exc:
        raise ConfigError(f"RUN = {ref!r}: {exc}") from None
    return found


# -- the summary table of a run -------------------------------------------------------------------------------------
def _f(spec: str, value: Any) -> str:
    from procedures.summary import fmt

    try:
        return fmt(spec, value)
    except (TypeError, ValueError):
        return str(value)


def summary_table(run: Any) -> tuple[list[str], list[list[str]]]:
    """The summary table of a run: (column heads, rows), the first column the row label.

    A light J–V: the figures of merit (:data:`procedures.summary.FOM_ROWS`) per scan direction and the hysteresis
    index; a dark J–V: the single-diode dark fit per direction; a stability run (MPP, hold): the ISOS figures
    (initial and final, retained, T80/T95/TS80/TS95 as measured or extrapolated, burn-in, η1000) and the hours and
    interruptions; an EQE: the integrated Jsc and its ratio to the J–V Jsc, the band edge; anything else: its scalar
    results."""
    from procedures import summary

    r = run.results
    directions = [d for d in _DIRECTIONS if isinstance(r.get(d), Mapping)]
    if isinstance(r.get("dark"), Mapping) and r["dark"]:
        dark = r["dark"]
        rows = [[label, *[summary._plus_minus(_f(spec, fit.get(k)), fit.get(k), fit.get(u) if u else None)
                          for fit in dark.values()]] for k, u, label, spec in summary.DARK_ROWS]
        return ["dark fit", *dark], rows
    if directions:
        rows = [[label, *[summary.with_uncertainty(spec, r[d], k) for d in directions]]
                for k, label, spec in summary.FOM_ROWS]
        rows.append(["flags", *["\n".join(r[d].get("flags") or []) or "—" for d in directions]])
        h = r.get("hysteresis")
        if isinstance(h, Mapping) and h.get("hi_pce") is not None:
            rows.append(["hysteresis index HI_PCE", f"{h['hi_pce']:+.4f}", *[""] * (len(directions) - 1)])
        return ["figures of merit", *directions], rows
    if isinstance(r.get("figures"), Mapping):
        fig, hours = r["figures"], r.get("hours")
        rows = [["initial → final", f"{_f('{:.4g}', fig.get('initial'))} → {_f('{:.4g}', fig.get('final'))}"],
                ["retained", _f("{:.2f} %", fig.get("retained_pct"))]]
        rows += [[label, summary.threshold_text(fig, key, prefix, hours)]
                 for key, prefix, label in summary.STABILITY_THRESHOLDS]
        burn = fig.get("burn_in_h")
        rows.append(["burn-in ends", "—" if burn is None else
                     f"{burn:.3g} h ({'detected' if fig.get('burn_in_detected') else 'given'})"])
        eta, eta_x = fig.get("eta1000"), fig.get("eta1000_extrapolated")
        rows.append(["η1000", _f("{:.4g}", eta) if eta is not None else
                     (f"≈ {eta_x:.4g} extrapolated" if eta_x is not None else "—")])
        for key, label, spec in (("stabilised_pce_pct", "stabilised PCE (%)", "{:.3f}"),
                                 ("settled_pce_pct", "settled PCE (%)", "{:.3f}"),
                                 ("hours", "hours", "{:.4g}"), ("interruptions", "interruptions", "{}"),
                                 ("suspended_h", "suspended (h)", "{:.3g}"), ("io_faults", "I/O faults recovered",
                                                                             "{}"), ("jv_scans", "J–V scans", "{}")):
            if key in r:
                rows.append([label, _f(spec, r.get(key))])
        return [f"stability ({r.get('metric') or 'metric'}, interruptions masked)", "value"], rows
    if "jsc_integrated_mA_cm2" in r:
        rows = [["integrated Jsc, AM1.5G (mA/cm²)", _f("{:.3f}", r.get("jsc_integrated_mA_cm2"))],
                ["J–V Jsc (mA/cm²)", _f("{:.3f}", r.get("jsc_jv_mA_cm2"))],
                ["ratio (allowed ±)", f"{_f('{:.4f}', r.get('jsc_ratio'))} (±{_f('{:g}', r.get('jsc_tolerance'))})"],
                ["band edge reached", _f("{}", r.get("band_edge_reached"))],
                ["EQE max (%)", _f("{:.1f}", None if r.get("eqe_max") is None else 100 * r["eqe_max"])]]
        return ["EQE", "value"], rows
    if "n_global" in r:
        window = r.get("global_window_suns") or [None, None]
        span = f" over {window[0]:.3g}–{window[1]:.3g} suns" if None not in window else ""
        rows = [["ideality n, global", summary._plus_minus(_f("{:.3f}", r.get("n_global")), r.get("n_global"),
                                                           r.get("n_global_stderr")) + span],
                ["dynamic range (dB)", _f("{:.1f}", r.get("dynamic_range_dB"))],
                ["temperature (K)", f"{_f('{:g}', r.get('temperature_K'))} ({r.get('temperature_source', '')})"]]
        for reg in r.get("regimes") or []:
            rows.append([f"regime {reg.get('label', '')}", f"n = {_f('{:.3f}', reg.get('n'))} "
                         f"({_f('{:.3f}', reg.get('n_low'))}–{_f('{:.3f}', reg.get('n_high'))}) from "
                         f"{_f('{:.3g}', reg.get('phi_min_suns'))} to {_f('{:.3g}', reg.get('phi_max_suns'))} suns, "
                         f"{reg.get('points', '')} points"])
        limited = r.get("instrument_limited_points") or []
        rows.append(["instrument-limited points", f"{len(limited)}" + (f", up to {max(limited):.3g} suns"
                                                                       if limited else "")])
        if r.get("up_down_max_abs_dvoc_mV") is not None:
            rows.append(["up/down |ΔVoc| max (mV)", _f("{:.3f}", r["up_down_max_abs_dvoc_mV"])])
        rows.append(["calibration run", str(r.get("calibration_run", "—"))])
        return ["light-intensity Voc", "value"], rows
    if "plqy" in r:
        rows = [[label, _f(spec, r.get(key))] for key, label, spec in (
            ("plqy", "PLQY", "{:.4g}"), ("plqy_differential", "differential PLQY", "{:.4g}"),
            ("qfls_eV", "QFLS (eV)", "{:.4f}"), ("voc_V", "Voc (V)", "{:.4f}"),
            ("jsc_mA_cm2", "Jsc (mA/cm²)", "{:.3f}"), ("snr_dB", "SNR (dB)", "{:.1f}"), ("snr_ok", "SNR ok", "{}"),
            ("laser_power_mW", "laser power (mW)", "{:.4g}"), ("f_mod_Hz", "modulation (Hz)", "{:g}"),
            ("stray_pump_detected", "stray pump detected", "{}"), ("absorbed_from", "absorbed photons from", "{}"))
            if key in r]
        return ["PLQY", "value"], rows
    if "metric" in r and "hours" in r:  # a stability run too short for its figures
        return ["stability", "value"], [["stability figures", f"not computed (too few "
                                         f"{r.get('metric') or 'metric'} readings)"], *_scalar_rows(r)]
    return ["result", "value"], _scalar_rows(r)


def _scalar_rows(results: Mapping[str, Any], limit: int = 20) -> list[list[str]]:
    rows = []
    for key, value in results.items():
        if isinstance(value, (dict, list)) or key == "warnings":
            continue
        rows.append([key, f"{value:.6g}" if isinstance(value, float) else str(value)])
    if len(rows) > limit:
        return [*rows[:limit], ["…", f"{len(rows) - limit} more results in the run file (labctl show)"]]
    return rows


def _details(run: Any) -> list[list[str]]:
    """The run's identity for the page: id, sample (pixel), status, times, bench, instruments, area, warnings."""
    from labctl.report_checklist import bench_and_clock

    info = run.info
    bench, clock = bench_and_clock(run.station) or ("real instruments", "real")
    sample = info.get("sample", "")
    if info.get("pixel"):
        sample += f" (substrate {info.get('substrate_id')}, pixel {info['pixel']})"
    rows = [["run", info.get("run_id", "")], ["procedure", info.get("procedure", "")], ["sample", sample],
            ["status", run.status],
            ["start / end (UTC)", f"{info.get('start_time', '—')} / {info.get('end_time', '—')}"],
            ["operator", info.get("operator", "")],
            ["bench", bench], ["clock", clock]]
    if "area_cm2" in run.parameters:
        rows.append(["area", f"{run.parameters['area_cm2']:g} cm²"])
    for role, idn in run.idn.items():
        rows.append([f"instrument {role}", idn])
    warnings = list(run.results.get("warnings") or [])
    for text in warnings[:6]:
        rows.append(["warning", text])
    if len(warnings) > 6:
        rows.append(["warning", f"{len(warnings) - 6} more (labctl show)"])
    if len(run.segments) > 1:
        rows.append(["segments", f"{len(run.segments)} (resumed {len(run.segments) - 1} times)"])
    return rows


# -- drawing tables on axes -----------------------------------------------------------------------------------------
def _wrap(text: str, width: int) -> str:
    lines = []
    for part in str(text).split("\n"):
        lines += textwrap.wrap(part, width, break_long_words=True, break_on_hyphens=False) or [""]
    return "\n".join(lines)


def draw_table(ax: Any, head: Sequence[str], rows: Sequence[Sequence[str]], widths: Sequence[int],
               fontsize: float = 7.5, missing_rows: Sequence[int] = ()) -> None:
    """A table on ``ax`` (its axis off), from the top of the axes down: each cell's text wrapped at ``widths[i]``
    characters, each row as high as its tallest cell; rows in ``missing_rows`` in red."""
    ax.set_axis_off()
    cells = [[_wrap(c, w) for c, w in zip(row, widths, strict=False)] for row in [list(head), *rows]]
    lines = [max(c.count("\n") + 1 for c in row) for row in cells]
    height_in = ax.get_position().height * ax.figure.get_figheight()
    total = sum(lines) * fontsize * 1.45 / 72.0 + 0.06 * len(lines)
    if total > height_in:  # too tall: a smaller font (the text and the rows shrink together, nothing overlaps)
        fontsize *= max(0.6, (height_in - 0.06 * len(lines)) / (total - 0.06 * len(lines)))
    line_h = fontsize * 1.45 / 72.0  # inches per text line
    table = ax.table(cellText=cells[1:], colLabels=cells[0], loc="upper center", cellLoc="left",
                     colWidths=[w / sum(widths) for w in widths])
    table.auto_set_font_size(False)
    table.set_fontsize(fontsize)
    for (row, _col), cell in table.get_celld().items():
        cell.set_height((lines[row] * line_h + 0.06) / height_in)
        cell.PAD = 0.03  # the text's inset (a fraction of the cell's width; matplotlib's default 0.1 is wide)
        cell.set_edgecolor("0.75")
        cell.get_text().set_va("center")
        if row == 0:
            cell.set_facecolor("0.9")
            cell.get_text().set_weight("bold")
        elif row - 1 in missing_rows:
            cell.get_text().set_color("tab:red")


def _rows_per_page(rows: Sequence[Sequence[str]], widths: Sequence[int], capacity_lines: int) -> list[list[Any]]:
    """``rows`` split into pages of at most ``capacity_lines`` wrapped text lines each."""
    pages: list[list[Any]] = [[]]
    used = 0
    for row in rows:
        n = max(_wrap(c, w).count("\n") + 1 for c, w in zip(row, widths, strict=False)) + 0.4
        if pages[-1] and used + n > capacity_lines:
            pages.append([])
            used = 0
        pages[-1].append(row)
        used += n
    return pages


# -- the report -----------------------------------------------------------------------------------------------------
@dataclass
class Report:
    """What :func:`write_report` wrote: the PDF, one PNG per page (in page order), each page's title, the checklist
    and what it misses (``section: item``)."""

    pdf: Path
    pngs: list[Path] = field(default_factory=list)
    pages: list[str] = field(default_factory=list)
    checklist: list[Item] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"pdf": str(self.pdf), "pngs": [str(p) for p in self.pngs], "pages": self.pages,
                "missing": self.missing,
                "checklist": [{"section": i.section, "item": i.item, "value": i.value, "sources": list(i.sources),
                               "note": i.note} for i in self.checklist]}


class _Writer:
    def __init__(self, out_dir: Path, pdf: PdfPages, report: Report) -> None:
        self.out_dir, self.pdf, self.report = out_dir, pdf, report

    def page(self, fig: Figure, title: str) -> None:
        n = len(self.report.pages) + 1
        fig.text(0.99, 0.005, f"page {n}", ha="right", va="bottom", fontsize=7, color="0.4")
        slug = re.sub(r"[^A-Za-z0-9_-]+", "-", title).strip("-")[:60] or "page"
        png = self.out_dir / f"page-{n:02d}-{slug}.png"
        try:
            self.pdf.savefig(fig)
            fig.savefig(png, dpi=PNG_DPI)
        finally:
            plt.close(fig)
        self.report.pages.append(title)
        self.report.pngs.append(png)


def _new_page(title: str, subtitle: str = "") -> Figure:
    fig = plt.figure(figsize=PAGE_IN)
    fig.suptitle(title, fontsize=13, x=0.02, ha="left", y=0.985)
    if subtitle:
        fig.text(0.02, 0.95, _wrap(subtitle, 190), fontsize=8.5, color="0.3", va="top")
    return fig


def write_report(sources: Sequence[Source], out_dir: str | Path, *, title: str | None = None) -> Report:
    """Write the report of ``sources`` into ``out_dir`` (created if needed): ``report.pdf`` and ``page-NN-*.png``;
    ``report.json`` holds the checklist and what is missing. Returns what was written."""
    import labctl

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("page-*.png"):  # a report written again into its folder: no stale pages
        old.unlink()
    report = Report(out / "report.pdf")
    runs = [s.run for s in sources if s.run is not None]
    pixel_runs = [r for s in sources if s.substrate is not None for r in s.substrate.runs().values()
                  if r is not None]
    report.checklist = checklist(runs + pixel_runs)
    report.missing = missing(report.checklist)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    names = [_short_id(s.label) for s in sources]
    title = title or "labctl report: " + ", ".join(names[:2]) + (f" and {len(names) - 2} more" if len(names) > 2
                                                                 else "")
    # TrueType fonts (searchable, extractable text), for the pages and for the fonts PdfPages embeds when it closes
    with matplotlib.rc_context({"pdf.fonttype": 42}), \
            PdfPages(report.pdf, metadata={"Title": title, "Creator": f"labctl {labctl.__version__}"}) as pdf:
        w = _Writer(out, pdf, report)
        _contents_page(w, sources, title, stamp, labctl.__version__)
        for s in sources:
            if s.run is not None:
                _run_page(w, s.run)
            else:
                _substrate_pages(w, s.substrate)
        for sample, group in _sample_groups(runs).items():
            _comparison_pages(w, sample, group)
        for sample, subs in _substrate_groups([s.substrate for s in sources if s.substrate is not None]).items():
            _substrates_compared(w, sample, subs)
        _checklist_pages(w, report.checklist,
                         [str(r.info.get("run_id", r.path.stem)) for r in runs + pixel_runs])
    (out / "report.json").write_text(json.dumps(report.to_json(), indent=1), encoding="utf-8")
    return report


def _contents_page(w: _Writer, sources: Sequence[Source], title: str, stamp: str, version: str) -> None:
    fig = _new_page(title, f"written {stamp} by labctl {version}; {len(sources)} input(s)")
    rows = []
    for s in sources:
        if s.run is not None:
            i = s.run.info
            sample = i.get("sample", "") + (f" / pixel {i['pixel']}" if i.get("pixel") else "")
            rows.append([s.label, i.get("procedure", ""), sample, s.run.status, i.get("start_time", "")[:19],
                         str(s.run.path)])
        else:
            sub = s.substrate
            rows.append([s.label, "substrate: " + ", ".join(sorted({str(r.info.get("procedure", "")) for r in
                                                                     sub.runs().values() if r is not None})),
                         str(sub.info.get("sample", "")), sub.status, str(sub.info.get("time", ""))[:19],
                         str(sub.path)])
    widths = [34, 16, 16, 10, 20, 70]
    pages = _rows_per_page(rows, widths, capacity_lines=44)
    for k, page_rows in enumerate(pages):
        if k:
            fig = _new_page(f"{title} (contents {k + 1}/{len(pages)})")
        ax = fig.add_axes((0.02, 0.05, 0.96, 0.86))
        draw_table(ax, ["run / substrate", "procedure", "sample", "status", "start (UTC)", "file"], page_rows, widths,
                   fontsize=7.5)
        w.page(fig, "contents" + (f" {k + 1}" if k else ""))


def _run_page(w: _Writer, run: Any) -> None:
    from procedures import procedure_classes
    from procedures.base import LabProcedure

    procedure = procedure_classes().get(run.info.get("procedure", ""), LabProcedure)
    run_id = run.info.get("run_id", run.path.stem)
    fig = _new_page(f"Run {run_id}", f"{run.info.get('procedure', '')} — sample {run.info.get('sample', '')} — "
                                     f"{run.status}")
    grid = fig.add_gridspec(1, 2, left=0.06, right=0.98, top=0.9, bottom=0.08, width_ratios=[1.25, 1], wspace=0.12)
    ax = fig.add_subplot(grid[0])
    try:
        procedure.plot(ax, run)
        ax.grid(alpha=0.3)
    except Exception as exc:  # noqa: BLE001 - a run whose plot fails still gets its table
        ax.set_axis_off()
        ax.text(0.5, 0.5, f"no plot: {exc}", ha="center", va="center", wrap=True)
    right = grid[1].subgridspec(2, 1, height_ratios=[1.5, 1], hspace=0.06)
    head, rows = summary_table(run)
    widths = [24, 60] if len(head) == 2 else [26] + [16] * (len(head) - 1)
    draw_table(fig.add_subplot(right[0]), head, rows, widths, fontsize=7)
    draw_table(fig.add_subplot(right[1]), ["run", "details"], _details(run), [18, 52], fontsize=6.5)
    w.page(fig, f"run {run_id}")


# -- substrates -----------------------------------------------------------------------------------------------------
def _substrate_pages(w: _Writer, substrate: Any) -> None:
    from labctl import substrate_plots

    summary = substrate.summary or {}
    size = (substrate.info.get("layout") or {}).get("size_mm")
    fig = substrate_plots.figure(summary, size, title=f"Substrate {substrate.substrate_id} "
                                                       f"({substrate.info.get('sample', '')})")
    fig.set_size_inches(*PAGE_IN)
    w.page(fig, f"substrate {substrate.substrate_id}")
    fig = _new_page(f"Substrate {substrate.substrate_id}: figures per pixel",
                    f"sample {substrate.info.get('sample', '')}, status {substrate.status}, layout "
                    f"{substrate.info.get('layout_name', '')}; statistics over the included pixels (completed, not "
                    "dead)")
    head, rows = pixel_table(summary)
    grid = fig.add_gridspec(1, 2, left=0.04, right=0.98, top=0.9, bottom=0.08, width_ratios=[1.2, 1], wspace=0.15)
    draw_table(fig.add_subplot(grid[0]), head, rows, [10] + [9] * (len(head) - 2) + [22], fontsize=6.5)
    runs = {name: r for name, r in substrate.runs().items() if r is not None}
    _overlay(fig.add_subplot(grid[1]), {f"pixel {n}": r for n, r in runs.items()})
    w.page(fig, f"substrate {substrate.substrate_id} pixels")


def pixel_table(summary: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The per-pixel table of a substrate summary (:func:`labctl.analysis.substrate.summarise_substrate`): one
    row per pixel (figures per group, then its state), then best (pixel), median, mean, std and IQR."""
    from procedures.summary import SUBSTRATE_FORMATS

    groups = list(summary.get("groups") or [])
    figures = summary.get("figures") or {}
    labels = summary.get("labels") or {}
    columns = [(g, k) for g in groups for k in figures.get(g, [])]

    def head(g: str, k: str) -> str:
        label, unit = (labels.get(k) or (k, ""))[:2]
        unit = "%" if k == "ff" else unit
        return (f"{label} ({unit})" if unit else label) + ("" if g == "run" else f" {g[:3]}")

    rows = []
    for name, p in (summary.get("pixels") or {}).items():
        values = p.get("figures") or {}
        state = "skipped" if p.get("skipped") else ", ".join(
            [s for s in (p.get("status") if p.get("status") != "completed" else "",
                         "dead" if p.get("dead") else "", "shunted" if p.get("shunted") else "") if s]) or "ok"
        if p.get("reason") and (p.get("skipped") or p.get("status") != "completed"):
            state += f": {p['reason']}"
        rows.append([str(name), *[_f(SUBSTRATE_FORMATS.get(k, "{:.4g}"), values.get(g, {}).get(k))
                                  if g in values else "" for g, k in columns], state])
    stats = summary.get("statistics") or {}
    for key, label in (("best", "best"), ("median", "median"), ("mean", "mean"), ("std", "std"), ("iqr", "IQR")):
        cells = []
        for g, k in columns:
            s = stats.get(g, {}).get(k) or {}
            cell = _f(SUBSTRATE_FORMATS.get(k, "{:.4g}"), s.get(key))
            if key == "best" and s.get("best_pixel") is not None:
                cell += f" ({s['best_pixel']})"
            cells.append(cell)
        rows.append([label, *cells, ""])
    return ["pixel", *[head(g, k) for g, k in columns], "state"], rows


# -- curves overlaid --------------------------------------------------------------------------------------------------
def _decimate(*arrays: np.ndarray) -> list[np.ndarray]:
    n = len(arrays[0])
    stride = max(1, math.ceil(n / OVERLAY_POINTS))
    return [a[::stride] for a in arrays]


def stability_series(run: Any) -> tuple[np.ndarray, np.ndarray, str] | None:
    """A stability run's curve to overlay: (hours, values, what): the periodic J–V's PCE (reverse scan first) when
    it has one, else the tracked PCE of an MPP run, else the held quantity of a hold; None without one."""
    from labctl.storage import stream_columns, stream_rows

    s = run.streams
    if stream_rows(s, "jv_figures"):
        f = stream_columns(s, "jv_figures", ["stress_time_s", "direction", "pce_pct"])
        first = f[f["direction"] == f["direction"].min()]
        return first["stress_time_s"].to_numpy(float) / 3600.0, first["pce_pct"].to_numpy(float), "PCE (%), J–V"
    if stream_rows(s, "mpp"):
        f = stream_columns(s, "mpp", ["time_s", "pce_pct", "phase"])
        f = f[f["phase"] == "track"]
        return f["time_s"].to_numpy(float) / 3600.0, f["pce_pct"].to_numpy(float), "PCE (%), tracked"
    if stream_rows(s, "hold"):
        oc = str(run.parameters.get("bias", "")).strip().lower() == "oc"
        column = "voltage_V" if oc else "j_mA_cm2"
        f = stream_columns(s, "hold", ["time_s", column])
        return f["time_s"].to_numpy(float) / 3600.0, f[column].to_numpy(float), (
            "Voc (V), held" if oc else "J (mA/cm²), held")
    return None


def _has_stability(run: Any) -> bool:
    """Whether :func:`stability_series` has a curve for ``run`` (rows counted, not read)."""
    from labctl.storage import stream_rows

    return run.info.get("procedure") != "jv" and any(stream_rows(run.streams, name) for name in
                                                      ("jv_figures", "mpp", "hold"))


def _jv_curve(run: Any) -> tuple[np.ndarray, np.ndarray, str] | None:
    """The first reverse scan of a light J–V (else its first scan): (V, J, direction)."""
    if run.info.get("procedure") != "jv" or "jv" not in run.streams:
        return None
    data = run.streams["jv"]
    if data.empty:
        return None
    first = data[data["scan"] == data["scan"].min()]
    name = "reverse" if (first["direction"] == 0).any() else "forward"
    part = first[first["direction"] == (0 if name == "reverse" else 1)]
    if run.parameters.get("mode") == "qss":
        part, name = first.sort_values("voltage_V"), "qss"
    return part["voltage_V"].to_numpy(float), part["j_mA_cm2"].to_numpy(float), name


def _overlay(ax: Any, runs: Mapping[str, Any]) -> str:
    """The runs' J–V curves (or stability curves) overlaid on ``ax``, one colour per run; returns what was drawn."""
    jv = {k: c for k, r in runs.items() if (c := _jv_curve(r)) is not None}
    if jv:
        j_max = 0.0
        for label, (v, j, direction) in jv.items():
            ax.plot(v, j, lw=1, label=f"{label} ({direction})")
            j_max = max(j_max, float(np.nanmax(j)) if j.size else 0.0)
        ax.axhline(0, color="0.6", lw=0.8)
        if j_max > 0:
            ax.set_ylim(-0.3 * j_max, 1.15 * j_max)
        ax.set_xlabel("Voltage (V)")
        ax.set_ylabel("Current density (mA/cm²), photocurrent positive")
        ax.set_title("J–V curves overlaid", fontsize=10)
        ax.legend(fontsize=6.5, loc="lower left")
        ax.grid(alpha=0.3)
        return "jv"
    series = {k: s for k, r in runs.items() if (s := stability_series(r)) is not None}
    if series:
        for label, (t, y, _what) in series.items():
            t, y = _decimate(t, y)
            ax.plot(t, y, lw=1, label=label)
        ax.set_xlabel("Stress time (h)")
        ax.set_ylabel(next(iter(series.values()))[2])
        ax.set_title("Stability curves overlaid", fontsize=10)
        ax.legend(fontsize=6.5)
        ax.grid(alpha=0.3)
        return "stability"
    ax.set_axis_off()
    ax.text(0.5, 0.5, "no curves to overlay", ha="center", va="center", color="0.4")
    return ""


# -- comparisons of several runs of one sample -----------------------------------------------------------------------
def _sample_groups(runs: Sequence[Any]) -> dict[str, list[Any]]:
    """Runs given one by one grouped by sample, keeping the groups with at least two J–V or two stability runs."""
    groups: dict[str, list[Any]] = {}
    for run in runs:
        groups.setdefault(str(run.info.get("sample", "")), []).append(run)

    def kinds(group: list[Any]) -> tuple[int, int]:
        return (sum(1 for r in group if r.info.get("procedure") == "jv"),
                sum(1 for r in group if _has_stability(r)))

    return {s: g for s, g in groups.items() if max(kinds(g)) >= 2}


def _short(run: Any) -> str:
    return _short_id(str(run.info.get("run_id", run.path.stem)))


def _comparison_pages(w: _Writer, sample: str, group: list[Any]) -> None:
    jv = [r for r in group if r.info.get("procedure") == "jv" and
          any(isinstance(r.results.get(d), Mapping) for d in _DIRECTIONS)]
    if len(jv) >= 2:
        fig = _new_page(f"Sample {sample}: {len(jv)} J–V runs compared",
                        "figures of merit per run (points) and their spread (boxes) per scan direction")
        grid = fig.add_gridspec(2, 4, left=0.06, right=0.98, top=0.9, bottom=0.07, hspace=0.35, wspace=0.35,
                                height_ratios=[1, 1.1])
        for i, (key, label) in enumerate(COMPARE_FIGURES):
            _box(fig.add_subplot(grid[0, i]), jv, key, label)
        rows = []
        for r in jv:
            for d in _DIRECTIONS:
                fom = r.results.get(d)
                if isinstance(fom, Mapping):
                    rows.append([_short(r), d, _f("{:.2f}", fom.get("pce_pct")), _f("{:.4f}", fom.get("voc_V")),
                                 _f("{:.3f}", fom.get("jsc_mA_cm2")), _f("{:.2%}", fom.get("ff"))])
        draw_table(fig.add_subplot(grid[1, :2]), ["run", "scan", "PCE (%)", "Voc (V)", "Jsc (mA/cm²)", "FF (%)"],
                   rows, [24, 8, 8, 8, 10, 8], fontsize=6.5)
        _overlay(fig.add_subplot(grid[1, 2:]), {_short(r): r for r in jv})
        w.page(fig, f"sample {sample} J-V compared")
    stability = [r for r in group if _has_stability(r)]
    if len(stability) >= 2:
        fig = _new_page(f"Sample {sample}: {len(stability)} stability runs overlaid")
        _overlay(fig.add_axes((0.08, 0.1, 0.88, 0.78)), {_short(r): r for r in stability})
        w.page(fig, f"sample {sample} stability compared")


def _figure_label(labels: Mapping[str, Any], key: str) -> str:
    """'PCE (%)', 'FF (%)' (a fraction shown in %), 'Retained (%)' from a substrate summary's labels."""
    label, unit = (labels.get(key) or (key, ""))[:2]
    unit = "%" if key == "ff" else unit
    return f"{label} ({unit})" if unit else label


def _substrate_groups(substrates: Sequence[Any]) -> dict[str, list[Any]]:
    """Substrates grouped by sample, keeping the samples with at least two substrates of the same kind (J–V, or
    stability: the same primary group)."""
    groups: dict[tuple[str, str], list[Any]] = {}
    for sub in substrates:
        primary = (sub.summary or {}).get("primary")
        if primary:
            groups.setdefault((str(sub.info.get("sample", "")), str(primary[0] == "run")), []).append(sub)
    return {sample: subs for (sample, _), subs in groups.items() if len(subs) >= 2}


def _substrates_compared(w: _Writer, sample: str, substrates: Sequence[Any]) -> None:
    """Several substrates of one sample (e.g. before and after ageing): per figure, a box per substrate over its
    included pixels (the primary group: the reverse scan of a J–V), and a table of the counts and medians."""
    first = substrates[0].summary
    group = first["primary"][0]
    keys = list((first.get("figures") or {}).get(group, []))[:4]
    labels = first.get("labels") or {}
    fig = _new_page(f"Sample {sample}: {len(substrates)} substrates compared",
                    f"each point a pixel in the statistics (completed, not dead); figures of the {group} group")
    grid = fig.add_gridspec(2, 4, left=0.06, right=0.98, top=0.88, bottom=0.07, hspace=0.4, wspace=0.35)
    names = [_short_id(str(sub.substrate_id)) for sub in substrates]
    for i, key in enumerate(keys):
        ax = fig.add_subplot(grid[0, i])
        scale = 100.0 if key == "ff" else 1.0
        data = []
        for k, sub in enumerate(substrates):
            values = [p["figures"][group][key] * scale for p in (sub.summary.get("pixels") or {}).values()
                      if p.get("included") and p.get("figures", {}).get(group, {}).get(key) is not None]
            data.append(values)
            for j, v in enumerate(values):
                ax.plot(k + 0.25 * ((j + 0.5) / len(values) - 0.5), v, "o", ms=4, color="tab:blue",
                        markeredgecolor="0.2", markeredgewidth=0.4, zorder=3)
        filled = [(k, d) for k, d in enumerate(data) if d]
        if filled:
            ax.boxplot([d for _, d in filled], positions=[k for k, _ in filled], widths=0.5, showfliers=False,
                       medianprops={"color": "k"})
        ax.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=6)
        ax.set_xlim(-0.6, len(names) - 0.4)
        ax.set_title(_figure_label(labels, key), fontsize=9)
        ax.ticklabel_format(axis="y", useOffset=False)
        ax.grid(alpha=0.3, axis="y")
    rows = []
    for name, sub in zip(names, substrates, strict=True):
        counts = sub.summary.get("counts") or {}
        stats = (sub.summary.get("statistics") or {}).get(group, {})
        cells = [_f("{:.4g}", ((stats.get(k) or {}).get("median") or 0) * (100.0 if k == "ff" else 1.0))
                 if (stats.get(k) or {}).get("median") is not None else "—" for k in keys]
        rows.append([name, str(sub.info.get("time", ""))[:19], f"{counts.get('included', 0)} of "
                     f"{counts.get('pixels', 0)}", *cells])
    heads = ["substrate", "recorded (UTC)", "pixels in the statistics", *[f"median {_figure_label(labels, k)}"
                                                                          for k in keys]]
    draw_table(fig.add_subplot(grid[1, :]), heads, rows, [28, 20, 14, *[12] * len(keys)], fontsize=7)
    w.page(fig, f"sample {sample} substrates compared")


def _box(ax: Any, runs: Sequence[Any], key: str, label: str) -> None:
    """One figure of merit of ``runs``: a box per scan direction over the runs, each run a point."""
    scale = 100.0 if key == "ff" else 1.0
    groups = [d for d in _DIRECTIONS if any(isinstance(r.results.get(d), Mapping) for r in runs)]
    data, positions = [], []
    for i, d in enumerate(groups):
        values = [float(r.results[d][key]) * scale for r in runs if isinstance(r.results.get(d), Mapping)
                  and r.results[d].get(key) is not None]
        for j, v in enumerate(values):
            dx = 0.25 * ((j + 0.5) / len(values) - 0.5) if len(values) > 1 else 0.0
            ax.plot(i + dx, v, "o", ms=4, color=_COLOURS.get(d, "tab:blue"), markeredgecolor="0.2",
                    markeredgewidth=0.4, zorder=3)
        if values:
            data.append(values)
            positions.append(i)
    if data:
        ax.boxplot(data, positions=positions, widths=0.5, showfliers=False, medianprops={"color": "k"})
    ax.set_xticks(range(len(groups)), groups)
    ax.set_xlim(-0.6, len(groups) - 0.4)
    ax.set_title(label, fontsize=9)
    ax.ticklabel_format(axis="y", useOffset=False)  # values that differ in the 5th digit: no "+1.17" offset
    ax.grid(alpha=0.3, axis="y")
    ax.tick_params(labelsize=7)


# -- the checklist ----------------------------------------------------------------------------------------------------
def _sources(sources: Sequence[str], all_runs: Sequence[str]) -> str:
    if not sources:
        return ""
    if len(sources) > 1 and set(sources) == set(all_runs):
        return f"all {len(all_runs)} runs"
    if len(sources) > 4:
        return ", ".join(_short_id(s) for s in sources[:3]) + f" and {len(sources) - 3} more"
    return ", ".join(_short_id(s) for s in sources)


def _checklist_pages(w: _Writer, items: Sequence[Item], all_runs: Sequence[str]) -> None:
    widths = [40, 76, 38]
    sections = list(dict.fromkeys(i.section for i in items))
    for section in sections:
        chosen = [i for i in items if i.section == section]
        rows = [[i.item, i.value if i.value is not None else f"MISSING — {i.note}" if i.note else "MISSING",
                 _sources(i.sources, all_runs)] for i in chosen]
        source = JOURNAL_SOURCE if section == "journal" else ISOS_SOURCE
        name = "Reporting checklist: journal reporting summary" if section == "journal" else (
            f"Reporting checklist: {section}")
        pages = _rows_per_page(rows, widths, capacity_lines=44)
        start = 0
        for k, page_rows in enumerate(pages):
            gaps = sum(1 for i in chosen if i.missing)
            fig = _new_page(name + (f" ({k + 1}/{len(pages)})" if len(pages) > 1 else ""),
                            f"{source}. {len(chosen) - gaps} of {len(chosen)} items given, {gaps} missing (red).")
            marked = [n for n, i in enumerate(chosen[start:start + len(page_rows)]) if i.missing]
            draw_table(fig.add_axes((0.02, 0.04, 0.96, 0.87)), ["item", "value", "from run(s)"], page_rows, widths,
                       fontsize=7, missing_rows=marked)
            start += len(page_rows)
            w.page(fig, f"checklist {section}" + (f" {k + 1}" if len(pages) > 1 else ""))
    gaps = missing(items)
    lines = [line for g in gaps for line in _wrap(f"• {g}", 160).split("\n")] or ["nothing is missing"]
    per_page = 52
    chunks = [lines[k:k + per_page] for k in range(0, len(lines), per_page)]
    for k, chunk in enumerate(chunks):
        part = f" ({k + 1}/{len(chunks)})" if len(chunks) > 1 else ""
        fig = _new_page(f"Missing from the reporting checklist: {len(gaps)} item(s){part}",
                        "what the runs' metadata do not say; give it with --set KEY=VALUE on the runs, or in the "
                        "paper")
        fig.text(0.03, 0.9, "\n".join(chunk), va="top", fontsize=8)
        w.page(fig, "checklist missing" + (f" {k + 1}" if len(chunks) > 1 else ""))
