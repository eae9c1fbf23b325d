"""`labctl report`: the PDF and PNGs of simulated runs (two J–V of one cell, two MPP tracks of it, an 8-pixel
substrate), read back as images and as text with pypdfium2.

Expected figures are computed independently of labctl: pvlib's single-diode solution of the station file's device
(methods ref. set A, 298.15 K) for the J–V figures, the standard library's ``statistics`` for the spread over
devices, and the substrate station's wiring (pixel 3 shunted, 6 dead, 8 without contact: tests/test_substrate_e2e.py).
"""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

import numpy as np
import pypdfium2 as pdfium
import pytest
from click.testing import CliRunner
from pvlib.pvsystem import singlediode

from labctl.cli import main
from labctl.config import parse_station
from labctl.engine import RunEngine
from labctl.report import resolve, write_report
from labctl.station import Station
from labctl.storage import load_run
from labctl.substrate import load_substrate
from procedures.mpp import MPPProcedure
from tests.helpers import REPO, SET_A, default_station, run_jv

K_B, Q = 1.380649e-23, 1.602176634e-19
ISOS = {"preset": "ISOS-L-1", "isos_light_source": "LED, class AAA", "isos_light_calibration": "KG5 cell RC-12",
        "isos_light_spectrum": "AM1.5G-matched LED, no filters",
        "isos_temperature": "25 °C under light", "isos_temperature_sensor": "Pt100 on the back glass",
        "isos_encapsulation": "glass-glass, butyl edge", "isos_humidity": "35 % RH monitored",
        "isos_area_method": "laser-cut mask 0.049 cm², microscope"}


def _expected_set_a() -> dict[str, float]:
    """Voc (V), Jsc (mA/cm²), PCE (%) of set A by pvlib (A/cm² → mA/cm²; 1000 W/m² = 100 mW/cm²)."""
    vt = K_B * 298.15 / Q
    out = singlediode(SET_A["jph_mA_cm2"] * 1e-3, SET_A["j0_A_cm2"], SET_A["rs_ohm_cm2"], SET_A["rsh_ohm_cm2"],
                      SET_A["ideality"] * vt)
    return {"voc_V": float(out["v_oc"]), "jsc_mA_cm2": float(out["i_sc"]) * 1e3, "pce_pct": float(out["p_mp"]) * 1e3}


def _mpp(out: Path, **params) -> Path:
    procedure = MPPProcedure()
    for name, value in {"duration_h": 0.03, **params}.items():
        setattr(procedure, name, value)
    engine = RunEngine(Station(parse_station(default_station())), out, sample="test")
    return engine.run(procedure).path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "runs"
    jv1 = run_jv(out)[0].path
    jv2 = run_jv(out, direction="reverse", scan_rate_V_s=0.05)[0].path
    mpp1 = _mpp(out, **ISOS)
    mpp2 = _mpp(out)
    res = CliRunner().invoke(main, ["run", "jv", "--pixels", "all", "--station",
                                    str(REPO / "stations" / "substrate-bench.yaml"), "--out", str(out), "--sample",
                                    "QD-17", "--json", "--no-plot"])
    assert res.exit_code == 0, res.output
    record = Path(json.loads(res.stdout)["file"])
    return {"out": out, "jv": [jv1, jv2], "mpp": [mpp1, mpp2], "substrate": record}


@pytest.fixture(scope="module")
def report(runs, tmp_path_factory):
    refs = [*runs["jv"], *runs["mpp"], runs["substrate"]]
    folder = tmp_path_factory.mktemp("report-out")
    return write_report(resolve([str(r) for r in refs]), folder), folder


def _text(pdf: pdfium.PdfDocument, index: int) -> str:
    """A page's text as pdfium extracts it, whitespace collapsed (nothing else: a font embedded wrongly shows as
    stray glyphs, e.g. "−ﬁ" for "fi", and fails the searches)."""
    return re.sub(r"\s+", " ", pdf[index].get_textpage().get_text_range())


def _page(report, title: str) -> int:
    return report.pages.index(title)


def test_the_pdf_has_one_page_per_png_in_order_every_page_drawn(report):
    written, folder = report
    pdf = pdfium.PdfDocument(written.pdf)
    assert len(pdf) == len(written.pngs) == len(written.pages)
    assert [p.name for p in sorted(folder.glob("page-*.png"))] == [p.name for p in written.pngs]
    for k in range(len(pdf)):
        image = pdf[k].render(scale=0.5).to_numpy().astype(float)
        assert image.std() > 8, f"page {k + 1} ({written.pages[k]}) is blank"
        assert f"page {k + 1}" in _text(pdf, k)
    png = plt_image(written.pngs[1])
    assert png.shape[1] > 1200 and png.std() > 0.05  # A4 landscape at 110 dpi, not blank
    runs_pages = [p for p in written.pages if p.startswith("run ")]
    assert len(runs_pages) == 4  # two J–V, two MPP
    assert written.pages[0] == "contents" and written.pages[-1] == "checklist missing"


def plt_image(path: Path) -> np.ndarray:
    from matplotlib.image import imread

    return imread(path)


def test_a_jv_page_has_its_plot_and_the_figures_of_merit_of_set_a(report, runs):
    written, _ = report
    pdf = pdfium.PdfDocument(written.pdf)
    run = load_run(runs["jv"][0])
    text = _text(pdf, _page(written, f"run {run.info['run_id']}"))
    expected = _expected_set_a()
    for direction in ("reverse", "forward"):
        r = run.results[direction]
        assert r["voc_V"] == pytest.approx(expected["voc_V"], abs=2e-3)
        assert r["jsc_mA_cm2"] == pytest.approx(expected["jsc_mA_cm2"], rel=5e-3)
        assert r["pce_pct"] == pytest.approx(expected["pce_pct"], rel=6e-3)
    # the table: heads and the reverse scan's values as printed
    assert "figures of merit reverse forward" in text
    rev = run.results["reverse"]
    assert f"Voc (V) {rev['voc_V']:.4f} {run.results['forward']['voc_V']:.4f}" in text
    assert f"PCE (%) {rev['pce_pct']:.3f}" in text
    assert f"{100 * rev['ff']:.2f}" in text
    assert "hysteresis index HI_PCE" in text
    # the plot (the procedure's own: both scans, labelled)
    assert "scan 0: reverse" in text and "scan 1: forward" in text and "Voltage (V)" in text
    # the details: the bench and the SMU's identity
    assert "simulated (in-process, sim://)" in text and "MODEL 2400" in text
    assert "clock virtual (simulated time" in text  # the default station runs on the virtual clock


def test_an_mpp_page_has_the_stability_table(report, runs):
    written, _ = report
    pdf = pdfium.PdfDocument(written.pdf)
    run = load_run(runs["mpp"][0])
    text = _text(pdf, _page(written, f"run {run.info['run_id']}"))
    assert "stability (pce_pct, interruptions masked)" in text
    assert "T80 (to 80 % of the initial value) not reached" in text
    assert f"settled PCE (%) {run.results['settled_pce_pct']:.3f}" in text
    # the tracked PCE sits at set A's maximum power (pvlib) within the tracker's dither
    assert run.results["settled_pce_pct"] == pytest.approx(_expected_set_a()["pce_pct"], rel=5e-3)
    assert "Stress time (h)" in text


def test_the_substrate_pages_have_the_map_the_boxes_and_every_pixel(report, runs):
    written, _ = report
    pdf = pdfium.PdfDocument(written.pdf)
    substrate = load_substrate(runs["substrate"])
    first = _page(written, f"substrate {substrate.substrate_id}")
    text = _text(pdf, first)
    assert "Substrate map" in text and "PCE (%)" in text and "8 pixels" in text
    table = _text(pdf, first + 1)
    assert "J–V curves overlaid" in table
    for name in "1234567":
        assert f"pixel {name} (reverse)" in table  # each measured pixel's curve in the legend
    assert "pixel 8" not in table  # no contact: no run, no curve
    assert "shunted" in table and "dead" in table and "skipped: no contact" in table
    # best: the pixel with the largest reverse PCE of the included ones, from the record's per-pixel results
    included = {n: p["results"]["reverse"]["pce_pct"] for n, p in substrate.pixels.items()
                if p["status"] == "completed" and n != "6"}
    best = max(included, key=included.get)
    assert f"best {included[best]:.2f} ({best})" in table
    median = statistics.median(included.values())
    assert f"median {median:.2f}" in table


def test_several_runs_of_one_sample_are_compared(report, runs):
    written, _ = report
    pdf = pdfium.PdfDocument(written.pdf)
    text = _text(pdf, _page(written, "sample test J-V compared"))
    assert "Sample test: 2 J–V runs compared" in text
    for path in runs["jv"]:
        run_id = load_run(path).info["run_id"]
        assert re.sub(r"^\d{8}T\d{6}Z_", "", run_id) in text
    assert "J–V curves overlaid" in text and "PCE (%)" in text and "FF (%)" in text
    # three rows: the first run's two directions and the second run's reverse scan
    assert text.count(" reverse ") >= 2 and " forward " in text
    stability = _text(pdf, _page(written, "sample test stability compared"))
    assert "Sample test: 2 stability runs overlaid" in stability and "Stress time (h)" in stability
    assert "PCE (%), tracked" in stability


def test_the_checklist_says_what_is_given_and_what_is_missing(report, runs):
    written, _ = report
    items = {(i.section, i.item): i for i in written.checklist}
    journal = {i.item: i for i in written.checklist if i.section == "journal"}
    # missing: nothing in the runs says it
    for item in ("spectral mismatch factor", "independent certification of the efficiency",
                 "EQE: integrated Jsc against the J–V Jsc"):
        assert journal[item].missing and f"journal: {item}" in written.missing
    # given by the first MPP run's ISOS fields, and said to be missing for the others
    mpp1 = load_run(runs["mpp"][0]).info["run_id"]
    area = journal["how the area was determined (mask / aperture and its size)"]
    assert area.value.startswith("laser-cut mask 0.049 cm², microscope (1 run)") and area.sources == (mpp1,)
    assert "not recorded for 10 of 11 runs" in area.value  # 2 J–V, 2 MPP and 7 pixel runs in the report
    stabilised = journal["stabilised output (MPP tracking or hold) and its duration"]
    settled = {f"{load_run(p).results['settled_pce_pct']:.2f} % settled" for p in runs["mpp"]}
    assert all(s in stabilised.value for s in settled) and "not stabilised by the drift criterion" in \
        stabilised.value
    assert set(stabilised.sources) == {load_run(p).info["run_id"] for p in runs["mpp"]}
    # devices: the cell "test" and the 7 measured pixels of QD-17; the spread of each device's best PCE
    devices = journal["number of devices measured (light J–V)"]
    assert devices.value.startswith("8: test, QD-17/1, QD-17/2")
    cell = [load_run(path).results for path in runs["jv"]]
    best = [max(r[d]["pce_pct"] for r in cell for d in ("reverse", "forward") if d in r)]
    for p in load_substrate(runs["substrate"]).pixels.values():
        values = [p["results"][d]["pce_pct"] for d in ("reverse", "forward")
                  if p.get("results") and p["results"].get(d, {}).get("pce_pct") is not None]
        if values:
            best.append(max(values))
    stats = journal["statistics over devices (best PCE of each)"].value
    assert f"mean {statistics.mean(best):.2f} ± {statistics.stdev(best):.2f} %" in stats
    assert f"over {len(best)} devices" in stats
    # the ISOS items of each MPP run: the one with the fields misses only the periodic J–V interval
    isos1 = [i for (section, _), i in items.items() if section == f"ISOS: {mpp1}"]
    assert [i.item for i in isos1 if i.missing] == ["J-V during ageing: interval"]
    assert next(i for i in isos1 if i.item == "protocol claimed").value == "ISOS-L-1"
    mpp2 = load_run(runs["mpp"][1]).info["run_id"]
    assert f"ISOS: {mpp2}: protocol claimed" in written.missing
    # in the PDF: the journal pages in red/black with the source named, the missing page listing them all
    pdf = pdfium.PdfDocument(written.pdf)
    journal_text = " ".join(_text(pdf, k) for k, t in enumerate(written.pages) if t.startswith("checklist journal"))
    assert "nphoton.2015.233" in journal_text and "MISSING" in journal_text
    missing_text = " ".join(_text(pdf, k) for k, t in enumerate(written.pages) if t.startswith("checklist missing"))
    assert f"{len(written.missing)} item(s)" in missing_text
    for gap in written.missing:
        assert gap in missing_text
    saved = json.loads((written.pdf.parent / "report.json").read_text())
    assert saved["missing"] == written.missing


def test_the_cli_resolves_run_ids_and_a_substrate_id_from_the_catalog(runs, tmp_path):
    run_id = load_run(runs["jv"][0]).info["run_id"]
    substrate_id = load_substrate(runs["substrate"]).substrate_id
    res = CliRunner().invoke(main, ["report", run_id, substrate_id, str(runs["jv"][0]), "--data", str(runs["out"]),
                                    "--out", str(tmp_path / "rep"), "--json"])  # the J–V twice: reported once
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    assert payload["pdf"] == str(tmp_path / "rep" / "report.pdf")
    assert payload["pages"][:4] == ["contents", f"run {run_id}", f"substrate {substrate_id}",
                                    f"substrate {substrate_id} pixels"]
    assert len(pdfium.PdfDocument(payload["pdf"])) == len(payload["pngs"])
    assert all(Path(p).is_file() for p in payload["pngs"])


def test_the_cli_prints_the_pdf_then_the_pngs(runs, tmp_path):
    res = CliRunner().invoke(main, ["report", str(runs["jv"][1]), "--out", str(tmp_path / "one")])
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0] == str(tmp_path / "one" / "report.pdf")
    assert [Path(x).name for x in lines[1:]] == sorted(p.name for p in (tmp_path / "one").glob("page-*.png"))
    assert "reporting checklist:" in res.stderr and "missing" in res.stderr


def test_an_unknown_reference_is_one_line_naming_it(runs, tmp_path):
    res = CliRunner().invoke(main, ["report", "no-such-run", "--data", str(runs["out"]), "--out",
                                    str(tmp_path / "x")])
    assert res.exit_code == 2
    assert "RUN = 'no-such-run': neither a run file, a .substrate.json record, a run id nor a substrate id" in \
        res.stderr
    assert not (tmp_path / "x").exists()


def test_two_substrates_of_one_sample_are_compared(tmp_path):
    out = tmp_path / "runs"
    records = []
    for pixels in ("1,2", "1,2,3"):
        res = CliRunner().invoke(main, ["run", "jv", "--pixels", pixels, "--station",
                                        str(REPO / "stations" / "substrate-bench.yaml"), "--out", str(out),
                                        "--sample", "QD-20", "--json", "--no-plot"])
        assert res.exit_code == 0, res.output
        records.append(json.loads(res.stdout)["file"])
    written = write_report(resolve(records), tmp_path / "rep")
    assert written.pages.count("sample QD-20 substrates compared") == 1
    pdf = pdfium.PdfDocument(written.pdf)
    text = _text(pdf, _page(written, "sample QD-20 substrates compared"))
    assert "Sample QD-20: 2 substrates compared" in text and "median PCE (%)" in text
    first, second = (load_substrate(r) for r in records)
    assert "2 of 2" in text and "3 of 3" in text  # pixel 3 is shunted but measured: in the statistics
    # the median reverse PCE of each substrate from its pixels' own results (statistics.median, not the summary)
    for sub in (first, second):
        median = statistics.median(p["results"]["reverse"]["pce_pct"] for p in sub.pixels.values())
        assert f"{median:.4g}" in text


def test_a_file_that_is_not_a_run_is_one_line_naming_it(tmp_path):
    bogus = tmp_path / "notes.h5"
    bogus.write_text("not HDF5")
    res = CliRunner().invoke(main, ["report", str(bogus), "--out", str(tmp_path / "x")])
    assert res.exit_code == 2
    assert res.stderr.startswith(f"error: RUN = '{bogus}': cannot read {bogus}: ")
    assert len(res.stderr.strip().splitlines()) == 1 and not (tmp_path / "x").exists()
