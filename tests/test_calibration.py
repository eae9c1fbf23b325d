"""Responsivity tables: built-in typical curves, users' certificates and their validation (Methods ref. §3.2)."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labctl.analysis.spectra import responsivity_to_eqe
from labctl.calibration import (
    BUILTIN_TABLES,
    CalibrationError,
    CalibrationTable,
    load_responsivity,
    parse_responsivity_text,
    responsivity_at,
)

DATA = Path(__file__).resolve().parents[1] / "labctl" / "data"


def write(tmp_path: Path, text: str, name: str = "cert.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- built-in typical tables -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, lo, hi, peak_window_nm, peak_A_W",
    [("si-818uv-typical", 200, 1100, (900, 960), (0.45, 0.55)),
     ("ge-818ir-typical", 780, 1800, (1500, 1580), (0.80, 0.90))],
)
def test_builtin_tables(name, lo, hi, peak_window_nm, peak_A_W):
    t = load_responsivity(name)
    assert isinstance(t, CalibrationTable) and t.name == name and t.is_builtin_typical
    assert t.range_nm == (lo, hi)
    k = int(np.argmax(t.responsivity_A_W))
    assert peak_window_nm[0] <= t.wavelength_nm[k] <= peak_window_nm[1]
    assert peak_A_W[0] <= t.responsivity_A_W[k] <= peak_A_W[1]
    assert np.all(responsivity_to_eqe(t.wavelength_nm, t.responsivity_A_W) <= 1.0)
    path = DATA / BUILTIN_TABLES[name]
    assert t.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert Path(t.source_path) == path
    assert "NOT A CALIBRATION" in t.provenance_text and "make_detector_tables.py" in t.provenance_text
    meta = t.metadata()
    assert meta["typical_not_calibrated"] is True and meta["sha256"] == t.sha256
    with pytest.raises(ValueError):
        t.responsivity_A_W[0] = 1.0  # read-only


def test_builtin_tables_are_what_the_generator_script_produces(monkeypatch):
    spec = importlib.util.spec_from_file_location("make_detector_tables", DATA / "make_detector_tables.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    assert {m.name: m.filename for m in module.MODELS} == BUILTIN_TABLES
    for model in module.MODELS:
        wl, r, comments = parse_responsivity_text(module.render_csv(model))
        t = load_responsivity(model.name)
        np.testing.assert_array_equal(wl, t.wavelength_nm)
        np.testing.assert_allclose(r, t.responsivity_A_W, atol=2e-5)
        assert comments.splitlines()[0] == t.provenance_text.splitlines()[0]


def test_si_and_ge_overlap_region_exists():
    si, ge = load_responsivity("si-818uv-typical"), load_responsivity("ge-818ir-typical")
    assert ge.range_nm[0] <= 800 and si.range_nm[1] >= 1000  # the 800–1000 nm overlap of Methods ref. §3.2


# --- users' certificates: accepted variants ----------------------------------------------------------
def test_certificate_with_comments_header_and_tabs(tmp_path):
    text = "# Cert. no. 123, detector SN 4567\n# 23 °C\nWavelength (nm)\tResponsivity (A/W)\n400\t0.21\n500\t0.30\n"
    path = write(tmp_path, text, "sn4567.csv")
    t = load_responsivity(path)
    assert t.name == "sn4567" and not t.is_builtin_typical
    np.testing.assert_array_equal(t.wavelength_nm, [400, 500])
    np.testing.assert_array_equal(t.responsivity_A_W, [0.21, 0.30])
    assert t.provenance_text == "Cert. no. 123, detector SN 4567\n23 °C"
    assert t.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert t.source_path == str(path.resolve())


def test_certificate_without_header_with_bom_crlf_and_trailing_comma(tmp_path):
    path = tmp_path / "c.csv"
    path.write_bytes("\ufeff400,0.21,\r\n\r\n500, 0.30\r\n".encode())
    t = load_responsivity(str(path))
    np.testing.assert_array_equal(t.responsivity_A_W, [0.21, 0.30])
    assert t.provenance_text == ""


def test_sha256_changes_with_any_byte(tmp_path):
    a = load_responsivity(write(tmp_path, "400,0.21\n500,0.30\n", "a.csv"))
    b = load_responsivity(write(tmp_path, "400,0.21\n500,0.31\n", "b.csv"))
    c = load_responsivity(write(tmp_path, "# other comment\n400,0.21\n500,0.30\n", "c.csv"))
    assert len({a.sha256, b.sha256, c.sha256}) == 3


def test_missing_file_names_the_builtin_tables(tmp_path):
    with pytest.raises(FileNotFoundError, match="si-818uv-typical"):
        load_responsivity(tmp_path / "nope.csv")
    with pytest.raises(FileNotFoundError, match="no responsivity file"):
        load_responsivity("si-818uv-typo")


# --- bad rows: one test per kind ---------------------------------------------------------------------
def bad(tmp_path: Path, text: str) -> CalibrationError:
    path = write(tmp_path, text, "bad_cert.csv")
    with pytest.raises(CalibrationError) as info:
        load_responsivity(path)
    assert "bad_cert.csv" in str(info.value)
    return info.value


def test_non_numeric_value(tmp_path):
    err = bad(tmp_path, "wavelength_nm,responsivity_A_W\n400,0.21\n500,abc\n")
    assert err.line == 3 and "line 3" in str(err) and "'abc'" in str(err) and "not a number" in str(err)
    assert "A/W" in str(err)


def test_non_numeric_wavelength_after_data(tmp_path):
    err = bad(tmp_path, "400,0.21\nfive hundred,0.30\n")
    assert err.line == 2 and "'five hundred'" in str(err) and "150–3000" in str(err)


def test_non_finite_value(tmp_path):
    err = bad(tmp_path, "400,0.21\n500,nan\n")
    assert err.line == 2 and "'nan'" in str(err) and "finite" in str(err)


@pytest.mark.parametrize("value", ["-0.05", "0", "0.0"])
def test_non_positive_responsivity(tmp_path, value):
    err = bad(tmp_path, f"# c\n400,0.21\n500,{value}\n600,0.3\n")
    assert err.line == 3 and f"responsivity {float(value):g} A/W at 500 nm" in str(err) and "> 0" in str(err)


def test_zeros_at_the_ends_are_allowed_only_for_tables_that_are_only_integrated(tmp_path):
    """A reference cell's SR for the mismatch factor has no response below ~300 nm and above ~1200 nm: R = 0 rows
    are accepted with allow_zero; a reference photodiode's table (labctl divides by it) still needs R > 0."""
    path = write(tmp_path, "280,0\n300,0.05\n700,0.45\n1200,0\n1250,0\n", "ref_cell.csv")
    t = load_responsivity(path, allow_zero=True)
    np.testing.assert_array_equal(t.responsivity_A_W, [0, 0.05, 0.45, 0, 0])
    with pytest.raises(CalibrationError, match=r"line 1: responsivity 0 A/W at 280 nm .* must be > 0"):
        load_responsivity(path)
    with pytest.raises(CalibrationError, match=r"responsivity -0.01 A/W at 300 nm .* must be >= 0"):
        load_responsivity(write(tmp_path, "280,0\n300,-0.01\n", "neg.csv"), allow_zero=True)
    with pytest.raises(CalibrationError, match="every responsivity is 0"):
        load_responsivity(write(tmp_path, "280,0\n300,0\n", "zeros.csv"), allow_zero=True)


def test_responsivity_above_eqe_one(tmp_path):
    # at 500 nm EQE = 1 is 0.4033 A/W
    err = bad(tmp_path, "400,0.21\n500,0.45\n")
    msg = str(err)
    assert err.line == 2 and "0.45 A/W at 500 nm" in msg and "EQE = 1.116" in msg and "physically impossible" in msg
    assert "at most 0.4033 A/W" in msg


def test_eqe_exactly_one_is_allowed(tmp_path):
    r = 500 / 1239.8419843320025
    t = load_responsivity(write(tmp_path, f"400,0.2\n500,{r!r}\n"))
    assert t.responsivity_A_W[-1] == r


def test_duplicate_wavelength(tmp_path):
    err = bad(tmp_path, "400,0.21\n500,0.30\n500,0.31\n")
    assert err.line == 3 and "500 nm repeats 500 nm on line 2" in str(err) and "strictly increase" in str(err)


def test_non_monotonic_wavelength(tmp_path):
    err = bad(tmp_path, "400,0.21\n500,0.30\n450,0.25\n")
    assert err.line == 3 and "450 nm is smaller than 500 nm on line 2" in str(err)


@pytest.mark.parametrize("text, found", [("400,0.21\n", 1), ("# only comments\n", 0), ("", 0),
                                         ("wavelength_nm,responsivity_A_W\n", 0)])
def test_fewer_than_two_rows(tmp_path, text, found):
    err = bad(tmp_path, text)
    assert err.line is None and "at least 2 data rows" in str(err) and f"found {found}" in str(err)


@pytest.mark.parametrize("wl", ["100", "3500"])
def test_wavelength_outside_allowed_range(tmp_path, wl):
    text = f"400,0.2\n{wl},0.01\n" if wl == "3500" else f"{wl},0.01\n400,0.2\n"
    err = bad(tmp_path, text)
    assert f"wavelength {wl} nm is outside" in str(err) and "150–3000" in str(err)
    assert err.line == (2 if wl == "3500" else 1)


def test_wavelengths_in_micrometres(tmp_path):
    err = bad(tmp_path, "0.4,0.21\n0.5,0.30\n")
    assert "look like µm" in str(err) and "nm" in str(err)
    err = bad(tmp_path, "wavelength_um,responsivity_A_W\n0.4,0.21\n")
    assert err.line == 1 and "'wavelength_um'" in str(err) and "multiply by 1000" in str(err)


@pytest.mark.parametrize("header", ["wavelength_nm,EQE", "wavelength (nm),QE (%)", "nm,responsivity (mA/W)"])
def test_header_of_a_column_that_is_not_A_per_W(tmp_path, header):
    err = bad(tmp_path, f"{header}\n400,0.21\n500,0.3\n")
    assert err.line == 1 and "not a responsivity in A/W" in str(err)


@pytest.mark.parametrize("row, columns", [("500 0.30", 1), ("500,0.30,0.002", 3)])
def test_wrong_number_of_columns(tmp_path, row, columns):
    err = bad(tmp_path, f"400,0.21\n{row}\n")
    assert err.line == 2 and f"has {columns} column(s)" in str(err) and "comma or a tab" in str(err)
    if columns == 1:
        assert "spaces do not separate columns" in str(err)


def test_semicolon_separated_decimal_comma(tmp_path):
    err = bad(tmp_path, "400;0,21\n500;0,30\n")
    assert err.line == 1 and "';'" in str(err) and "decimal point" in str(err)


# --- interpolation -----------------------------------------------------------------------------------
def test_responsivity_at_interpolates_and_refuses_to_extrapolate(tmp_path):
    t = load_responsivity(write(tmp_path, "400,0.20\n500,0.30\n600,0.36\n"))
    assert responsivity_at(t, 450.0) == pytest.approx(0.25)
    assert responsivity_at(t, 400.0) == 0.20 and responsivity_at(t, 600.0) == 0.36
    np.testing.assert_allclose(responsivity_at(t, [410.0, 550.0]), [0.21, 0.33])
    with pytest.raises(CalibrationError, match=r"650 nm is outside the range 400–600 nm of table 'cert'"):
        responsivity_at(t, 650.0)
    with pytest.raises(CalibrationError, match="399.9 nm"):
        responsivity_at(t, [450.0, 399.9])
    with pytest.raises(CalibrationError, match="outside"):
        responsivity_at(t, float("nan"))


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.floats(150.0, 3000.0), min_size=2, max_size=30, unique=True), st.data())
def test_valid_tables_round_trip(tmp_path, wavelengths, data):
    wl = np.sort(np.array(wavelengths))
    eqe = np.array(data.draw(st.lists(st.floats(1e-6, 1.0), min_size=wl.size, max_size=wl.size)))
    r = eqe * wl / 1239.8419843320025 * (1 - 1e-12)
    text = "".join(f"{float(w)!r},{float(x)!r}\n" for w, x in zip(wl, r, strict=True))
    t = load_responsivity(write(tmp_path, text, "rt.csv"))
    np.testing.assert_array_equal(t.wavelength_nm, wl)
    np.testing.assert_array_equal(t.responsivity_A_W, r)
    np.testing.assert_array_equal(responsivity_at(t, wl), r)
