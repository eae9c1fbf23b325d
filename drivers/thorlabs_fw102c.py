"""PyMeasure driver for the Thorlabs FW102C / FW212C motorised filter wheel (115200 baud 8N1, CR).

The FW102C is a serial console like the SC10: it echoes every command, prints a reply line for queries (and
for errors), then the prompt ``"> "`` (no terminator). After ``pos=n`` the prompt comes only once the wheel is
in position, so that read runs under a timeout long enough for a half turn (``move_timeout_s``). Every
exchange is

    write ``cmd`` -> read echo line -> [read reply line] -> read the 2-byte prompt

and an error line (``Command error CMD_NOT_DEFINED`` / ``CMD_ARG_INVALID``) before the prompt is raised as
:class:`FW102CError`. Command set and framing: Thorlabs FW102C manual (Rev H, the serial command table);
the echo/prompt exchange as Thorlabs' console firmware prints it (instruments ref. §5).
"""

from __future__ import annotations

import numbers
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pymeasure.instruments import Instrument
from pymeasure.instruments.validators import strict_discrete_set

from drivers.identity import IdentitySpec
from drivers.io_helpers import timeout_at_least
from drivers.registration import ConnectionDefaults, InstrumentRegistration
from drivers.safe import driver_safe_state
from drivers.thorlabs_console import PROMPT as PROMPT
from drivers.thorlabs_console import ThorlabsConsoleError, ThorlabsConsoleMixin

MAX_SLOTS = 12


class FW102CError(ThorlabsConsoleError):
    """The controller answered with an error string, or the exchange broke the echo/prompt framing."""


class ThorlabsFW102C(ThorlabsConsoleMixin, Instrument):
    """Thorlabs FW102C (6 or 12 slots) filter wheel controller.

    adapter: VISA resource name (e.g. ``ASRL/dev/ttyUSB0::INSTR``, ``ASRLsocket://127.0.0.1:5025::INSTR``)
    or a PyMeasure adapter; with an adapter object the caller sets its terminations to CR.
    Framing (echo, ``"> "`` prompt, error lines) and :attr:`idn` / :attr:`id` come from
    :class:`~drivers.thorlabs_console.ThorlabsConsoleMixin`.
    """

    #: read timeout for the prompt after ``pos=n`` (s): a half turn of a 12-slot wheel at slow speed is
    #: ~12 s (2 s/slot [M]), hispec's driver allows 5 s at high speed
    move_timeout_s = 20.0
    baud_rate = 115200
    #: ``*idn?`` answers the model and firmware, e.g. ``THORLABS FW102C/FW212C Filter Wheel version 1.07``
    IDENTITY = IdentitySpec(
        query="*idn?", accepts=(r"THORLABS FW(?:102|212)C\b",),
        expected="THORLABS FW102C/FW212C Filter Wheel version <firmware>",
    )
    console_error = FW102CError

    def __init__(self, adapter: Any, name: str = "Thorlabs FW102C filter wheel", **kwargs: Any) -> None:
        super().__init__(adapter, name, **kwargs)

    # -- framing -------------------------------------------------------------------------------------------
    def write(self, command: str, **kwargs: Any) -> None:
        """Send ``command``, consume its echo; for a non-query also consume the prompt (raise on an error).

        ``pos=n`` is exchanged with the read timeout raised to :attr:`move_timeout_s`.
        """
        if command.startswith("pos="):
            # the echo too: a transport that buffers the echo with the prompt delivers it after the move
            with timeout_at_least(self.adapter, self.move_timeout_s):
                super().write(command, **kwargs)
        else:
            super().write(command, **kwargs)

    def _integer(self, command: str) -> int:
        reply = self.ask(command)
        if not (reply.isascii() and reply.isdigit()):
            raise FW102CError(f"{self.name}: unexpected reply {reply!r} to {command!r}")
        return int(reply)

    # -- state ---------------------------------------------------------------------------------------------
    @property
    def position(self) -> int:
        """Slot in the beam (1 to :attr:`slot_count`). Setting returns once the wheel is there (``pos=n``
        answers its prompt on arrival), then checks ``pos?``; a slot beyond the wheel raises
        :class:`FW102CError` (``CMD_ARG_INVALID``)."""
        return self._integer("pos?")

    @position.setter
    def position(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not float(value).is_integer() \
                or not 1 <= value <= MAX_SLOTS:
            raise ValueError(f"filter wheel position must be an integer 1-{MAX_SLOTS}, not {value!r}")
        value = int(value)
        self.write(f"pos={value}")
        reached = self.position
        if reached != value:
            raise FW102CError(f"{self.name}: wheel at slot {reached} after 'pos={value}'")

    slot_count = Instrument.control(
        "pcount?", "pcount=%d",
        """Number of slots of the wheel the controller drives: 6 or 12 (``pcount``).""",
        validator=strict_discrete_set, values=[6, 12], cast=int,
    )

    speed_high = Instrument.control(
        "speed?", "speed=%d",
        """High-speed (True) or slow (False) move profile (``speed``).""",
        validator=strict_discrete_set, values={True: 1, False: 0}, map_values=True,
    )

    sensors_always_on = Instrument.control(
        "sensors?", "sensors=%d",
        """Position sensors always on (True) or off while idle (False, no stray light) (``sensors``).""",
        validator=strict_discrete_set, values={True: 1, False: 0}, map_values=True,
    )

    def save(self) -> None:
        """Store the present settings as power-on defaults (``save``)."""
        self.write("save")

    def safe_state(self) -> None:
        """Nothing to do: a filter wheel has no hazardous state, and moving it would change the beam."""

    def shutdown(self) -> None:
        """Mark the instrument shut down (the wheel is left where it is; see :meth:`safe_state`)."""
        self.safe_state()
        super().shutdown()


class FilterSlot(BaseModel):
    """One slot's filter: its nominal optical density and its transmission measured at the wheel's
    ``calibration_wavelength_nm`` (nominal ODs are wrong at one wavelength: methods ref. §4.2)."""

    model_config = ConfigDict(extra="forbid")

    od: float = Field(ge=0, description="nominal optical density")
    transmission: float = Field(gt=0, le=1, description="measured transmission (fraction) at the calibration λ")


class FW102CSettings(BaseModel):
    """``instruments.<role>.settings`` of a filter wheel; a key left out (None) leaves the controller as it is.

    speed: the move profile, ``high`` or ``slow`` (``speed=1|0``, FW102C manual, "Command list").
    sensors_always_on: True keeps the position sensors on while idle, False turns them off (no stray light
    from their LEDs while measuring; ``sensors=1|0``).
    filters: {slot (1-12): {od, transmission}}, what is in the wheel (an attenuator wheel on a laser path);
    nothing is sent for it. calibration_wavelength_nm: the wavelength (nm) at which the transmissions were
    measured (needed with ``filters``).
    """

    model_config = ConfigDict(extra="forbid")

    speed: Literal["high", "slow"] | None = None
    sensors_always_on: bool | None = None
    filters: dict[int, FilterSlot] | None = None
    calibration_wavelength_nm: float | None = Field(None, gt=0, lt=10000)

    @model_validator(mode="after")
    def _filters_fit_the_wheel(self) -> FW102CSettings:
        for slot, f in (self.filters or {}).items():
            if not 1 <= slot <= MAX_SLOTS:
                raise ValueError(f"filters.{slot} = {{od: {f.od:g}, transmission: {f.transmission:g}}}: no such slot "
                                 f"on an FW102C/FW212C wheel (allowed: slots 1-{MAX_SLOTS})")
        if self.filters and self.calibration_wavelength_nm is None:
            raise ValueError("calibration_wavelength_nm = None: the filters' transmissions need the wavelength they "
                             "were measured at (allowed: a wavelength in nm)")
        return self

    def transmission_table(self) -> dict[int, float]:
        """{slot: measured transmission} of the wheel's filters (empty when none are given), slots in order."""
        return {slot: self.filters[slot].transmission for slot in sorted(self.filters or {})}

    def od_table(self) -> dict[int, float]:
        """{slot: nominal OD} of the wheel's filters (empty when none are given), slots in order."""
        return {slot: self.filters[slot].od for slot in sorted(self.filters or {})}


def configure_fw102c(wheel: ThorlabsFW102C, settings: FW102CSettings | None) -> None:
    """Apply the station file's settings (those given) to the controller; ``filters`` and
    ``calibration_wavelength_nm`` describe what is in the wheel and send nothing (a filter in slot 7-12 asks
    ``pcount?`` and is refused on a 6-slot wheel)."""
    if settings is None:
        return
    highest = max(settings.filters or {0: None})
    if highest > 6 and (count := wheel.slot_count) < highest:  # a 6-slot wheel has no slot 7-12
        raise FW102CError(f"{wheel.name}: settings.filters.{highest} is beyond the wheel's {count} slots "
                          f"(allowed: slots 1-{count})")
    if settings.speed is not None:
        wheel.speed_high = settings.speed == "high"
    if settings.sensors_always_on is not None:
        wheel.sensors_always_on = settings.sensors_always_on


THORLABS_FW102C_REGISTRATION = InstrumentRegistration(
    name="thorlabs_fw102c",
    driver=ThorlabsFW102C,
    model="Thorlabs FW102C",
    capabilities=("filter_wheel",),
    # 115200 Bd 8N1 (factory), commands and replies end with CR (FW102C manual, "Computer interface")
    connection=ConnectionDefaults(read_termination="\r", write_termination="\r", timeout_ms=5000,
                                  baud_rate=115200, serial=True),
    settings=FW102CSettings,
    configure=configure_fw102c,
    safe_state=driver_safe_state("left in place (nothing hazardous; moving it would change the beam)"),
    emulator="sim_instruments.fw102c:FW102CEmulator",
)
