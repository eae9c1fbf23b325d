"""ISOS stability protocols: presets that fill the protocol fields of a stability run, and the reporting checklist.

The ISOS consensus for perovskite stability testing (Khenkin et al., Nat. Energy 5, 35-49 (2020), Table 3 for what
to report, Table 5 for the figures; methods ref. §7.2, anchors ref. §4) names each test by its stress: ISOS-D
(dark storage), ISOS-L (light soaking), with a level 1/2/3 (ambient, elevated temperature, elevated temperature
and humidity) and an "I" suffix for an inert atmosphere. A stability procedure (``procedures.stability``) has one
text parameter per reporting field (:data:`FIELDS`, default empty) and ``preset``: choosing a preset fills its
protocol fields that were left empty (light, temperature, atmosphere, humidity) and refuses to start until the
fields it requires are given (:func:`apply_preset`: one line naming the missing keys, before any I/O). Every field
is stored with the run's parameters and flattened into its results (``isos_protocol``, ``isos_light_source``, ...:
:func:`catalog_fields`), so the catalog has them; :func:`checklist` is what ``labctl show`` prints.

The protocol details are the methods reference's recollection of the consensus (methods ref. §7.2: "details from
memory — verify"); the presets say what they fill, so a lab can check them against the paper.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from labctl.config import ConfigError

#: the reporting fields a stability run stores (parameter name → what the checklist calls it); ISOS Table 3
FIELDS: dict[str, str] = {
    "isos_light_source": "light source type (simulator / LED / outdoor)",
    "isos_light_intensity": "light intensity",
    "isos_light_spectrum": "light spectrum and filters",
    "isos_light_calibration": "light calibration (reference cell and certificate)",
    "isos_temperature": "device temperature (in shadow and/or under light)",
    "isos_temperature_sensor": "temperature sensor (type and place)",
    "isos_atmosphere": "atmosphere (air, glovebox, pouch, chamber)",
    "isos_humidity": "relative humidity (controlled or monitored)",
    "isos_encapsulation": "encapsulation (materials, edge sealant)",
    "isos_area_method": "active area, how it was determined (mask, aperture)",
}


@dataclass(frozen=True)
class Preset:
    """One ISOS protocol: what it fixes (``fills``: field → value, used where the field is empty), the fields the
    operator must give (``requires``), and whether the stress is under light (``light``)."""

    name: str
    description: str
    light: bool
    fills: Mapping[str, str] = field(default_factory=dict)
    requires: tuple[str, ...] = ()


_LIGHT_REQUIRED = ("isos_light_source", "isos_light_calibration", "isos_temperature", "isos_temperature_sensor",
                   "isos_encapsulation", "isos_humidity")
_DARK_REQUIRED = ("isos_temperature", "isos_temperature_sensor", "isos_encapsulation", "isos_humidity")
_ONE_SUN = {"isos_light_intensity": "1 sun (1000 W/m², AM1.5G equivalent)"}
_AIR, _INERT = {"isos_atmosphere": "ambient air"}, {"isos_atmosphere": "inert (N2 or Ar)"}


def _preset(name: str, description: str, light: bool, fills: Mapping[str, str], extra: tuple[str, ...] = ()
            ) -> Preset:
    required = (_LIGHT_REQUIRED if light else _DARK_REQUIRED) + extra
    return Preset(name, description, light, dict(fills), tuple(dict.fromkeys(required)))


#: the presets, by name (methods ref. §7.2; anchors ref. §4)
PRESETS: dict[str, Preset] = {p.name: p for p in (
    _preset("ISOS-D-1", "dark storage, ambient temperature and humidity", False,
            {**_AIR, "isos_light_intensity": "dark", "isos_temperature": "ambient"}),
    _preset("ISOS-D-1I", "dark storage, ambient temperature, inert atmosphere", False,
            {**_INERT, "isos_light_intensity": "dark", "isos_temperature": "ambient"}),
    _preset("ISOS-D-2", "dark storage at elevated temperature (65 or 85 °C)", False,
            {**_AIR, "isos_light_intensity": "dark"}),
    _preset("ISOS-D-2I", "dark storage at elevated temperature (65 or 85 °C), inert atmosphere", False,
            {**_INERT, "isos_light_intensity": "dark"}),
    _preset("ISOS-D-3", "damp heat: elevated temperature (65 or 85 °C) and 85 % RH, dark", False,
            {**_AIR, "isos_light_intensity": "dark", "isos_humidity": "85 % RH (controlled)"}),
    _preset("ISOS-L-1", "light soaking at 1 sun, ambient temperature and humidity", True,
            {**_AIR, **_ONE_SUN}),
    _preset("ISOS-L-1I", "light soaking at 1 sun, ambient temperature, inert atmosphere", True,
            {**_INERT, **_ONE_SUN, "isos_humidity": "inert atmosphere (RH not applicable)"}),
    _preset("ISOS-L-2", "light soaking at 1 sun at elevated temperature (65 or 85 °C)", True,
            {**_AIR, **_ONE_SUN}),
    _preset("ISOS-L-2I", "light soaking at 1 sun at elevated temperature (65 or 85 °C), inert atmosphere", True,
            {**_INERT, **_ONE_SUN, "isos_humidity": "inert atmosphere (RH not applicable)"}),
    _preset("ISOS-L-3", "light soaking at 1 sun, elevated temperature and controlled humidity (about 50 % RH)", True,
            {**_AIR, **_ONE_SUN, "isos_humidity": "50 % RH (controlled)"}),
)}


def _given(parameters: Mapping[str, Any], name: str) -> str:
    value = parameters.get(name)
    return "" if value is None else str(value).strip()


def apply_preset(parameters: Mapping[str, Any], *, light: bool) -> dict[str, str]:
    """The ISOS fields with ``parameters['preset']``'s protocol fields filled where empty.

    Raises :class:`ConfigError` (one line) for an unknown preset, a preset whose light condition the run does not
    meet (``light``: the run's light is on), or when a field the preset requires is still empty (naming every
    missing key). No preset (``""``): the fields as given. No I/O."""
    name = _given(parameters, "preset")
    fields = {key: _given(parameters, key) for key in FIELDS}
    if not name:
        return fields
    preset = PRESETS.get(name.upper())
    if preset is None:
        raise ConfigError(f"parameter preset = {name!r}: allowed {', '.join(PRESETS)} (or empty for none)")
    if preset.light != bool(light):
        raise ConfigError(f"parameter preset = {preset.name}: a {'light' if preset.light else 'dark'} protocol "
                          f"({preset.description}) but light = {str(bool(light)).lower()}; allowed: light = "
                          f"{str(preset.light).lower()} with this preset")
    for key, value in preset.fills.items():
        fields[key] = fields[key] or value
    missing = [key for key in preset.requires if not fields[key]]
    if missing:
        raise ConfigError(f"parameter preset = {preset.name}: the ISOS reporting fields {', '.join(missing)} are "
                          f"required; give them with --set KEY=VALUE (e.g. --set {missing[0]}=...)")
    return fields


def catalog_fields(parameters: Mapping[str, Any]) -> dict[str, str]:
    """What a stability run adds to its results (and so to the catalog): ``isos_protocol`` (the preset, if any)
    and every non-empty ISOS field."""
    out = {"isos_protocol": _given(parameters, "preset").upper()} if _given(parameters, "preset") else {}
    out.update({key: _given(parameters, key) for key in FIELDS if _given(parameters, key)})
    return out


def _bias(parameters: Mapping[str, Any], procedure: str) -> str | None:
    if procedure == "mpp":
        return "MPP (tracked)"
    bias = _given(parameters, "bias").lower()
    return {"oc": "open circuit (OC)", "sc": "short circuit (SC)"}.get(bias, f"constant voltage {bias} V" if bias
                                                                      else None)


def _smu(station: Mapping[str, Any] | None) -> str | None:
    instruments = (station or {}).get("instruments") or {}
    smu = instruments.get("smu") if isinstance(instruments, Mapping) else None
    return str(smu.get("driver")) if isinstance(smu, Mapping) and smu.get("driver") else None


def checklist(parameters: Mapping[str, Any], station: Mapping[str, Any] | None = None,
              procedure: str = "") -> list[tuple[str, str | None]]:
    """The ISOS reporting checklist (Table 3 of the consensus; anchors ref. §4) filled from a run's
    ``parameters`` (as stored in its file), its ``station`` (the snapshot dict of the run file) and its
    ``procedure`` name: (item, value) for each item, value None when the run does not say."""

    def given(name: str) -> str | None:
        return _given(parameters, name) or None

    def number(name: str, unit: str) -> str | None:
        value = parameters.get(name)
        return None if value in (None, "") else f"{value:g} {unit}" if isinstance(value, float) else f"{value} {unit}"

    preset = given("preset")
    items: list[tuple[str, str | None]] = [("protocol claimed", preset.upper() if preset else None)]
    items += [(label, given(key)) for key, label in FIELDS.items()]
    items.append(("electrical bias", _bias(parameters, procedure)))
    items.append(("active area", number("area_cm2", "cm²")))
    items.append(("stress duration", number("duration_h", "h")))
    interval = parameters.get("jv_interval_min")
    if interval in (None, "", 0, 0.0):
        items.append(("J-V during ageing: interval", None))
    else:
        items.append(("J-V during ageing: interval", f"every {interval:g} min"))
        scan = (f"{parameters.get('jv_direction', '?')}, {parameters.get('jv_start_V', '?')} to "
                f"{parameters.get('jv_stop_V', '?')} V, step {parameters.get('jv_step_V', '?')} V, "
                f"{parameters.get('jv_scan_rate_V_s', '?')} V/s, NPLC {parameters.get('nplc', '?')}")
        items.append(("J-V during ageing: scan settings", scan))
    if procedure == "mpp":
        items.append(("MPPT: tracking algorithm", given("algorithm")))
        dwell, step = parameters.get("dwell_s"), parameters.get("step_min_V")
        items.append(("MPPT: delay (dwell) time and step",
                      None if dwell in (None, "") else f"dwell {dwell} s, step {step} to "
                                                      f"{parameters.get('step_max_V')} V"))
        items.append(("MPPT: hardware", _smu(station)))
    return items


def missing(items: list[tuple[str, str | None]]) -> list[str]:
    """The checklist items without a value."""
    return [item for item, value in items if value is None]


def is_stability_run(parameters: Mapping[str, Any]) -> bool:
    """Whether a run's stored parameters are those of a stability run (they carry the ISOS fields)."""
    return "preset" in parameters and all(key in parameters for key in FIELDS)


def checklist_lines(parameters: Mapping[str, Any], station: Mapping[str, Any] | None = None,
                    procedure: str = "") -> list[str]:
    """The checklist as printed by ``labctl show``: one line per item (``MISSING`` where the run does not say),
    then one line listing what is missing (or that nothing is)."""
    items = checklist(parameters, station, procedure)
    width = max(len(item) for item, _ in items)
    lines = ["ISOS reporting checklist (Khenkin et al. 2020, Table 3):"]
    lines += [f"  {item:<{width}}  {value if value is not None else 'MISSING'}" for item, value in items]
    gaps = missing(items)
    lines.append(f"  missing ({len(gaps)}): {', '.join(gaps)}" if gaps else "  missing: none")
    return lines
