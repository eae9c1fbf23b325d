"""station.yaml: schema, loading and human-readable errors (pydantic v2, unknown keys are errors).

Every error names the key path, the value and what is allowed, and is raised before any instrument is touched.
Reference: docs/station-yaml.md.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator


class ConfigError(ValueError):
    """A station.yaml or a parameter is wrong; the message is meant for the operator, one line per problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class StationInfo(_Strict):
    name: str = "station"
    operator: str = "operator"
    data_dir: str = Field("runs", description="where run files go, relative to the station file's folder")
    catalog: str | None = Field(None, description="SQLAlchemy URL of the run catalog (default: SQLite "
                                "<data folder>/catalog.sqlite); e.g. postgresql+psycopg://... shared by benches")

    @field_validator("catalog")
    @classmethod
    def _catalog_url(cls, value: str | None) -> str | None:
        """A SQLAlchemy URL without a password: the station (with this URL) is stored in every run file."""
        if value is None:
            return None
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError("not a database URL; allowed: a SQLAlchemy URL such as sqlite:////data/catalog.sqlite "
                             "or postgresql+psycopg://user@host/labctl") from None
        if url.password:
            raise ValueError("holds a password, which would be stored in every run file; give it through "
                             "~/.pgpass or $PGPASSWORD instead") from None
        return value

    watchdog_s: float = Field(600.0, ge=0, le=604_800,
                              description="a run with no document nor checkpoint for this long (wall s) is forced "
                              "to its safe state and fails; 0: no watchdog")
    auto_resume: bool = Field(False, description="`labctl resume --interrupted` resumes this station's interrupted "
                              "runs (e.g. from a systemd unit at boot)")
    layout: str | None = Field(None, description="the substrate layout `labctl run --pixels` uses without --layout "
                               "(a name under layouts:); null: the only layout")


class RecoveryConfig(_Strict):
    """How a run mends transport faults (labctl.recovery): attempts per failing call and the back-off."""

    attempts: int = Field(5, ge=0, le=1000, description="recoveries per failing call; 0: fail at the first fault")
    backoff_s: float = Field(1.0, ge=0, le=3600, description="wait before the first reconnection (s, station clock)")
    backoff_factor: float = Field(2.0, ge=1, le=10, description="each further wait is this many times the last")
    backoff_max_s: float = Field(60.0, ge=0, le=3600, description="longest wait (s)")


SUSPENDER_SIGNALS = ("irradiance_W_m2", "temperature_K")


class SuspenderConfig(_Strict):
    """A threshold suspender (labctl.suspenders): hold the run while a monitored signal is out of its band.

    One of ``suspend_below`` / ``suspend_above``; the matching resume threshold (``resume_above`` with
    ``suspend_below``, ``resume_below`` with ``suspend_above``; default: the suspend threshold) gives the
    hysteresis, and the signal must stay back in band for ``settle_s`` before the run goes on."""

    name: str = Field(min_length=1)
    role: str = Field(min_length=1, description="the instrument that reads the signal")
    signal: Literal["irradiance_W_m2", "temperature_K"]
    suspend_below: float | None = None
    suspend_above: float | None = None
    resume_above: float | None = None
    resume_below: float | None = None
    settle_s: float = Field(0.0, ge=0, le=86_400, description="time back in band before resuming (s, station clock)")
    poll_s: float = Field(10.0, gt=0, le=86_400, description="the signal is read at most this often (s)")
    isc_at_1000_W_m2_A: float | None = Field(None, gt=0, description="irradiance from a source meter at short "
                                             "circuit: its Isc (A) at 1000 W/m²")

    @model_validator(mode="after")
    def _band(self) -> SuspenderConfig:
        if (self.suspend_below is None) == (self.suspend_above is None):
            raise ValueError(f"suspender {self.name!r}: give exactly one of suspend_below, suspend_above")
        if self.suspend_below is not None:
            if self.resume_below is not None:
                raise ValueError(f"suspender {self.name!r}: resume_below = {self.resume_below:g} goes with "
                                 "suspend_above; with suspend_below give resume_above")
            if self.resume_above is not None and self.resume_above < self.suspend_below:
                raise ValueError(f"suspender {self.name!r}: resume_above = {self.resume_above:g} is below "
                                 f"suspend_below = {self.suspend_below:g}; allowed: >= suspend_below")
        else:
            if self.resume_above is not None:
                raise ValueError(f"suspender {self.name!r}: resume_above = {self.resume_above:g} goes with "
                                 "suspend_below; with suspend_above give resume_below")
            assert self.suspend_above is not None
            if self.resume_below is not None and self.resume_below > self.suspend_above:
                raise ValueError(f"suspender {self.name!r}: resume_below = {self.resume_below:g} is above "
                                 f"suspend_above = {self.suspend_above:g}; allowed: <= suspend_above")
        if self.signal == "irradiance_W_m2" and self.isc_at_1000_W_m2_A is None:
            raise ValueError(f"suspender {self.name!r}: signal irradiance_W_m2 needs isc_at_1000_W_m2_A (the "
                             "reference cell's short-circuit current at 1000 W/m², A)")
        return self


ALERT_EVENTS = ("failed", "suspended", "resumed", "completed", "aborted")


class AlertsConfig(_Strict):
    """Who hears about a run (labctl.alerts): a command (the event as JSON on stdin) and/or a webhook (POST)."""

    command: list[str] | None = Field(None, min_length=1, description="argv of a command run per event")
    webhook: str | None = Field(None, description="http(s) URL the event is POSTed to as JSON")
    events: list[Literal["failed", "suspended", "resumed", "completed", "aborted"]] = Field(
        default_factory=lambda: ["failed", "suspended", "resumed", "completed", "aborted"])
    timeout_s: float = Field(10.0, gt=0, le=600, description="longest time one alert may take (s)")

    @field_validator("webhook")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("not an http:// or https:// URL")
        return value


class Limits(_Strict):
    """Device-safety limits of the cells on this bench: procedures may never exceed them."""

    voltage_V: float = Field(2.0, gt=0, description="max |source voltage| (V)")
    current_A: float = Field(0.1, gt=0, description="max |compliance current| (A)")


class SafeState(_Strict):
    """What 'safe' means for this instrument; applied on every exit path of every run."""

    output: Literal["off"] | None = None
    source_voltage_V: float | None = None
    shutter: Literal["closed"] | None = None


class InstrumentConfig(_Strict):
    """One instrument of the station: its driver (an instrument plug-in, :mod:`labctl.plugins`), its resource,
    connection overrides, limits, safe state and the driver's own ``settings``.

    Connection keys left out (or null) are the registration's :class:`~drivers.registration.ConnectionDefaults`
    (the instrument manual's framing), filled in here so the snapshot in a run file shows what was used.
    ``settings`` is validated by the registration's settings model (errors name
    ``instruments.<role>.settings.<key>``); after validation it holds that model's object (None when the driver
    has none).
    """

    driver: str
    resource: str = Field(description="VISA resource string, serial URL, or sim://<name> for the simulated bench")
    timeout_ms: int | None = Field(None, ge=100, le=600_000, description="null: the driver's default")
    read_termination: str | None = Field(None, description="null: the driver's default")
    write_termination: str | None = Field(None, description="null: the driver's default")
    baud_rate: int | None = Field(None, description="serial instruments only; null: the driver's default")
    limits: Limits | None = None
    safe_state: SafeState = Field(default_factory=SafeState)
    settings: Any = Field(None, validate_default=True, description="the driver's own keys (its settings model)")

    @model_validator(mode="before")
    @classmethod
    def _connection_defaults(cls, data: Any) -> Any:
        """Fill the connection keys left out (or null) from the driver's registration."""
        from labctl.plugins import instrument_registrations

        if not isinstance(data, dict):
            return data
        reg = instrument_registrations().get(data.get("driver")) if isinstance(data.get("driver"), str) else None
        if reg is None:
            return data  # the driver itself is refused below
        conn = reg.connection
        defaults = {"timeout_ms": conn.timeout_ms, "read_termination": conn.read_termination,
                    "write_termination": conn.write_termination, "baud_rate": conn.baud_rate}
        return {**data, **{key: value for key, value in defaults.items() if data.get(key) is None}}

    @field_validator("driver")
    @classmethod
    def _known_driver(cls, value: str) -> str:
        from labctl.plugins import instrument_problems, instrument_registrations

        regs = instrument_registrations()
        if value not in regs:
            problem = instrument_problems().get(value)
            if problem is not None:
                raise ValueError(f"the instrument plug-in is not available: {problem}")
            raise ValueError(f"unknown driver; allowed: {', '.join(sorted(regs))}")
        return value

    @field_validator("settings")
    @classmethod
    def _driver_settings(cls, value: Any, info: ValidationInfo) -> Any:
        """Validated by the driver's settings model (its errors keep their key paths under ``settings``)."""
        from labctl.plugins import instrument_registrations

        driver = info.data.get("driver")  # absent when the driver itself was refused
        reg = instrument_registrations().get(driver) if driver is not None else None
        if reg is None:
            return value
        if reg.settings is None:
            if value:
                raise ValueError(f"a {driver} takes no settings (allowed: leave 'settings' out)")
            return None
        if isinstance(value, reg.settings):
            return value
        if value is not None and not isinstance(value, dict):
            raise ValueError(f"expected a mapping of the {driver}'s settings, got {type(value).__name__}")
        return reg.settings.model_validate(value or {})

    @property
    def registration(self):  # noqa: ANN201 - drivers.registration.InstrumentRegistration
        """The registration of this instrument's driver."""
        from labctl.plugins import registration

        return registration(self.driver)

    @field_validator("resource")
    @classmethod
    def _sim_name_on_the_bench(cls, value: str, info: ValidationInfo) -> str:
        """``sim://<name>``: the name must be the simulated bench's instrument of this driver's kind (asked of
        the simulator, :mod:`labctl.simulators`)."""
        from labctl.plugins import instrument_registrations

        driver = info.data.get("driver")  # absent when the driver itself was refused
        reg = instrument_registrations().get(driver) if driver is not None else None
        if reg is not None and value.startswith("sim://"):
            problem = _simulator().resource_problem(reg, value.removeprefix("sim://"))
            if problem is not None:
                raise ValueError(problem)
        return value

    @field_validator("baud_rate")
    @classmethod
    def _baud(cls, value: int | None) -> int | None:
        allowed = (300, 600, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
        if value is not None and value not in allowed:
            raise ValueError(f"baud rate must be one of {allowed}")
        return value

    @model_validator(mode="after")
    def _limits_within_model(self) -> InstrumentConfig:
        model = getattr(self.registration.driver, "limits", None)
        if self.limits is not None and model is not None:
            if self.limits.voltage_V > model.voltage_max_V:
                raise ValueError(
                    f"limits.voltage_V = {self.limits.voltage_V} exceeds what a {self.driver} can source "
                    f"(allowed: 0 < voltage_V <= {model.voltage_max_V})"
                )
            if self.limits.current_A > model.current_max_A:
                raise ValueError(
                    f"limits.current_A = {self.limits.current_A} exceeds the {self.driver}'s compliance range "
                    f"(allowed: 0 < current_A <= {model.current_max_A})"
                )
        return self

    @property
    def simulated(self) -> bool:
        return self.resource.startswith("sim://")


class ReferenceDetectorConfig(_Strict):
    """A calibrated reference photodiode: its responsivity table (built-in name or certificate CSV path)."""

    responsivity: str = Field(description="si-818uv-typical, ge-818ir-typical, or a CSV file (wavelength_nm, A/W)")
    min_nm: float = Field(gt=0)
    max_nm: float = Field(gt=0)


class LongPassConfig(_Strict):
    """An order-sorting long-pass filter as its datasheet gives it (methods ref. §3.6).

    The check of the order-sorting table and the simulated bench both use this description
    (:class:`labctl.analysis.eqe.LongPassFilter`). A plain number in ``filter_wheel_slots`` is a cut-on with the
    default edge (8 % of it, the soft end of absorbing glass)."""

    cut_on_nm: float = Field(gt=0, description="50 % transmission point (nm)")
    edge_nm: float | None = Field(None, gt=0, description="from 50 % down to the blocking level (nm); null = 8 %")
    peak_transmission: float = Field(0.9, gt=0, le=1)
    blocking: float = Field(1e-5, gt=0, lt=0.1, description="transmission far below the cut-on")

    @model_validator(mode="after")
    def _default_edge(self) -> LongPassConfig:
        from labctl.analysis.eqe import DEFAULT_EDGE_FRACTION

        if self.edge_nm is None:
            self.edge_nm = round(DEFAULT_EDGE_FRACTION * self.cut_on_nm, 6)
        if not self.blocking < self.peak_transmission:
            raise ValueError(f"blocking = {self.blocking} must be below peak_transmission = {self.peak_transmission}")
        return self

    def as_filter(self):  # noqa: ANN201 - labctl.analysis.eqe.LongPassFilter
        """The transmission model of this filter."""
        from labctl.analysis.eqe import LongPassFilter

        return LongPassFilter(self.cut_on_nm, self.edge_nm, self.peak_transmission, self.blocking)


class OrderSortingRow(_Strict):
    """From ``from_nm`` (inclusive) to ``to_nm`` (exclusive): use this grating and filter-wheel position."""

    from_nm: float = Field(gt=0)
    to_nm: float = Field(gt=0)
    grating: int = Field(ge=1, le=3)
    filter: int = Field(ge=1, le=12)


class EQEBenchConfig(_Strict):
    """The fixed hardware of the EQE bench (no remote control) and its wavelength tables."""

    chopper_frequency_Hz: float = Field(220.0, ge=0.001, le=102_000,
                                        description="SR540 setting (Hz); the SR830 locks from 1 mHz to 102 kHz")
    preamp_gain_V_A: float | None = Field(1e6, gt=0, description="fixed transimpedance gain; null = lock-in I input")
    filter_wheel_slot_count: Literal[6, 12] = Field(
        6, description="positions of the filter wheel (FW102C: 6; FW212C: 12), which bounds filter_wheel_slots"
    )
    filter_wheel_slots: dict[int, LongPassConfig | None] = Field(
        default_factory=lambda: {
            1: None,
            2: LongPassConfig(cut_on_nm=420, edge_nm=34),
            3: LongPassConfig(cut_on_nm=700, edge_nm=56),
            4: LongPassConfig(cut_on_nm=1000, edge_nm=80),
            5: None,
            6: None,
        },
        description="the long-pass filter in each filter-wheel slot: {cut_on_nm, edge_nm, ...}, a cut-on in nm "
        "(default edge), or null = open",
    )
    order_sorting: list[OrderSortingRow] = Field(
        default_factory=lambda: [
            OrderSortingRow(from_nm=250, to_nm=480, grating=1, filter=1),
            OrderSortingRow(from_nm=480, to_nm=780, grating=1, filter=2),
            OrderSortingRow(from_nm=780, to_nm=1300, grating=2, filter=3),
            OrderSortingRow(from_nm=1300, to_nm=1900, grating=2, filter=4),
        ]
    )
    reference_detectors: dict[str, ReferenceDetectorConfig] = Field(
        default_factory=lambda: {
            "si": ReferenceDetectorConfig(responsivity="si-818uv-typical", min_nm=300, max_nm=1000),
            "ge": ReferenceDetectorConfig(responsivity="ge-818ir-typical", min_nm=800, max_nm=1800),
        }
    )

    @field_validator("filter_wheel_slots", mode="before")
    @classmethod
    def _plain_cut_on(cls, value: Any) -> Any:
        """A plain number (the older form) is a cut-on in nm with the default edge."""
        if isinstance(value, dict):
            return {k: ({"cut_on_nm": v} if isinstance(v, (int, float)) and not isinstance(v, bool) else v)
                    for k, v in value.items()}
        return value

    def long_pass(self, slot: int):  # noqa: ANN201 - labctl.analysis.eqe.LongPassFilter | None
        """The transmission model of the filter in filter-wheel ``slot`` (None: open)."""
        cfg = self.filter_wheel_slots.get(slot)
        return None if cfg is None else cfg.as_filter()

    @model_validator(mode="after")
    def _rows_ordered(self) -> EQEBenchConfig:
        count = self.filter_wheel_slot_count
        beyond = sorted(slot for slot in self.filter_wheel_slots if not 1 <= slot <= count)
        if beyond:
            raise ValueError(
                f"filter_wheel_slots: slot {beyond[0]} is not on a {count}-slot filter wheel "
                f"(allowed: slots 1-{count}; a 12-slot wheel: set eqe.filter_wheel_slot_count: 12)"
            )
        for i, row in enumerate(self.order_sorting):
            if row.to_nm <= row.from_nm:
                raise ValueError(f"order_sorting[{i}]: to_nm = {row.to_nm} must exceed from_nm = {row.from_nm}")
            if row.filter not in self.filter_wheel_slots:
                raise ValueError(
                    f"order_sorting[{i}].filter = {row.filter}: not a slot of filter_wheel_slots "
                    f"(allowed: {sorted(self.filter_wheel_slots)})"
                )
        return self

    def row_for(self, wavelength_nm: float) -> OrderSortingRow | None:
        for row in self.order_sorting:
            if row.from_nm <= wavelength_nm < row.to_nm:
                return row
        return None


def _simulator() -> Any:
    """The simulator class (``labctl.simulators`` entry point); ValueError naming the key when none is installed."""
    from labctl.simulators import GROUP, simulator_class

    cls = simulator_class()
    if cls is None:
        raise ValueError(f"no simulator is installed (allowed: install one that registers the '{GROUP}' "
                         "entry point 'sim', or give real resource strings and no simulation section)")
    return cls


def _no_simulation() -> Any:
    """The ``simulation:`` of a station file that has none: the simulator's disabled section (None: no simulator)."""
    from labctl.simulators import simulator_class

    cls = simulator_class()
    return None if cls is None else cls.disabled_section()


class PLFilterSetting(_Strict):
    """One long-pass filter of the PL detection path: its cut-on (nm) and its measured transmission over the PL."""

    cut_on_nm: float = Field(gt=0, lt=3000, description="cut-on wavelength (nm)")
    transmission: float = Field(gt=0, le=1, description="transmission over the PL band (fraction)")


class PLCollectionSetting(_Strict):
    """The PL detector's geometry on the device's normal (Lambertian collection fraction, methods ref. §5.2)."""

    shape: Literal["rectangle", "disk"] = "rectangle"
    width_mm: float = Field(10.0, gt=0, le=1000, description="rectangle: side a (mm)")
    height_mm: float = Field(10.0, gt=0, le=1000, description="rectangle: side b (mm)")
    radius_mm: float = Field(5.0, gt=0, le=1000, description="disk: detector (or lens aperture) radius (mm)")
    emitter_radius_mm: float = Field(0.0, ge=0, le=1000, description="disk: emitting disk radius (mm); 0: point")
    distance_mm: float = Field(50.0, gt=0, le=10000, description="emitter to detector (mm)")


class PLQYBenchConfig(_Strict):
    """The PLQY bench's detection chain and modulation input (methods ref. §5.1): the settings of the
    transimpedance amplifier, the Si photodetector, the long-pass filters, the collection geometry and the laser's
    analog modulation input, which have no remote interface of their own. Read by ``procedures.plqy``."""

    tia_gain_V_A: float = Field(1e7, gt=0, le=1e13, description="transimpedance gain (V/A)")
    tia_load_factor: float = Field(1.0, gt=0, le=1, description="1: the gain holds into the analyser's 50 Ω")
    detector_responsivity_A_W: float = Field(0.50, gt=0, le=2, description="at the PL peak (A/W)")
    pl_peak_nm: float = Field(gt=200, lt=3000, description="PL peak: the detector's EQE is R·(hc/q)/λ there")
    filters: list[PLFilterSetting] = Field(default_factory=list, description="long passes, each counted once")
    collection: PLCollectionSetting = Field(default_factory=PLCollectionSetting)
    laser_analog_full_scale_V: float = Field(5.0, gt=0, le=100, description="the voltage standing for the "
                                             "laser's set-point power: depth m = V_peak/V_fs")
    laser_analog_input_ohm: float = Field(10e3, gt=0, description="the laser's analog input impedance (Ω)")


PIXEL_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
"""A pixel name: letters, digits, ``_ . -`` (it is typed in ``--pixels 1,3,5`` and becomes part of file names)."""


class ContactCheckConfig(_Strict):
    """The contact check before each pixel (labctl.contact): a small bias, the current read, the apparent
    resistance |V/I| compared with a threshold; when that finds none, a second reading at a forward bias. A probe
    that does not touch reads only the meter's noise."""

    enabled: bool = True
    bias_V: float = Field(0.01, description="the bias applied (V); small, so a cell is not stressed")
    max_resistance_ohm: float = Field(1.0e7, gt=0, description="|V/I| above this: no contact, the pixel is skipped")
    compliance_A: float = Field(1.0e-4, gt=0, le=1.0, description="current limit during the check (A)")
    nplc: float = Field(1.0, gt=0, le=10, description="integration time of the reading (power-line cycles)")
    forward_bias_V: float | None = Field(
        1.2, gt=0, le=5.0,
        description="when the small bias finds no contact, a second reading at this forward bias (V, in the dark; "
                    "at most the source meter's voltage limit): a connected diode conducts there even with a very "
                    "high shunt, an open contact does not; null: no second reading")

    @field_validator("bias_V")
    @classmethod
    def _small_bias(cls, value: float) -> float:
        if not (0 < abs(value) <= 0.5):
            raise ValueError("allowed: 0 < |bias_V| <= 0.5 V (a contact check must not stress the cell)")
        return value


class PixelConfig(_Strict):
    """One pixel of a substrate layout: its name, area, the switch channel that connects it and its SMU role."""

    name: str = Field(min_length=1, max_length=40)
    area_cm2: float = Field(gt=0, le=1000, description="aperture (or mask) area of the pixel (cm²)")
    channel: int = Field(ge=1, description="the switch channel that connects this pixel (as the driver numbers it)")
    smu: str = Field("smu", min_length=1, description="the role of the source meter that measures this pixel")
    x_mm: float | None = Field(None, description="pixel centre on the substrate, for the map (mm)")
    y_mm: float | None = Field(None, description="pixel centre on the substrate, for the map (mm)")

    @field_validator("name", mode="before")
    @classmethod
    def _usable_name(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # `name: 1` in YAML is the pixel "1"
        if isinstance(value, str) and (value == "all" or not PIXEL_NAME.match(value)):
            raise ValueError("allowed: letters, digits, '_', '.', '-' (not 'all', which means every pixel)")
        return value


class LayoutConfig(_Strict):
    """A substrate layout (``layouts.<name>``): the pixels, the switch that connects them, the contact check."""

    switch: str = Field("switch", min_length=1, description="role of the switch_matrix instrument")
    size_mm: tuple[float, float] | None = Field(None, description="substrate width and height, for the map (mm)")
    contact_check: ContactCheckConfig = Field(default_factory=ContactCheckConfig)
    pixels: list[PixelConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_pixel_per_name_and_channel(self) -> LayoutConfig:
        names: dict[str, int] = {}
        channels: dict[int, str] = {}
        for i, pixel in enumerate(self.pixels):
            if pixel.name in names:
                raise ValueError(f"{HERE}.pixels[{i}].name = {pixel.name!r}: used by pixels[{names[pixel.name]}] too; "
                                 "allowed: one pixel per name")
            if pixel.channel in channels:
                raise ValueError(f"{HERE}.pixels[{i}].channel = {pixel.channel}: pixel {channels[pixel.channel]!r} "
                                 "is on that channel too; allowed: one pixel per switch channel")
            names[pixel.name], channels[pixel.channel] = i, pixel.name
        return self

    def pixel(self, name: str) -> PixelConfig:
        return next(p for p in self.pixels if p.name == name)


class StationConfig(_Strict):
    station: StationInfo = Field(default_factory=StationInfo)
    instruments: dict[str, InstrumentConfig]
    eqe: EQEBenchConfig = Field(default_factory=EQEBenchConfig)
    plqy: PLQYBenchConfig | None = Field(None, description="the PLQY bench's detection chain; null: none")
    simulation: Any = Field(default_factory=_no_simulation,
                            description="the simulated bench: opaque to labctl, validated by the simulator")
    recovery: RecoveryConfig = Field(default_factory=RecoveryConfig)
    suspenders: list[SuspenderConfig] = Field(default_factory=list)
    alerts: AlertsConfig | None = None
    layouts: dict[str, LayoutConfig] = Field(default_factory=dict, description="substrate layouts (labctl run "
                                             "--pixels): docs/substrates.md")

    @model_validator(mode="after")
    def _layout_roles(self) -> StationConfig:
        """Each layout's switch is a switch_matrix and each pixel's SMU a source_meter of the station, every
        channel one the switch has (when its driver says: ``channels_for_settings(settings)``, else the class's
        ``CHANNELS``); station.layout names a layout."""
        have = ", ".join(sorted(self.instruments))
        for name, layout in self.layouts.items():
            where = f"layouts.{name}"
            self._check_role(f"{where}.switch", layout.switch, "switch_matrix", have)
            switch = self.instruments[layout.switch]
            by_settings = getattr(switch.registration.driver, "channels_for_settings", None)  # e.g. a 7001's cards
            channels = (by_settings(switch.settings) if callable(by_settings)
                        else getattr(switch.registration.driver, "CHANNELS", None))
            for i, pixel in enumerate(layout.pixels):
                self._check_role(f"{where}.pixels[{i}].smu", pixel.smu, "source_meter", have)
                if channels is not None and pixel.channel not in channels:
                    raise ValueError(f"{where}.pixels[{i}].channel = {pixel.channel}: the "
                                     f"{self.instruments[layout.switch].driver} has no such channel (allowed: "
                                     f"{min(channels)}-{max(channels)})")
        chosen = self.station.layout
        if chosen is not None and chosen not in self.layouts:
            raise ValueError(f"station.layout = {chosen!r}: no such layout (allowed: "
                             f"{', '.join(sorted(self.layouts)) or 'none: the station has no layouts'})")
        return self

    def _check_role(self, key: str, role: str, capability: str, have: str) -> None:
        cfg = self.instruments.get(role)
        if cfg is None:
            raise ValueError(f"{key} = {role!r}: no such instrument (the station has: {have})")
        offered = cfg.registration.capabilities
        if capability not in offered:
            raise ValueError(f"{key} = {role!r}: a {cfg.driver}, which offers {', '.join(offered) or 'nothing'}; "
                             f"allowed: an instrument that offers {capability}")

    def layout(self, name: str | None = None) -> tuple[str, LayoutConfig]:
        """(name, layout) of ``name``, else station.layout, else the only layout; ConfigError (one line)
        otherwise."""
        if not self.layouts:
            raise ConfigError("--pixels needs a substrate layout, and the station has none (add layouts: to the "
                              "station file: docs/substrates.md)")
        chosen = name or self.station.layout
        if chosen is None:
            if len(self.layouts) > 1:
                raise ConfigError(f"the station has {len(self.layouts)} layouts ({', '.join(sorted(self.layouts))}): "
                                  "give --layout NAME (or set station.layout)")
            chosen = next(iter(self.layouts))
        if chosen not in self.layouts:
            raise ConfigError(f"--layout = {chosen!r}: no such layout (allowed: {', '.join(sorted(self.layouts))})")
        return chosen, self.layouts[chosen]

    @model_validator(mode="after")
    def _suspender_roles(self) -> StationConfig:
        names = [s.name for s in self.suspenders]
        for i, sus in enumerate(self.suspenders):
            if names.count(sus.name) > 1:
                raise ValueError(f"suspenders[{i}].name = {sus.name!r}: used twice; allowed: one name per suspender")
            if sus.role not in self.instruments:
                raise ValueError(f"suspenders[{i}].role = {sus.role!r}: no such instrument (the station has: "
                                 f"{', '.join(sorted(self.instruments))})")
        return self

    @field_validator("simulation", mode="before")
    @classmethod
    def _simulator_schema(cls, value: Any) -> Any:
        """The simulator validates its own section; its errors keep their key paths (``simulation.device...``)."""
        return _simulator().validate_section(value)

    @model_validator(mode="after")
    def _sim_resources_need_simulation(self) -> StationConfig:
        if any(inst.simulated for inst in self.instruments.values()):
            problem = _simulator().station_problem(self.simulation, self.instruments)
            if problem is not None:
                raise ValueError(problem)
        return self

    @model_validator(mode="after")
    def _gratings_exist(self) -> StationConfig:
        """Every grating the order-sorting table names is one the monochromator has (checked before any I/O).

        On the simulated bench (``simulation.enabled``, in-process or served by ``labctl sim serve``) the
        monochromator has what the simulator says (``simulation.optics.gratings``); on real hardware, the turret
        positions of the driver's model (:attr:`drivers.cornerstone.CornerstoneMonochromator.grating_positions`: 3 on a
        Cornerstone 260, 2 on a 130), since a station file does not say which are fitted.
        """
        mono = self.instruments.get("monochromator")
        if mono is None:
            return self
        positions = getattr(mono.registration.driver, "grating_positions", None)
        simulated = None
        if self.simulation is not None:  # the simulated bench knows its own monochromator
            simulated = _simulator().monochromator_gratings(self.simulation, mono.driver, positions)
        if simulated is not None:
            have, where = simulated
        elif positions is not None:
            have = list(range(1, positions + 1))
            where = f"a {mono.driver} turret has {positions} grating positions"
        else:
            return self
        for i, row in enumerate(self.eqe.order_sorting):
            if row.grating not in have:
                raise ValueError(
                    f"eqe.order_sorting[{i}].grating = {row.grating} ({row.from_nm:g}-{row.to_nm:g} nm): {where} "
                    f"(allowed: {', '.join(str(n) for n in have)})"
                )
        return self

    def snapshot(self) -> dict[str, Any]:
        """The fully resolved station (defaults filled), as stored in every run file."""
        return self.model_dump(mode="json")


def _format_error(err: dict[str, Any], source: str, meant: str | None = None) -> str:
    path = ".".join(str(p) for p in err["loc"]) or "(top level)"
    value = err.get("input")
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        # a whole block (a mapping or a list) is not repeated: the key is what is wrong
        shown = "" if isinstance(value, (dict, list)) else f" (value {value!r})"
        hint = f"did you mean '{meant}'?" if meant else "check the spelling against docs/station-yaml.md"
        return f"{source}: unknown key '{path}'{shown}; {hint}"
    if err["type"] == "missing":
        return f"{source}: missing key '{path}'"
    msg = msg.removeprefix("Value error, ")
    if not err["loc"]:  # a check of the whole station: the message names its keys
        return f"{source}: {msg}"
    if HERE in msg:  # a check of a block that names its keys from the block: the block's path goes there
        return f"{source}: {msg.replace(HERE, path)}"
    if isinstance(value, dict):
        if _NAMES_ITS_OWN_KEY.match(msg):  # a check of a block naming one of its keys: "key = value ..."
            return f"{source}: {path}.{msg}"
        return f"{source}: {path}: {msg}"
    return f"{source}: {path} = {value!r}: {msg}"


#: the convention of error lines: in the message of a check of one block, this stands for that block's key path
#: (a plug-in's schema, e.g. the simulator's device check, used for ``simulation.device`` and for each of
#: ``simulation.devices``, names the keys of the block it checked without knowing where it is)
HERE = "<here>"
#: a message that starts by naming a key of the block it checks, e.g. "limits.current_A = 2.0 exceeds ..."
_NAMES_ITS_OWN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.]* = ")


def parse_station(data: Any, source: str = "station.yaml") -> StationConfig:
    """Validate a parsed YAML mapping; raise :class:`ConfigError` with one line per problem."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return StationConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError("\n".join(_format_errors(exc.errors(), source))) from None


def _format_errors(errors: list[dict[str, Any]], source: str) -> list[str]:
    """One line per problem; a misspelt key and the required key it was meant to be are one problem."""
    import difflib

    missing = {tuple(e["loc"]): e for e in errors if e["type"] == "missing"}
    lines: list[tuple[dict[str, Any], str | None]] = []
    merged: set[tuple[Any, ...]] = set()
    for e in errors:
        meant = None
        if e["type"] == "extra_forbidden" and e["loc"]:
            *parent, key = e["loc"]
            candidates = {str(loc[-1]): loc for loc in missing if list(loc[:-1]) == parent}
            if not parent:  # the top level: every section name
                candidates = {name: (name,) for name in StationConfig.model_fields} | candidates
            close = difflib.get_close_matches(str(key), list(candidates), n=1, cutoff=0.7)
            if close:
                meant = close[0]
                merged.add(candidates[meant])
        lines.append((e, meant))
    return [_format_error(e, source, meant) for e, meant in lines
            if not (e["type"] == "missing" and tuple(e["loc"]) in merged)]


def load_yaml_refusing_duplicates(text: str, source: str = "station.yaml") -> Any:
    """Parse YAML (safe loader) and refuse a key given twice in one mapping, naming both lines.

    Plain YAML loaders keep the last value silently, so an edited station file could run with a setting other
    than the one its author reads first. Keys are compared as written (``1`` and ``"1"`` are the same slot once
    validated, so they count as duplicates too); ``<<`` merge keys are left to YAML.
    """
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            _refuse_duplicate_keys(node, source, "")
        return loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {' '.join(str(exc).split())}") from None
    finally:
        loader.dispose()


def _refuse_duplicate_keys(node: yaml.Node, source: str, where: str) -> None:
    """Walk a composed YAML node; raise :class:`ConfigError` at the first mapping key given twice."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            if key.tag == "tag:yaml.org,2002:merge" or not isinstance(key, yaml.ScalarNode):
                _refuse_duplicate_keys(value, source, where)
                continue
            name = key.value
            line = key.start_mark.line + 1
            if name in seen:
                inside = f" in '{where}'" if where else " at the top level"
                raise ConfigError(
                    f"{source}: key '{name}' appears twice{inside}, at lines {seen[name]} and {line} "
                    "(allowed: each key once; YAML would silently keep the second)"
                )
            seen[name] = line
            _refuse_duplicate_keys(value, source, f"{where}.{name}" if where else name)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _refuse_duplicate_keys(item, source, f"{where}[{i}]")


def load_station(path: str | Path) -> StationConfig:
    """Read and validate a station file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read station file {path}: {exc.strerror}") from None
    data = load_yaml_refusing_duplicates(text, str(path))
    config = parse_station(data, source=str(path))
    # certificate files named relative to the station file, wherever labctl is started from
    for det in config.eqe.reference_detectors.values():
        candidate = path.parent / det.responsivity
        if not Path(det.responsivity).is_absolute() and candidate.is_file():
            det.responsivity = str(candidate)
    return config
