"""Capabilities: the small typed interfaces procedures program against, instead of concrete drivers.

An instrument registration names the capabilities its driver offers (``capabilities=("source_meter",)``,
:mod:`drivers.registration`); a procedure asks the station for a role *and* a capability
(``station.require("smu", "source_meter")``) and gets a clear error before any I/O when the station cannot
provide it. Each capability is a :class:`typing.Protocol` of methods only (``isinstance`` on a runtime-checkable
protocol then looks the methods up and never reads a property, so it sends nothing to the instrument).

The light is a capability of the station rather than of one instrument (:meth:`labctl.station.Station.light`):
a shutter in front of the lamp (:class:`ShutterLight`), the simulated solar simulator, or — on a bench with
neither — the operator (:class:`OperatorLight`), who is asked to switch it, or the run is refused when nobody is
there. The procedure does not care which.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class SourceMeter(Protocol):
    """Source a voltage, measure the current; a built-in sweep; output on/off (drivers.smu.SourceMeter)."""

    def configure_voltage_source(self, compliance_A: float, nplc: float, four_wire: bool = False,
                                 source_delay_s: float = 0.0) -> None: ...
    def set_voltage(self, voltage_V: float) -> None: ...
    def enable_output(self) -> None: ...
    def disable_output(self) -> None: ...
    def measure_point(self) -> Any: ...
    def sweep_voltage(self, start_V: float, stop_V: float, points: int, source_delay_s: float) -> Any: ...


@runtime_checkable
class Shutter(Protocol):
    """A shutter: open, close (its state reads back as ``shutter_open``)."""

    def open_shutter(self) -> None: ...
    def close_shutter(self) -> None: ...


@runtime_checkable
class Light(Protocol):
    """Light on the sample: on/off, and its irradiance (W/m²) where the station knows it (else None)."""

    def set_light(self, on: bool) -> None: ...
    def irradiance_W_m2(self) -> float | None: ...


@runtime_checkable
class LockIn(Protocol):
    """A lock-in amplifier: configure for a chopped signal, read X/Y/R/θ at once, settle time."""

    def configure(self, sensitivity: float, *, chopper_frequency_Hz: float, **settings: Any) -> None: ...
    def snap_xyrt(self) -> Any: ...
    def settle_time_s(self, tolerance: float = 0.01) -> float: ...


@runtime_checkable
class Monochromator(Protocol):
    """A monochromator (wavelength and grating are properties of the driver; its shutter below)."""

    def open_shutter(self) -> None: ...
    def close_shutter(self) -> None: ...
    def abort(self) -> None: ...


@runtime_checkable
class FilterWheel(Protocol):
    """A filter wheel (its ``position`` is a property of the driver)."""

    def safe_state(self) -> None: ...


@runtime_checkable
class CurrentPreamplifier(Protocol):
    """A current (transimpedance) preamplifier set by its sensitivity (A/V)."""

    def configure(self, sensitivity_A_V: float, **settings: Any) -> None: ...


@runtime_checkable
class PowerMeter(Protocol):
    """An optical power meter: set the wavelength (nm), read the power (W)."""

    def set_wavelength_nm(self, wavelength_nm: float) -> None: ...
    def read_power_W(self) -> float: ...


@runtime_checkable
class Laser(Protocol):
    """A laser: emission on/off and its output power (W)."""

    def set_emission(self, on: bool) -> None: ...
    def set_power_W(self, power_W: float) -> None: ...


@runtime_checkable
class SpectrumAnalyser(Protocol):
    """A spectrum analyser: a trace (frequencies in Hz, levels) per read."""

    def read_trace(self) -> Any: ...


@runtime_checkable
class FunctionGenerator(Protocol):
    """A function generator: waveform, frequency (Hz), amplitude (V), output on/off."""

    def set_waveform(self, shape: str, frequency_Hz: float, amplitude_V: float) -> None: ...
    def set_output(self, on: bool) -> None: ...


@runtime_checkable
class SwitchMatrix(Protocol):
    """A switch matrix (drivers.switch.SwitchMatrixBase): channels are ints; every change is read back and a
    relay that does not read back as commanded raises ``drivers.switch.SwitchReadbackError``.

    ``select(channel, group)`` connects ``channel`` alone within ``group`` (e.g. the pixels of one SMU; None:
    every channel), break-before-make; ``closed_channels()`` is the read-back query (nothing switched)."""

    def select(self, channel: int, group: Iterable[int] | None = None) -> None: ...
    def disconnect_all(self) -> None: ...
    def open_all(self) -> None: ...
    def close_channels(self, channels: Iterable[int]) -> None: ...
    def open_channels(self, channels: Iterable[int]) -> None: ...
    def closed_channels(self) -> frozenset[int]: ...


@runtime_checkable
class TemperatureSensor(Protocol):
    """A temperature sensor: read the temperature (K)."""

    def read_temperature_K(self) -> float: ...


#: capability name (as in InstrumentRegistration.capabilities) → its interface
CAPABILITIES: dict[str, type] = {
    "source_meter": SourceMeter,
    "shutter": Shutter,
    "light": Light,
    "lock_in": LockIn,
    "monochromator": Monochromator,
    "filter_wheel": FilterWheel,
    "current_preamplifier": CurrentPreamplifier,
    "power_meter": PowerMeter,
    "laser": Laser,
    "spectrum_analyser": SpectrumAnalyser,
    "function_generator": FunctionGenerator,
    "switch_matrix": SwitchMatrix,
    "temperature_sensor": TemperatureSensor,
}


def capability_name(capability: str | type) -> str:
    """The name of ``capability`` (a name, or one of the protocols above); ValueError naming the known ones."""
    if isinstance(capability, str):
        if capability in CAPABILITIES:
            return capability
    else:
        for name, proto in CAPABILITIES.items():
            if proto is capability:
                return name
    raise ValueError(f"unknown capability {capability!r}; known: {', '.join(CAPABILITIES)}")


def missing_methods(instrument: Any, capability: str) -> list[str]:
    """The methods of ``capability`` that ``instrument`` lacks (looked up on its class: nothing is sent)."""
    proto = CAPABILITIES[capability]
    wanted = [name for name in vars(proto) if not name.startswith("_") and callable(getattr(proto, name))]
    return [name for name in wanted if not callable(getattr(type(instrument), name, None))]


class ShutterLight:
    """The light as a shutter in front of a lamp that stays on: open = light on.

    shutter: returns the shutter instrument (called when the light is switched, so the light can be made
    before the station is connected)."""

    def __init__(self, shutter: Callable[[], Any]) -> None:
        self.shutter = shutter

    def set_light(self, on: bool) -> None:
        if on:
            self.shutter().open_shutter()
        else:
            self.shutter().close_shutter()

    def irradiance_W_m2(self) -> float | None:
        return None

    def why_unavailable(self, on: bool = True) -> str | None:
        return None


class OperatorLight:
    """The light of a bench where nothing can switch it: the operator is asked to, or the run is refused.

    operator: returns the station's operator prompt (``Station.operator``: shows a message, returns once it is
    done) or None when nobody is there (no terminal); asked each time, since the CLI sets it after the station is
    made. A request for the state last asked for is not repeated. With nobody there, turning the light on raises
    ``error`` (a run that needs it cannot be done) and turning it off is left as it is (nothing can do it; the
    J-V logs that the light is the operator's).
    """

    def __init__(self, operator: Callable[[], Callable[[str], Any] | None],
                 error: type[Exception] = RuntimeError) -> None:
        self.operator = operator
        self.error = error
        self._asked: bool | None = None

    def why_unavailable(self, on: bool = True) -> str | None:
        """Why the light cannot be set ``on`` (None: it can). Sends nothing."""
        if on and self.operator() is None:
            return ("nothing can turn the light on: the station has no shutter and nobody is there to ask "
                    "(allowed: add a 'shutter' instrument, or run from a terminal)")
        return None

    def set_light(self, on: bool) -> None:
        if self._asked is on:
            return
        why = self.why_unavailable(on)
        if why is not None:
            raise self.error(why)
        ask = self.operator()
        if ask is not None:
            ask(f"Turn the light {'on' if on else 'off'} (no shutter in the station), then press Enter")
            self._asked = on

    def irradiance_W_m2(self) -> float | None:
        return None
