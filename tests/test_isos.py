"""ISOS presets and the reporting checklist (labctl.isos) through the CLI of a stability run.

What a preset must refuse and fill follows the ISOS consensus as summarised in the methods reference §7.2 and the
anchors reference §4 (Khenkin et al., Nat. Energy 5, 35 (2020), Table 3): L presets are under light, D presets in
the dark, an "I" suffix means an inert atmosphere; the run must not start until its reporting fields are given.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from labctl.catalog import Catalog, catalog_url
from labctl.cli import main
from labctl.isos import FIELDS, PRESETS, checklist, missing
from labctl.storage import load_run
from procedures.hold import HoldProcedure
from procedures.mpp import MPPProcedure
from tests.helpers import REPO

STATION = str(REPO / "station.yaml")
REQUIRED_L = {"isos_light_source": "LED solar simulator (Wavelabs Sinus-70, class AAA)",
              "isos_light_calibration": "KG5-filtered Si reference cell, cert. 2026-01",
              "isos_temperature": "45 °C under light",
              "isos_temperature_sensor": "Pt100 on the substrate",
              "isos_encapsulation": "glass-glass, butyl edge sealant"}


def _run(tmp_path, procedure: str, *settings: str):
    args = ["run", procedure, "--station", STATION, "--out", str(tmp_path / "runs"), "--json", "--no-plot"]
    for item in settings:
        args += ["--set", item]
    res = CliRunner().invoke(main, args, catch_exceptions=False)
    return res, (json.loads(res.stdout) if res.stdout.strip().startswith("{") else None)


def test_every_reporting_field_is_a_parameter_of_every_stability_procedure():
    for cls in (HoldProcedure, MPPProcedure):
        params = cls()._parameters
        assert "preset" in params and set(FIELDS) <= set(params)
        assert all(params[name].default == "" for name in FIELDS)


def test_a_preset_refuses_to_start_until_its_reporting_fields_are_given(tmp_path):
    res, out = _run(tmp_path, "mpp", "preset=ISOS-L-1I", "duration_h=0.01")
    assert res.exit_code == 2, res.output
    (line,) = res.stderr.strip().splitlines()
    assert "parameter preset = ISOS-L-1I" in line
    for key in ("isos_light_source", "isos_light_calibration", "isos_temperature", "isos_temperature_sensor",
                "isos_encapsulation"):
        assert key in line, key
    assert "isos_atmosphere" not in line and "isos_humidity" not in line  # the inert preset fills those
    assert out["status"] == "error" and not list(tmp_path.rglob("*.h5"))
    # one field given: the others are still named, that one no longer
    res, _ = _run(tmp_path, "mpp", "preset=ISOS-L-1I", "duration_h=0.01",
                  f"isos_light_source={REQUIRED_L['isos_light_source']}")
    assert res.exit_code == 2 and "isos_light_source" not in res.stderr and "isos_encapsulation" in res.stderr


@pytest.mark.parametrize(("settings", "fragment"), [
    (["preset=ISOS-Z-9"], "parameter preset = 'ISOS-Z-9': allowed ISOS-D-1, "),
    (["preset=ISOS-D-1", "light=true"], "parameter preset = ISOS-D-1: a dark protocol"),
    (["preset=ISOS-L-2", "light=false"], "parameter preset = ISOS-L-2: a light protocol"),
])
def test_a_preset_that_does_not_fit_the_run_is_refused(tmp_path, settings, fragment):
    res, _ = _run(tmp_path, "hold", "duration_h=0.01", *settings)
    assert res.exit_code == 2, res.output
    assert len(res.stderr.strip().splitlines()) == 1 and fragment in res.stderr, res.stderr


def test_a_preset_run_stores_its_fields_in_the_file_and_the_catalog_and_show_prints_the_checklist(tmp_path):
    given = [f"{k}={v}" for k, v in REQUIRED_L.items()]
    res, out = _run(tmp_path, "hold", "preset=isos-l-1i", "duration_h=0.01", "interval_s=6", *given)
    assert res.exit_code == 0, res.output
    run = load_run(out["file"])
    assert run.parameters["preset"] == "ISOS-L-1I"
    assert run.parameters["isos_atmosphere"] == PRESETS["ISOS-L-1I"].fills["isos_atmosphere"]  # filled
    assert run.parameters["isos_light_source"] == REQUIRED_L["isos_light_source"]  # given
    results = out["results"]
    assert results["isos_protocol"] == "ISOS-L-1I" and results["isos_encapsulation"] == REQUIRED_L[
        "isos_encapsulation"]
    with Catalog(catalog_url(None, tmp_path / "runs")) as catalog:
        (entry,) = catalog.runs()
    assert entry.results["isos_protocol"] == "ISOS-L-1I"
    assert entry.results["isos_temperature_sensor"] == "Pt100 on the substrate"

    shown = CliRunner().invoke(main, ["show", out["file"]], catch_exceptions=False)
    assert shown.exit_code == 0, shown.output
    text = shown.output
    assert "ISOS reporting checklist" in text
    lines = {line.split("  ")[1].strip(): line for line in text.splitlines() if line.startswith("  ") and "  " in
             line[2:]}
    assert "ISOS-L-1I" in lines["protocol claimed"]
    assert "open circuit (OC)" in lines["electrical bias"]
    assert "MISSING" in lines["light spectrum and filters"]  # not given, not filled by the preset
    assert "MISSING" in lines["J-V during ageing: interval"]
    (summary,) = [line for line in text.splitlines() if line.strip().startswith("missing (")]
    assert "light spectrum and filters" in summary and "J-V during ageing: interval" in summary
    assert "protocol claimed" not in summary


def test_the_checklist_of_an_mpp_run_names_the_tracking_settings():
    params = {name: getattr(MPPProcedure(), name) for name in MPPProcedure()._parameters}
    items = dict(checklist(params, {"instruments": {"smu": {"driver": "keithley2400"}}}, "mpp"))
    assert items["MPPT: tracking algorithm"] == "perturb-observe"
    assert items["MPPT: hardware"] == "keithley2400"
    assert items["electrical bias"] == "MPP (tracked)"
    assert "protocol claimed" in missing(list(items.items()))
