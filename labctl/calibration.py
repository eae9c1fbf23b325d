"""Responsivity tables of reference photodiodes: built-in typical curves and users' calibration certificates.

A table is a text file with two columns, wavelength in nm and responsivity in A/W (Methods ref. §3.1, §3.2)::

    # any number of comment lines: provenance, certificate number, date, ... (kept as provenance_text)
    wavelength_nm,responsivity_A_W        <- optional header line
    400,0.2135
    410,0.2201

Columns are separated by a comma or a tab. Every row is checked, and a bad row raises :class:`CalibrationError`
naming the file, the line, the value and what is allowed: a finite number, 150 ≤ λ ≤ 3000 nm, R > 0,
EQE = R·1239.842/λ ≤ 1 (a larger R is physically impossible), strictly increasing wavelengths, at least two
rows. Wavelengths in µm are refused with a hint (convert to nm). R = 0 is allowed only where a table is only
integrated, never divided by (``allow_zero=True``: a reference cell's spectral response for the mismatch
factor, which has no response below ~300 nm or above ~1200 nm); a reference photodiode's table, which labctl
divides by, needs R > 0 on every row.

Built-in names (files in ``labctl/data/``, see its README): ``si-818uv-typical`` (Si, 200–1100 nm) and
``ge-818ir-typical`` (Ge, 780–1800 nm). They are TYPICAL, MODELLED curves, not calibrations: real
measurements must load the detector's own certificate. Every table carries the SHA-256 of its file so a run
file can record exactly which calibration was used.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from importlib import resources
from os import PathLike
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray

from labctl.analysis.spectra import HC_OVER_Q_NM_V, FloatOrArray

#: built-in name → file in labctl/data/
BUILTIN_TABLES = {
    "si-818uv-typical": "si_818uv_typical.csv",
    "ge-818ir-typical": "ge_818ir_typical.csv",
}
MIN_WAVELENGTH_NM = 150.0
MAX_WAVELENGTH_NM = 3000.0
MAX_EQE = 1.0

_MICRON = re.compile(r"(µm|μm|(?<![a-z])um(?![a-z])|micron|micrometre|micrometer)", re.IGNORECASE)
_NOT_A_W = re.compile(r"((?<![a-z])ma[/_]w|%|(?<![a-z])(e?qe|ipce|pct|percent)(?![a-z]))", re.IGNORECASE)


class CalibrationError(ValueError):
    """A responsivity table that cannot be used; the message names the file and, for a row, the line."""

    def __init__(self, source: str, message: str, line: int | None = None) -> None:
        self.source = source
        self.line = line
        where = source if line is None else f"{source}, line {line}"
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True, eq=False)
class CalibrationTable:
    """A validated responsivity table (read-only arrays, wavelengths strictly increasing).

    ``sha256`` is the hex digest of the file's bytes; ``provenance_text`` its ``#`` comment lines.
    """

    name: str
    source_path: str
    sha256: str
    wavelength_nm: NDArray[np.float64]
    responsivity_A_W: NDArray[np.float64]
    provenance_text: str

    @property
    def is_builtin_typical(self) -> bool:
        """True for the built-in typical (modelled, uncalibrated) tables."""
        return self.name in BUILTIN_TABLES

    @property
    def range_nm(self) -> tuple[float, float]:
        """(first, last) wavelength of the table in nm."""
        return float(self.wavelength_nm[0]), float(self.wavelength_nm[-1])

    def metadata(self) -> dict[str, object]:
        """What a run file records about the calibration used."""
        lo, hi = self.range_nm
        return {
            "name": self.name,
            "source_path": self.source_path,
            "sha256": self.sha256,
            "wavelength_min_nm": lo,
            "wavelength_max_nm": hi,
            "points": int(self.wavelength_nm.size),
            "typical_not_calibrated": self.is_builtin_typical,
            "provenance": self.provenance_text,
        }


def _number(text: str, what: str, allowed: str, source: str, line: int) -> float:
    try:
        value = float(text)
    except ValueError:
        raise CalibrationError(source, f"{what} {text!r} is not a number; allowed: {allowed}", line) from None
    if not math.isfinite(value):
        raise CalibrationError(source, f"{what} {text!r} is not a finite number; allowed: {allowed}", line)
    return value


_WL_ALLOWED = f"a wavelength in nm, {MIN_WAVELENGTH_NM:g}–{MAX_WAVELENGTH_NM:g}"
_R_ALLOWED = "a responsivity in A/W, > 0 and at most EQE = 1 (λ[nm]/1239.842 A/W)"


def _check_header(fields: list[str], source: str, line: int) -> None:
    if _MICRON.search(fields[0]):
        raise CalibrationError(
            source, f"header {fields[0]!r} gives wavelengths in µm; the table must be in nm (multiply by 1000)", line
        )
    if _NOT_A_W.search(fields[1]):
        raise CalibrationError(
            source,
            f"header {fields[1]!r} is not a responsivity in A/W; convert the column to A/W "
            "(R = EQE·λ[nm]/1239.842, or mA/W ÷ 1000)",
            line,
        )


def parse_responsivity_text(
    text: str, source: str = "<text>", allow_zero: bool = False
) -> tuple[NDArray, NDArray, str]:
    """Parse and validate the text of a responsivity table; returns (wavelength_nm, responsivity_A_W, comments).

    ``source`` names the file in error messages. See the module docstring for the format and the rules;
    ``allow_zero`` accepts R = 0 (R ≥ 0 instead of R > 0) for tables that are only integrated.
    """
    comments: list[str] = []
    rows: list[tuple[int, float, float]] = []
    header_seen = False
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            comments.append(line[1:].strip())
            continue
        if ";" in line:
            raise CalibrationError(
                source, f"{line!r} uses ';' — separate the columns by a comma or a tab, with a decimal point", lineno
            )
        fields = [f.strip() for f in re.split(r"[,\t]", line)]
        while len(fields) > 2 and fields[-1] == "":
            fields.pop()
        if len(fields) != 2:
            hint = " (spaces do not separate columns)" if len(fields) == 1 and " " in line else ""
            raise CalibrationError(
                source,
                f"{line!r} has {len(fields)} column(s){hint}; allowed: exactly 2, wavelength_nm and "
                "responsivity_A_W, separated by a comma or a tab",
                lineno,
            )
        if not rows and not header_seen:
            try:
                float(fields[0])
            except ValueError:
                _check_header(fields, source, lineno)
                header_seen = True
                continue
        wl = _number(fields[0], "wavelength", _WL_ALLOWED, source, lineno)
        r = _number(fields[1], "responsivity", _R_ALLOWED, source, lineno)
        rows.append((lineno, wl, r))

    if len(rows) < 2:
        raise CalibrationError(
            source, f"needs at least 2 data rows (wavelength_nm, responsivity_A_W), found {len(rows)}"
        )
    wl_max = max(w for _, w, _ in rows)
    if 0 < wl_max <= 10.0:
        raise CalibrationError(
            source, f"wavelengths look like µm (largest {wl_max:g}); the table must be in nm (multiply by 1000)"
        )
    prev: tuple[int, float] | None = None
    for lineno, wl, r in rows:
        if not MIN_WAVELENGTH_NM <= wl <= MAX_WAVELENGTH_NM:
            raise CalibrationError(
                source, f"wavelength {wl:g} nm is outside the allowed range; allowed: {_WL_ALLOWED}", lineno
            )
        if not (r >= 0 if allow_zero else r > 0):
            raise CalibrationError(
                source, f"responsivity {r:g} A/W at {wl:g} nm is not allowed; must be {'>=' if allow_zero else '>'} 0",
                lineno)
        eqe = r * HC_OVER_Q_NM_V / wl
        if eqe > MAX_EQE:
            r_max = MAX_EQE * wl / HC_OVER_Q_NM_V
            raise CalibrationError(
                source,
                f"responsivity {r:g} A/W at {wl:g} nm means EQE = {eqe:.4g} > 1, which is physically impossible; "
                f"allowed: at most {r_max:.4g} A/W at this wavelength (is the column in mA/W, or λ not in nm?)",
                lineno,
            )
        if prev is not None and wl <= prev[1]:
            what = "repeats" if wl == prev[1] else "is smaller than"
            raise CalibrationError(
                source,
                f"wavelength {wl:g} nm {what} {prev[1]:g} nm on line {prev[0]}; "
                "wavelengths must strictly increase (no duplicates)",
                lineno,
            )
        prev = (lineno, wl)
    if allow_zero and not any(r > 0 for _, _, r in rows):
        raise CalibrationError(source, "every responsivity is 0; a table needs R > 0 somewhere")
    wavelength = np.array([w for _, w, _ in rows])
    responsivity = np.array([r for _, _, r in rows])
    return wavelength, responsivity, "\n".join(comments)


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def load_responsivity(path_or_name: str | PathLike[str], allow_zero: bool = False) -> CalibrationTable:
    """Load a responsivity table: a built-in name (:data:`BUILTIN_TABLES`) or the path of a certificate CSV.

    Returns a :class:`CalibrationTable` with the SHA-256 of the file. Raises :class:`CalibrationError` for a bad
    table and FileNotFoundError for a missing file. Methods ref. §3.2. ``allow_zero``: accept R = 0 rows, for a
    table that is only integrated (a reference cell's SR in the mismatch factor), never for one labctl divides by.
    """
    if isinstance(path_or_name, str) and path_or_name in BUILTIN_TABLES:
        resource = resources.files("labctl").joinpath("data").joinpath(BUILTIN_TABLES[path_or_name])
        data = resource.read_bytes()
        name, source = path_or_name, str(resource)
    else:
        path = Path(path_or_name)
        if not path.is_file():
            raise FileNotFoundError(
                f"no responsivity file {str(path)!r}; give a CSV path or one of the built-in tables "
                f"{', '.join(BUILTIN_TABLES)}"
            )
        data = path.read_bytes()
        name, source = path.stem, str(path.resolve())
    wavelength, responsivity, comments = parse_responsivity_text(_decode(data), source, allow_zero)
    wavelength.flags.writeable = False
    responsivity.flags.writeable = False
    return CalibrationTable(
        name=name,
        source_path=source,
        sha256=hashlib.sha256(data).hexdigest(),
        wavelength_nm=wavelength,
        responsivity_A_W=responsivity,
        provenance_text=comments,
    )


def responsivity_at(table: CalibrationTable, wavelength_nm: ArrayLike) -> FloatOrArray:
    """Responsivity in A/W at ``wavelength_nm``, linear interpolation in the table (Methods ref. §3.2).

    Raises :class:`CalibrationError` for any wavelength outside the table's range (no extrapolation).
    """
    wl = np.asarray(wavelength_nm, dtype=float)
    lo, hi = table.range_nm
    bad = ~((wl >= lo) & (wl <= hi))
    if np.any(bad):
        first = float(wl[bad].flat[0]) if wl.ndim else float(wl)
        raise CalibrationError(
            table.source_path,
            f"wavelength {first:g} nm is outside the range {lo:g}–{hi:g} nm of table '{table.name}' "
            f"(sha256 {table.sha256[:12]}…); no extrapolation — use a detector calibrated there",
        )
    r = np.interp(wl, table.wavelength_nm, table.responsivity_A_W)
    return float(r) if r.ndim == 0 else r


def load_spectrum(path: str | PathLike[str]) -> tuple[NDArray, NDArray]:
    """A light source's spectrum from a CSV of ``wavelength_nm, irradiance`` (any consistent unit, W/m²/nm
    typically; only its shape matters for the mismatch factor). ``#`` lines and one header line are skipped.
    Errors name the file, the line and the value."""
    source = str(path)
    try:
        text = _decode(Path(path).read_bytes())
    except OSError as exc:
        raise CalibrationError(source, f"cannot read: {exc.strerror}") from None
    rows: list[tuple[float, float]] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = [f.strip() for f in re.split(r"[,\t]", line)]
        if len(fields) != 2:
            raise CalibrationError(source, f"{line!r}: allowed exactly 2 columns, wavelength_nm and irradiance", lineno)
        if not rows:
            try:
                float(fields[0])
            except ValueError:
                continue  # header
        wl = _number(fields[0], "wavelength", _WL_ALLOWED, source, lineno)
        e = _number(fields[1], "irradiance", "a number >= 0", source, lineno)
        if e < 0:
            raise CalibrationError(source, f"irradiance {e:g} at {wl:g} nm is negative; allowed: >= 0", lineno)
        if rows and wl <= rows[-1][0]:
            raise CalibrationError(source, f"wavelength {wl:g} nm does not increase; wavelengths must increase",
                                   lineno)
        rows.append((wl, e))
    if len(rows) < 2:
        raise CalibrationError(source, f"needs at least 2 data rows, found {len(rows)}")
    return np.array([r[0] for r in rows]), np.array([r[1] for r in rows])
