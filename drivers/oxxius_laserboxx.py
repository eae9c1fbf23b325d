"""PyMeasure driver for the Oxxius LaserBoxx LBX diode laser (USB virtual COM or RS-232, commands end CR).

Command set: Oxxius LaserBoxx LBX user's guide (commands and queries table), as the maker's own Micro-Manager
adapter (``Oxxius.cpp``) and public Python drivers of real units use it (instruments ref. §8.1). Commands are
case-insensitive; this driver sends them in upper case. Every command, setter or query, produces exactly one
reply line (CR LF); a setter's reply carries nothing documented, so it is read and discarded by
:meth:`OxxiusLaserBoxx.write`, which keeps the link in step. Powers are mW on the wire, W in the method names.

In a combiner (L6CC) the laser's commands carry a prefix (``L1 ?P``); that case is not handled here.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pymeasure.instruments import Instrument

from drivers.identity import IdentitySpec
from drivers.registration import ConnectionDefaults, InstrumentRegistration
from drivers.safe import describe, run_steps

#: ``?STA`` codes (LBX user's guide, "?STA")
STATUS = {1: "warm-up", 2: "standby", 3: "emission on", 4: "error", 5: "alarm", 6: "sleep",
          7: "searching SLM point"}
#: ``?F`` fault codes (LBX user's guide / Micro-Manager adapter; one other driver reads them as a bit field)
FAULTS = {1: "diode current", 3: "laser power", 4: "diode temperature", 5: "base temperature"}


class LaserBoxxError(RuntimeError):
    """The laser's reply could not be read as the answer its query has."""


class OxxiusLaserBoxx(Instrument):
    """Oxxius LaserBoxx LBX diode laser.

    adapter: VISA resource name (e.g. ``ASRL/dev/ttyACM0::INSTR``) or a PyMeasure adapter; with an adapter object
    the caller sets its terminations (write CR, read CR LF).
    """

    #: ``INF?`` answers the laser type, e.g. ``LBX-520-100-CSB`` (type-wavelength nm-power mW-...)
    IDENTITY = IdentitySpec(query="INF?", accepts=(r"LBX-",), expected="LBX-<wavelength nm>-<power mW>-...")

    def __init__(self, adapter: Any, name: str = "Oxxius LaserBoxx LBX laser", **kwargs: Any) -> None:
        super().__init__(adapter, name, includeSCPI=False, **kwargs)

    # -- link: every command produces one reply line ----------------------------------------------------------
    def write(self, command: str, **kwargs: Any) -> None:
        """Send ``command`` and read (and discard) the one reply line a setter produces, keeping the link in
        step (also for a command the laser refuses: its reply is read here, never by the next query)."""
        super().write(command, **kwargs)
        self.read()

    def ask(self, command: str, query_delay: float = 0) -> str:
        """Send the query ``command`` and return its reply line."""
        Instrument.write(self, command)
        self.wait_for(query_delay)
        return self.read()

    def _query_float(self, query: str) -> float:
        reply = self.ask(query).strip()
        try:
            return float(reply)
        except ValueError:
            raise LaserBoxxError(f"{self.name}: unexpected reply {reply!r} to {query!r}") from None

    def _query_int(self, query: str) -> int:
        value = self._query_float(query)
        if value != int(value):
            raise LaserBoxxError(f"{self.name}: unexpected reply {value!r} to {query!r} (an integer code)")
        return int(value)

    def _query_flag(self, query: str) -> bool:
        code = self._query_int(query)
        if code not in (0, 1):
            raise LaserBoxxError(f"{self.name}: unexpected reply {code!r} to {query!r} (0 or 1)")
        return code == 1

    # -- identity ------------------------------------------------------------------------------------------
    @property
    def id(self) -> str:
        """The laser type (``INF?``), e.g. ``LBX-520-100-CSB``."""
        return self.ask("INF?").strip()

    @property
    def serial_number(self) -> str:
        """The serial number (``?HID``; the wavelength may follow after a comma)."""
        return self.ask("?HID").strip()

    @property
    def software_version(self) -> str:
        """The firmware version (``?SV``)."""
        return self.ask("?SV").strip()

    # -- emission ------------------------------------------------------------------------------------------
    def set_emission(self, on: bool) -> None:
        """Emission on (``L 1``) or off (``L 0``). With CDRH on, emission starts 5 s after ``L 1``."""
        self.write(f"L {1 if on else 0}")

    @property
    def emission(self) -> bool:
        """Whether emission is on (``?L``)."""
        return self._query_flag("?L")

    def emission_off(self) -> None:
        """Emission off (``L 0``)."""
        self.set_emission(False)

    # -- power (constant-power mode, APC) -------------------------------------------------------------------
    def set_power_W(self, power_W: float) -> None:
        """Power set-point (W), sent as ``P <mW>``; ValueError below 0 (the laser itself bounds it by ``?MAXLP``)."""
        if not power_W >= 0:
            raise ValueError(f"{self.name}: power set-point {power_W!r} W must be >= 0")
        self.write(f"P {power_W * 1e3:.3f}")

    @property
    def power_setpoint_W(self) -> float:
        """The power set-point (W), ``?SP`` (mW)."""
        return self._query_float("?SP") * 1e-3

    @property
    def power_W(self) -> float:
        """The measured output power (W), ``?P`` (mW)."""
        return self._query_float("?P") * 1e-3

    @property
    def max_power_W(self) -> float:
        """The laser's maximum power (W), ``?MAXLP`` (mW)."""
        return self._query_float("?MAXLP") * 1e-3

    # -- current (constant-current mode, ACC) ---------------------------------------------------------------
    def set_current_percent(self, percent: float) -> None:
        """Current set-point in % of the maximum current (``CM <val>``; newer firmware: % of max)."""
        if not 0 <= percent <= 100:
            raise ValueError(f"{self.name}: current set-point {percent!r} % must be within 0..100")
        self.write(f"CM {percent:.1f}")

    @property
    def current_setpoint_percent(self) -> float:
        """The current set-point (% of max), ``?SC``."""
        return self._query_float("?SC")

    @property
    def current_mA(self) -> float:
        """The measured diode current (mA), ``?C``."""
        return self._query_float("?C")

    @property
    def max_current_mA(self) -> float:
        """The laser's maximum diode current (mA), ``?MAXLC``."""
        return self._query_float("?MAXLC")

    # -- modes ---------------------------------------------------------------------------------------------
    def set_constant_power(self, on: bool) -> None:
        """Automatic power control (``APC 1``) or automatic current control (``ACC 1``)."""
        self.write("APC 1" if on else "ACC 1")

    @property
    def constant_power(self) -> bool:
        """True in APC (constant power), False in ACC (constant current): ``?APC``."""
        return self._query_flag("?APC")

    @property
    def constant_current(self) -> bool:
        """True in ACC (constant current): ``?ACC``."""
        return self._query_flag("?ACC")

    def set_analog_modulation(self, on: bool) -> None:
        """External power control through the analog input (``AM 1`` / ``AM 0``)."""
        self.write(f"AM {1 if on else 0}")

    @property
    def analog_modulation(self) -> bool:
        """Whether analog modulation is on (``?AM``)."""
        return self._query_flag("?AM")

    def set_digital_modulation(self, on: bool) -> None:
        """TTL high-speed modulation (``TTL 1`` / ``TTL 0``); an LBX allows it only in ACC mode."""
        self.write(f"TTL {1 if on else 0}")

    @property
    def digital_modulation(self) -> bool:
        """Whether TTL modulation is on (``?TTL``)."""
        return self._query_flag("?TTL")

    def set_cdrh(self, on: bool) -> None:
        """The 5-second laser-safety emission delay (``CDRH 1`` / ``CDRH 0``)."""
        self.write(f"CDRH {1 if on else 0}")

    @property
    def cdrh(self) -> bool:
        """Whether the 5 s emission delay is on (``?CDRH``)."""
        return self._query_flag("?CDRH")

    def set_temperature_regulation(self, on: bool) -> None:
        """The diode temperature regulation loop (``T 1`` / ``T 0``)."""
        self.write(f"T {1 if on else 0}")

    # -- status --------------------------------------------------------------------------------------------
    @property
    def status(self) -> int:
        """The state code (``?STA``): see :data:`STATUS`."""
        return self._query_int("?STA")

    @property
    def fault(self) -> int:
        """The fault code (``?F``), 0 when none: see :data:`FAULTS`."""
        return self._query_int("?F")

    @property
    def interlock_closed(self) -> bool:
        """Whether the interlock is closed (``?INT``)."""
        return self._query_flag("?INT")

    @property
    def key_on(self) -> bool:
        """Whether the key switch is on (``?KEY``)."""
        return self._query_flag("?KEY")

    @property
    def base_temperature_C(self) -> float:
        """The base-plate temperature (°C), ``?BT``."""
        return self._query_float("?BT")

    @property
    def hours(self) -> float:
        """Operating hours (``?HH``)."""
        return self._query_float("?HH")

    def reset(self) -> None:
        """Clear faults / reset (``RST``)."""
        self.write("RST")

    def check_errors(self) -> list[tuple[int, str]]:
        """The laser's fault (``?F``) as ``[(code, what)]``, ``[]`` when none (the LBX has no error queue)."""
        code = self.fault
        return [] if code == 0 else [(code, f"fault: {FAULTS.get(code, 'unknown fault code')}")]

    def safe_state(self) -> None:
        """Safe state of a laser: emission off."""
        self.emission_off()

    def shutdown(self) -> None:
        """Emission off, then mark the instrument shut down."""
        self.safe_state()
        super().shutdown()


class LaserBoxxSettings(BaseModel):
    """instruments.<role>.settings of an Oxxius LaserBoxx."""

    model_config = ConfigDict(extra="forbid")
    cdrh: bool | None = Field(None, description="5 s emission delay on/off (CDRH); left as the laser has it if null")


def configure_laserboxx(inst: OxxiusLaserBoxx, settings: LaserBoxxSettings | None) -> None:
    """Constant-power mode (what ``set_power_W`` drives), and the CDRH delay when the station file sets it."""
    inst.set_constant_power(True)
    if settings is not None and settings.cdrh is not None:
        inst.set_cdrh(settings.cdrh)


def laserboxx_safe_state(inst: OxxiusLaserBoxx, settings: Any = None) -> str:
    """A laser's safe state: emission off (``L 0``), then read back (``?L``)."""
    done = run_steps([("emission off", inst.emission_off)])
    if inst.emission:
        raise RuntimeError("the emission still reads on after 'L 0'")
    return describe(done, ["emission reads off"])


OXXIUS_LASERBOXX_REGISTRATION = InstrumentRegistration(
    name="oxxius_laserboxx",
    driver=OxxiusLaserBoxx,
    model="Oxxius LaserBoxx LBX",
    capabilities=("laser",),
    # commands end CR, replies CR LF (Micro-Manager's adapter); 9600 Bd 8N1 in one driver, 38400 in another
    # script: verify on the unit (instruments ref. §8.1, §10 item 9)
    connection=ConnectionDefaults(read_termination="\r\n", write_termination="\r", timeout_ms=2000,
                                  baud_rate=9600, serial=True),
    settings=LaserBoxxSettings,
    configure=configure_laserboxx,
    safe_state=laserboxx_safe_state,
    emulator="sim_instruments.laserboxx:LaserBoxxEmulator",
)
