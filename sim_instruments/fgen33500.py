"""Emulator of a Keysight (Agilent) 33500B-series function generator, channel 1 (``sim://fgen``).

Strict SCPI (:class:`sim_instruments.scpi.ScpiInstrument`): short/long forms, any case, optional ``SOURce[1]``
node, the headers of the user's guide only (no undocumented ``[:LEVel]`` nodes); an unknown header (-113), a
missing or extra parameter (-109/-108), a bad keyword (-141) or a value out of range (-222) goes to
``SYST:ERR?`` and changes nothing.

Its output is cabled to the laser's analog modulation input (:mod:`sim_instruments.modulation`): when the
output is on, the shape is a sine and the LaserBoxx has ``AM 1``, ``bench.laser.modulation_depth`` is the peak
voltage at the laser's input over that input's full scale and ``bench.laser.modulation_frequency_Hz`` the
frequency.

Sources and confidence ([H] manual, [M] secondary or drivers of real units, [L] assumption); Keysight "33500 Series
Trueform Waveform Generators Operating and Service Guide" (its SCPI programming reference) and the 33500B data
sheet:
- commands ``[SOUR[1]:]FUNC``, ``FREQ``, ``VOLT``, ``VOLT:OFFS``, ``VOLT:UNIT VPP|VRMS|DBM``, ``OUTP[1] ON|OFF``,
  ``OUTP[1]:LOAD <Ω>|INF|MIN|MAX``, ``SYST:ERR?``, ``*IDN?`` [H];
- ``*RST``: sine, 1 kHz, 100 mVpp, 0 V offset, load 50 Ω, VPP, output off [H];
- the output is a source behind 50 Ω; ``OUTP:LOAD`` only says what load the displayed amplitude and offset refer to
  (into high impedance, ``INF``, the voltage is twice the 50 Ω value); changing the load setting rescales the
  displayed values and keeps the physical output (user's guide, "Output termination") [H]. ``DBM`` needs a
  finite load (-221 otherwise) [M];
- limits into 50 Ω: 1 mVpp–10 Vpp, |offset| + Vpp/2 ≤ 5 V (twice into high impedance) [H data sheet]; sine up to
  30 MHz (33519B/33520B/33521B/33522B; the 20 MHz models 33509B–33512B are not modelled), 1 µHz resolution [H];
- a value outside its limits: the real unit clips it and queues -222 "Data out of range"; this emulator queues
  -222 and leaves the setting unchanged (the repo's strict convention) [L]; an amplitude and offset that together
  exceed the limit: -221 "Settings conflict" [L];
- ``*IDN?`` ``Agilent Technologies,33522B,MY52800000,3.05-1.19-2.00-52-00`` [L example values]; number replies
  ``+1.000000000000000E+03`` [M]; INF load answers ``9.9E+37`` [H].
"""

from __future__ import annotations

import math
from typing import Any

from sim_instruments.modulation import GENERATOR_SOURCE_OHM, GeneratorOutput, link, update_laser_modulation
from sim_instruments.scpi import COMMON_COMMANDS, SYSTEM_ERROR_COMMANDS, Command, Params, ScpiError, ScpiInstrument

IDENTITY = "Agilent Technologies,33522B,MY52800000,3.05-1.19-2.00-52-00"
SHAPES = ("SINusoid", "SQUare", "TRIangle", "RAMP", "PULSe", "PRBS", "NOISe", "ARB", "DC")
FREQUENCY_RANGE_HZ = (1e-6, 30e6)
VPP_RANGE_50_OHM = (1e-3, 10.0)
PEAK_LIMIT_50_OHM_V = 5.0
LOAD_RANGE_OHM = (1.0, 10e3)
SCPI_INF = 9.9e37
DEFAULTS = {"shape": "SIN", "frequency_Hz": 1e3, "vpp_50": 0.1, "offset_50": 0.0}


def _fmt(value: float) -> str:
    return f"{value:+.15E}"


class Fgen33500Emulator(ScpiInstrument):
    """Channel 1 of a 33522B whose output drives the bench laser's analog modulation input.

    bench: object with ``laser`` (the modulation fields are written through :mod:`sim_instruments.modulation`).
    State is kept as the physical output (open-circuit volts); the displayed amplitude and offset are that scaled
    by the load setting: ``V_display = V_oc·R/(R + 50 Ω)`` (``R`` = INF: ``V_oc``).
    """

    SIM_NAMES: tuple[str, ...] = ("fgen",)

    def __init__(self, bench: Any) -> None:
        super().__init__()
        self.bench = bench
        self.output = GeneratorOutput()
        link(bench).generator = self.output
        self.reset()

    # -- hooks ----------------------------------------------------------------------------------------------
    def identity(self) -> str:
        return IDENTITY

    def reset(self) -> None:
        self.shape = DEFAULTS["shape"]
        self.frequency_Hz = DEFAULTS["frequency_Hz"]
        self.load_ohm = 50.0
        self.unit = "VPP"
        self.vpp_oc = 2.0 * DEFAULTS["vpp_50"]  # 100 mVpp into 50 Ω is 200 mVpp open circuit
        self.offset_oc = 2.0 * DEFAULTS["offset_50"]
        self.on = False
        self._publish()

    def _publish(self) -> None:
        out = self.output
        out.on, out.shape, out.frequency_Hz = self.on, self.shape, self.frequency_Hz
        out.peak_open_circuit_V = self.vpp_oc / 2.0
        update_laser_modulation(self.bench)

    # -- load scaling ---------------------------------------------------------------------------------------
    def _display_factor(self, load_ohm: float | None = None) -> float:
        """V_display / V_open-circuit for a load setting (Ω, inf for INF)."""
        r = self.load_ohm if load_ohm is None else load_ohm
        return 1.0 if math.isinf(r) else r / (r + GENERATOR_SOURCE_OHM)

    def _vpp_oc_limits(self) -> tuple[float, float]:
        """Open-circuit Vpp limits: the data sheet's 50 Ω values, doubled (the source is behind 50 Ω)."""
        return 2.0 * VPP_RANGE_50_OHM[0], 2.0 * VPP_RANGE_50_OHM[1]

    def _amplitude_display(self) -> float:
        vpp = self.vpp_oc * self._display_factor()
        if self.unit == "VRMS":
            return vpp / (2.0 * math.sqrt(2.0))
        if self.unit == "DBM":
            vrms = vpp / (2.0 * math.sqrt(2.0))
            return 10.0 * math.log10(vrms**2 / self.load_ohm / 1e-3)
        return vpp

    def _vpp_from_display(self, value: float) -> float:
        """The open-circuit Vpp that a displayed amplitude in the present unit means."""
        if self.unit == "VRMS":
            vpp = value * 2.0 * math.sqrt(2.0)
        elif self.unit == "DBM":
            vpp = math.sqrt(10.0 ** (value / 10.0) * 1e-3 * self.load_ohm) * 2.0 * math.sqrt(2.0)
        else:
            vpp = value
        return vpp / self._display_factor()

    def _check_headroom(self, vpp_oc: float, offset_oc: float) -> None:
        if abs(offset_oc) + vpp_oc / 2.0 > 2.0 * PEAK_LIMIT_50_OHM_V * (1 + 1e-12):
            raise ScpiError(-221, "amplitude and offset exceed the output's limits")

    # -- command handlers -----------------------------------------------------------------------------------
    def _set_shape(self, p: Params) -> None:
        self.shape = p.keyword(0, SHAPES)
        self._publish()

    def _set_frequency(self, p: Params) -> None:
        self.frequency_Hz = p.number(0, *FREQUENCY_RANGE_HZ, DEFAULTS["frequency_Hz"])
        self._publish()

    def _query_frequency(self, p: Params) -> str:
        return _fmt(p.number(0, *FREQUENCY_RANGE_HZ, DEFAULTS["frequency_Hz"]) if len(p) else self.frequency_Hz)

    def _set_amplitude(self, p: Params) -> None:
        lo, hi = self._vpp_oc_limits()
        if p.is_word(0, "MINimum", "MAXimum", "DEFault"):
            vpp_oc = {"MIN": lo, "MAX": hi}.get(p.keyword(0, ("MINimum", "MAXimum", "DEFault")), 0.2)
        else:
            vpp_oc = self._vpp_from_display(p.number(0, -math.inf, math.inf))
            if not lo * (1 - 1e-9) <= vpp_oc <= hi * (1 + 1e-9):
                raise ScpiError(-222)
        self._check_headroom(vpp_oc, self.offset_oc)
        self.vpp_oc = vpp_oc
        self._publish()

    def _set_offset(self, p: Params) -> None:
        limit = 2.0 * PEAK_LIMIT_50_OHM_V * self._display_factor()
        offset_oc = p.number(0, -limit, limit, 0.0) / self._display_factor()
        self._check_headroom(self.vpp_oc, offset_oc)
        self.offset_oc = offset_oc

    def _set_unit(self, p: Params) -> None:
        unit = p.keyword(0, ("VPP", "VRMS", "DBM"))
        if unit == "DBM" and math.isinf(self.load_ohm):
            raise ScpiError(-221, "dBm needs a finite load")
        self.unit = unit

    def _set_load(self, p: Params) -> None:
        if p.is_word(0, "INFinity"):
            load = math.inf
        else:
            load = p.number(0, *LOAD_RANGE_OHM, 50.0)
        if math.isinf(load) and self.unit == "DBM":
            raise ScpiError(-221, "dBm needs a finite load")
        self.load_ohm = load  # the physical output stays: the displayed values rescale

    def _query_load(self, p: Params) -> str:
        return "9.9E+37" if math.isinf(self.load_ohm) else _fmt(self.load_ohm)

    def _set_output(self, p: Params) -> None:
        self.on = p.boolean(0)
        self._publish()


E = Fgen33500Emulator
_SOUR = "[:SOURce[1]]"
_VOLT = f"{_SOUR}:VOLTage"
Fgen33500Emulator.COMMANDS = (
    *COMMON_COMMANDS,
    *SYSTEM_ERROR_COMMANDS,
    Command(f"{_SOUR}:FUNCtion", write=E._set_shape, query=lambda s, p: s.shape),
    Command(f"{_SOUR}:FREQuency", write=E._set_frequency, query=E._query_frequency, qargs=(0, 1)),
    Command(_VOLT, write=E._set_amplitude, query=lambda s, p: _fmt(s._amplitude_display())),
    Command(f"{_VOLT}:OFFSet", write=E._set_offset,
            query=lambda s, p: _fmt(s.offset_oc * s._display_factor())),
    Command(f"{_VOLT}:UNIT", write=E._set_unit, query=lambda s, p: s.unit),
    Command(":OUTPut[1]:LOAD", write=E._set_load, query=E._query_load),
    Command(":OUTPut[1]", write=E._set_output, query=lambda s, p: "1" if s.on else "0"),
)
