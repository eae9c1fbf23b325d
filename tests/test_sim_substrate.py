"""The simulated multi-pixel substrate: switch channels → devices → SMU terminals (sim_instruments.wiring).

Each SMU emulator is driven with its real SCPI through an EmulatorAdapter; the relays are set as a switch
emulator sets them (``bench.relays_changed``). Expected values come from pvlib's single-diode model (or, where
pvlib's closed form cannot, its Brent solver, or scipy's ODE solver on pvlib's I–V), never from the bench.
"""

from __future__ import annotations

import math

import numpy as np
import pvlib
import pytest
from scipy.constants import Boltzmann, elementary_charge
from scipy.integrate import solve_ivp
from scipy.optimize import brentq

from sim_instruments.adapter import EmulatorAdapter
from sim_instruments.bench import Bench, CellParameters, Hysteresis, Light
from sim_instruments.config import SimulationConfig
from sim_instruments.keithley2400 import Keithley2400Emulator
from sim_instruments.keithley2450 import Keithley2450Emulator
from sim_instruments.wiring import Wire

T_K = 298.15
VT_V = Boltzmann * T_K / elementary_charge
SWITCH = "switch"
#: channels 1-4 (bank 1) serve devices 1-4 on sim://smu, channels 11-14 (bank 2) devices 5-8 on sim://smu2
CHANNEL = {1: 1, 2: 2, 3: 3, 4: 4, 5: 11, 6: 12, 7: 13, 8: 14}
WIRES = [Wire(SWITCH, CHANNEL[d], d, "smu" if d <= 4 else "smu2") for d in range(1, 9)]

#: eight different devices (jph mA/cm², j0 A/cm², n, rs Ω·cm², rsh Ω·cm², area cm², stack)
DEVICES = {
    1: (18.3, 1.16e-15, 1.5, 3.84, 2000.0, 0.049, "n-i-p"),
    2: (20.1, 5.0e-16, 1.4, 2.5, 5000.0, 0.049, "n-i-p"),
    3: (17.0, 1.0e-14, 1.6, 4.0, 30.0, 0.049, "n-i-p"),   # shunted
    4: (19.0, 2.0e-15, 1.5, 8.0, 1500.0, 0.1, "n-i-p"),   # larger pixel, more series resistance
    5: (0.0, 1.16e-15, 1.5, 3.84, 2000.0, 0.049, "n-i-p"),  # dead: no photocurrent
    6: (18.3, 1.16e-15, 1.5, 3.84, 2000.0, 0.049, "p-i-n"),  # anode on LO: the SMU sees both signs flipped
    7: (16.0, 3.0e-15, 1.7, 5.0, 800.0, 0.0625, "n-i-p"),
    8: (21.0, 8.0e-16, 1.3, 1.5, 10000.0, 0.049, "n-i-p"),
}


def params(number: int, **more: object) -> CellParameters:
    jph, j0, n, rs, rsh, area, stack = DEVICES[number]
    return CellParameters(jph_mA_cm2=jph, j0_A_cm2=j0, ideality=n, rs_ohm_cm2=rs, rsh_ohm_cm2=rsh, area_cm2=area,
                          temperature_K=T_K, stack=stack, **more)


def substrate(**overrides: CellParameters) -> Bench:
    """The eight devices under 1 sun (no flicker, shutter open), wired as :data:`WIRES`; ``overrides`` by
    ``d<number>`` replace a device."""
    devices = [overrides.get(f"d{k}", params(k)) for k in range(1, 9)]
    return Bench(devices=devices, light=Light(irradiance_W_m2=1000.0, shutter_open=True, flicker=0.0),
                 wiring=WIRES)


def expected_iv(number: int, rs_extra_ohm_cm2: float = 0.0) -> dict[str, float]:
    """pvlib's Isc (A) and Voc (V) of device ``number``, as the SMU reports them (p-i-n: signs flipped)."""
    jph, j0, n, rs, rsh, area, stack = DEVICES[number]
    out = pvlib.pvsystem.singlediode(jph * 1e-3, j0, rs + rs_extra_ohm_cm2, rsh, n * VT_V)
    sign = -1.0 if stack == "p-i-n" else 1.0
    # the SMU measures current into HI: -Jsc·area on an n-i-p pixel at 0 V
    return {"i_sc_A": -sign * float(out["i_sc"]) * area, "v_oc_V": sign * float(out["v_oc"])}


def device_current_A(number: int, v_V: float, suns: float = 1.0) -> float:
    """pvlib's current into HI (A) of device ``number`` at HI − LO = ``v_V``."""
    jph, j0, n, rs, rsh, area, stack = DEVICES[number]
    sign = -1.0 if stack == "p-i-n" else 1.0
    j = pvlib.pvsystem.i_from_v(sign * v_V, jph * 1e-3 * suns, j0, rs, rsh, n * VT_V)
    return -sign * float(j) * area


class Smu2400:
    """A Keithley 2400 emulator on ``sim://<name>`` driven with SCPI through an EmulatorAdapter."""

    def __init__(self, bench: Bench, name: str) -> None:
        self.adapter = EmulatorAdapter(Keithley2400Emulator(bench, sim_name=name))
        self.adapter.write("*RST")
        self.adapter.write(":SENS:FUNC:CONC ON;:SENS:FUNC:ALL;:FORM:ELEM VOLT,CURR;:SENS:CURR:NPLC 10;"
                           ":SENS:VOLT:NPLC 10")

    def _read(self) -> tuple[float, float]:
        self.adapter.write(":READ?")
        v, i = (float(x) for x in self.adapter.read().split(","))
        return v, i

    def at_voltage(self, v_V: float, limit_A: float = 0.05) -> tuple[float, float]:
        self.adapter.write(f":SOUR:FUNC VOLT;:SOUR:VOLT:RANG 2;:SOUR:VOLT {v_V};:SENS:CURR:PROT {limit_A};"
                           ":SENS:CURR:RANG:AUTO ON;:OUTP ON")
        return self._read()

    def at_current(self, i_A: float, limit_V: float = 2.0) -> tuple[float, float]:
        self.adapter.write(f":SOUR:FUNC CURR;:SOUR:CURR:RANG 1e-3;:SOUR:CURR {i_A};:SENS:VOLT:PROT {limit_V};"
                           ":SENS:VOLT:RANG 2;:OUTP ON")
        return self._read()

    def errors(self) -> str:
        self.adapter.write(":SYST:ERR:ALL?")
        return self.adapter.read()


class Smu2450:
    """A Keithley 2450 emulator on ``sim://<name>`` driven with SCPI through an EmulatorAdapter."""

    def __init__(self, bench: Bench, name: str) -> None:
        self.adapter = EmulatorAdapter(Keithley2450Emulator(bench, sim_name=name))
        self.adapter.write("*RST")

    def isc_A(self) -> float:
        self.adapter.write(':SOUR:FUNC VOLT;:SENS:FUNC "CURR";:SENS:CURR:NPLC 10;:SOUR:VOLT:ILIM 0.05;'
                           ':SOUR:VOLT 0;:OUTP ON;:READ?')
        return float(self.adapter.read())

    def voc_V(self) -> float:
        self.adapter.write(':SOUR:FUNC CURR;:SENS:FUNC "VOLT";:SENS:VOLT:NPLC 10;:SOUR:CURR:VLIM 2;'
                           ':SOUR:CURR 0;:OUTP ON;:READ?')
        return float(self.adapter.read())


def connect(bench: Bench, *devices: int) -> None:
    """Close exactly the channels of ``devices`` (as the switch emulator reports them)."""
    bench.relays_changed(SWITCH, frozenset(CHANNEL[d] for d in devices))


# reading noise: 2e-5 of the range at 1 NPLC, / sqrt(10) at 10 NPLC (sim_instruments.smu_physics): on the 10 mA
# range 6e-8 A, on the 2 V range 1.3e-5 V; the limits below are about 5 sigma
ISC_ABS_A = 3e-7
VOC_ABS_V = 7e-5


def test_each_of_eight_devices_is_what_its_smu_sees_through_its_channel() -> None:
    bench = substrate()
    smus = {"smu": Smu2400(bench, "smu"), "smu2": Smu2400(bench, "smu2")}
    for number in range(1, 9):
        connect(bench, number)
        smu = smus["smu" if number <= 4 else "smu2"]
        want = expected_iv(number)
        v0, i_sc = smu.at_voltage(0.0)
        v_oc, i0 = smu.at_current(0.0)
        assert v0 == pytest.approx(0.0, abs=VOC_ABS_V)
        assert i_sc == pytest.approx(want["i_sc_A"], abs=ISC_ABS_A), number
        assert v_oc == pytest.approx(want["v_oc_V"], abs=VOC_ABS_V), number
        assert i0 == pytest.approx(0.0, abs=3e-8)  # the 1 mA source range: 6e-9 A rms
        # a point in the power quadrant (or the mirror one for the p-i-n pixel)
        v_probe = 0.8 * want["v_oc_V"]
        _, i_probe = smu.at_voltage(v_probe)
        assert i_probe == pytest.approx(device_current_A(number, v_probe), abs=ISC_ABS_A), number
        assert bench.connected_devices("smu" if number <= 4 else "smu2") == (number,)
        assert smu.errors().startswith("0,")
    assert expected_iv(5)["i_sc_A"] == pytest.approx(0.0, abs=1e-15)  # the dead pixel is dead in the model
    assert expected_iv(5)["v_oc_V"] == pytest.approx(0.0, abs=1e-15)


def test_nothing_connected_is_an_open_circuit() -> None:
    bench = substrate()
    smu = Smu2400(bench, "smu")
    connect(bench)  # every relay open
    for v_V in (0.0, 0.5, -0.5, 1.0):
        _, i_A = smu.at_voltage(v_V)
        assert i_A == pytest.approx(0.0, abs=1e-9)  # the 1 uA range's noise is 2e-11 A at 10 NPLC
    v_V, _ = smu.at_current(1e-6, limit_V=2.0)  # a sourced current has nowhere to go: the voltage limit
    assert abs(v_V) == pytest.approx(2.0, abs=1e-3)
    v_oc, _ = smu.at_current(0.0)
    assert v_oc == pytest.approx(0.0, abs=VOC_ABS_V)
    # a channel of the other bank closed: smu still sees nothing
    connect(bench, 6)
    _, i_A = smu.at_voltage(0.0)
    assert i_A == pytest.approx(0.0, abs=1e-9)
    assert bench.connected_devices("smu") == ()
    # and an unwired bench's second SMU is an open circuit too
    plain = Bench(devices=[params(1)], light=Light(shutter_open=True))
    _, i_A = Smu2400(plain, "smu2").at_voltage(0.0)
    assert i_A == pytest.approx(0.0, abs=1e-9)


def test_two_devices_connected_at_once_are_in_parallel() -> None:
    bench = substrate()
    smu = Smu2400(bench, "smu")
    connect(bench, 1, 4)  # the guarantee broken: two pixels on one SMU
    assert bench.connected_devices("smu") == (1, 4)
    for v_V in (-0.2, 0.0, 0.6, 0.95, 1.1):
        _, i_A = smu.at_voltage(v_V)
        assert i_A == pytest.approx(device_current_A(1, v_V) + device_current_A(4, v_V), abs=ISC_ABS_A), v_V
    # the voltage at 0 A: where the two currents cancel (between the two Voc)
    v_oc_pair = brentq(lambda v: device_current_A(1, v) + device_current_A(4, v), 0.5, 1.3, xtol=1e-12)
    v_oc, _ = smu.at_current(0.0)
    assert v_oc == pytest.approx(v_oc_pair, abs=VOC_ABS_V)
    assert min(expected_iv(1)["v_oc_V"], expected_iv(4)["v_oc_V"]) < v_oc_pair
    assert v_oc_pair < max(expected_iv(1)["v_oc_V"], expected_iv(4)["v_oc_V"])
    # at a sourced current the voltage is where the sum carries it
    i_target = -1.0e-3
    v_want = brentq(lambda v: device_current_A(1, v) + device_current_A(4, v) - i_target, 0.0, 1.3, xtol=1e-12)
    v_V, i_A = smu.at_current(i_target)
    assert v_V == pytest.approx(v_want, abs=VOC_ABS_V)
    assert i_A == pytest.approx(i_target, rel=1e-4)


def test_two_terminals_at_once_each_see_their_own_device() -> None:
    bench = substrate()
    smu, smu2 = Smu2400(bench, "smu"), Smu2450(bench, "smu2")
    connect(bench, 2, 7)
    assert (bench.connected_devices("smu"), bench.connected_devices("smu2")) == ((2,), (7,))
    for _ in range(2):  # interleaved readings: neither SMU's bias reaches the other's device
        _, i_sc = smu.at_voltage(0.0)
        v_oc2 = smu2.voc_V()
        v_oc, _ = smu.at_current(0.0)
        i_sc2 = smu2.isc_A()
        assert i_sc == pytest.approx(expected_iv(2)["i_sc_A"], abs=ISC_ABS_A)
        assert v_oc == pytest.approx(expected_iv(2)["v_oc_V"], abs=VOC_ABS_V)
        assert i_sc2 == pytest.approx(expected_iv(7)["i_sc_A"], abs=ISC_ABS_A)
        assert v_oc2 == pytest.approx(expected_iv(7)["v_oc_V"], abs=VOC_ABS_V)
    # moving smu2 to another pixel leaves smu's alone
    connect(bench, 2, 8)
    assert smu2.isc_A() == pytest.approx(expected_iv(8)["i_sc_A"], abs=ISC_ABS_A)
    _, i_sc = smu.at_voltage(0.0)
    assert i_sc == pytest.approx(expected_iv(2)["i_sc_A"], abs=ISC_ABS_A)


def test_a_stuck_relay_leaves_its_device_unconnected() -> None:
    bench = substrate()
    bench.stuck_relays[SWITCH] = {CHANNEL[3]}
    smu = Smu2400(bench, "smu")
    connect(bench, 3)
    assert bench.connected_devices("smu") == ()
    assert bench.closed_relays(SWITCH) == frozenset()
    _, i_A = smu.at_voltage(0.0)
    assert i_A == pytest.approx(0.0, abs=1e-9)


def test_a_bad_contact_is_a_large_series_resistance() -> None:
    contact_ohm = 1e9
    area = DEVICES[7][5]
    bench = substrate(d7=params(7, contact_resistance_ohm=contact_ohm))
    smu = Smu2450(bench, "smu2")
    connect(bench, 7)
    jph, j0, n, rs, rsh, area, _ = DEVICES[7]
    rs_total = rs + contact_ohm * area  # the contact in series: Ω·cm² of the pixel
    # pvlib's closed form overflows at this Rs; its Brent solver does not
    j_sc = float(pvlib.pvsystem.i_from_v(0.0, jph * 1e-3, j0, rs_total, rsh, n * VT_V, method="brentq"))
    assert j_sc * area == pytest.approx(expected_iv(7)["v_oc_V"] / contact_ohm, rel=1e-3)  # ~ Voc / R
    assert smu.isc_A() == pytest.approx(-j_sc * area, abs=2e-11)  # 1 uA range: noise 6e-12 A at 10 NPLC
    assert smu.voc_V() == pytest.approx(expected_iv(7)["v_oc_V"], abs=VOC_ABS_V)  # no current, no drop
    # the slope a contact check measures at a small bias is 1/(R_contact + the cell's own)
    term = bench.terminal("smu2")
    term.set_cell_bias(-0.01)
    i_lo = term.cell_current_A()
    term.set_cell_bias(0.01)
    i_hi = term.cell_current_A()
    assert 0.02 / (i_hi - i_lo) == pytest.approx(contact_ohm, rel=1e-3)
    # a moderate contact shows as that much more Rs
    bench2 = substrate(d1=params(1, contact_resistance_ohm=200.0))
    connect(bench2, 1)
    smu1 = Smu2400(bench2, "smu")
    v_probe = 0.9
    _, i_A = smu1.at_voltage(v_probe)
    jph, j0, n, rs, rsh, area, _ = DEVICES[1]
    j = float(pvlib.pvsystem.i_from_v(v_probe, jph * 1e-3, j0, rs + 200.0 * area, rsh, n * VT_V))
    assert i_A == pytest.approx(-j * area, abs=ISC_ABS_A)
    assert abs(i_A - device_current_A(1, v_probe)) > 20 * ISC_ABS_A  # and it is not the good-contact current


def test_capacitance_of_a_wired_device_charges_its_terminal() -> None:
    """0 A sourced from a forced 0 V: C·A·dV/dt = J(V)·A, solved here with scipy on pvlib's J(V)."""
    c_nF_cm2 = 1e5
    bench = substrate(d2=params(2, capacitance_nF_cm2=c_nF_cm2))
    connect(bench, 2)
    term = bench.terminal("smu")
    jph, j0, n, rs, rsh, area, _ = DEVICES[2]
    c_F = c_nF_cm2 * 1e-9 * area
    term.set_cell_bias(0.0)
    assert term.source_current(0.0, math.inf, 5.0) == (0.0, False)

    def dv_dt(_t: float, v: np.ndarray) -> list[float]:
        return [float(pvlib.pvsystem.i_from_v(v[0], jph * 1e-3, j0, rs, rsh, n * VT_V)) * area / c_F]

    # 40 readings over the transient (0 V to Voc in ~ C·Voc/Jsc = 6 ms), as tests/test_sim_capacitance.py does
    times = np.linspace(0.0, 0.012, 41)[1:]
    want = solve_ivp(dv_dt, (0.0, times[-1]), [0.0], t_eval=times, rtol=1e-11, atol=1e-13, method="Radau").y[0]
    t_prev = 0.0
    for t_s, v_want in zip(times, want, strict=True):
        bench.clock.sleep(t_s - t_prev)
        t_prev = t_s
        v_V, limited = term.source_current(0.0, math.inf, 5.0)
        assert not limited
        assert v_V == pytest.approx(v_want, abs=10e-6), t_s  # the integrator's accuracy (test_sim_capacitance)
    assert want[0] < 0.1 * expected_iv(2)["v_oc_V"]  # not at Voc at once
    assert want[-1] == pytest.approx(expected_iv(2)["v_oc_V"], abs=1e-4)


def test_ion_lag_of_a_wired_device_follows_its_terminal_and_open_circuit_when_disconnected() -> None:
    """s relaxes to s_eq(V) = 1/(1 + exp(−(V − V_h)/w)) with τ; J0_eff = J0·exp(β(s_eq(V) − s)) (methods
    ref. §1.7): the expected currents from pvlib with that J0 and a hand-computed s."""
    hyst = Hysteresis(enabled=True, tau_s=10.0, beta=3.0, v_half_V=0.6, width_V=0.15)
    bench = substrate(d4=params(4, hysteresis=hyst))
    connect(bench, 4)
    term = bench.terminal("smu")
    jph, j0, n, rs, rsh, area, _ = DEVICES[4]

    def s_eq(v: float) -> float:
        return 1.0 / (1.0 + math.exp(-(v - hyst.v_half_V) / hyst.width_V))

    def current_A(v: float, s: float) -> float:
        j0_eff = j0 * math.exp(hyst.beta * (s_eq(v) - s))
        return -float(pvlib.pvsystem.i_from_v(v, jph * 1e-3, j0_eff, rs, rsh, n * VT_V)) * area

    term.set_cell_bias(1.1)
    bench.clock.sleep(30 * hyst.tau_s)  # s = s_eq(1.1) to e^-30
    v_probe = 1.0  # near Voc, where J0 matters
    term.set_cell_bias(v_probe)
    assert term.cell_current_A() == pytest.approx(current_A(v_probe, s_eq(1.1)), rel=1e-9, abs=1e-12)
    bench.clock.sleep(hyst.tau_s)
    s_now = s_eq(v_probe) + (s_eq(1.1) - s_eq(v_probe)) * math.exp(-1.0)
    assert term.cell_current_A() == pytest.approx(current_A(v_probe, s_now), rel=1e-9, abs=1e-12)
    assert current_A(v_probe, s_now) != pytest.approx(current_A(v_probe, s_eq(1.1)), rel=1e-2)  # the lag shows
    # disconnected, the device floats at its own Voc: its ions go to s_eq(Voc)
    connect(bench)
    bench.clock.sleep(30 * hyst.tau_s)
    connect(bench, 4)
    term.set_cell_bias(v_probe)
    v_oc = float(pvlib.pvsystem.singlediode(jph * 1e-3, j0, rs, rsh, n * VT_V)["v_oc"])
    assert term.cell_current_A() == pytest.approx(current_A(v_probe, s_eq(v_oc)), rel=1e-9, abs=1e-12)
    assert current_A(v_probe, s_eq(v_oc)) != pytest.approx(current_A(v_probe, s_now), rel=1e-2)


def test_wiring_in_the_simulation_section_is_checked_and_builds_the_fixture() -> None:
    devices = [{"jph_mA_cm2": 18.0}, {"jph_mA_cm2": 12.0, "contact_resistance_ohm": 1e9}]
    wiring = [{"switch": "switch", "channel": 1, "device": 1, "terminal": "smu"},
              {"switch": "switch", "channel": 11, "device": 2, "terminal": "smu2"}]
    sim = SimulationConfig.model_validate({"devices": devices, "wiring": wiring})
    assert sim.wires() == (Wire("switch", 1, 1, "smu"), Wire("switch", 11, 2, "smu2"))
    assert SimulationConfig().wiring == []  # the default: no fixture
    bad = [
        ([{"switch": "switch", "channel": 1, "device": 3}], r"\.wiring\.0\.device = 3: the bench has 2 devices"),
        ([{"switch": "switch", "channel": 1, "device": 1}, {"switch": "switch", "channel": 1, "device": 2}],
         "channel 1 of switch 'switch' is already wired"),
        ([{"switch": "switch", "channel": 1, "device": 1, "terminal": "smu"},
          {"switch": "switch", "channel": 2, "device": 1, "terminal": "smu2"}], "each device on one terminal"),
    ]
    for entries, message in bad:
        with pytest.raises(ValueError, match=message):
            SimulationConfig.model_validate({"devices": devices, "wiring": entries})
    with pytest.raises(ValueError, match="terminal"):
        SimulationConfig.model_validate({"devices": devices,
                                         "wiring": [{"switch": "s", "channel": 1, "device": 1, "terminal": "x"}]})
    with pytest.raises(ValueError, match="no SMU terminal 'smu9'"):
        substrate().terminal("smu9")


def test_an_unwired_bench_is_its_own_smu_terminal() -> None:
    """No wiring: sim://smu drives the bench's selected device as before, and relays change nothing."""
    bench = Bench(devices=[params(1), params(2)], light=Light(shutter_open=True))
    assert bench.terminal("smu") is bench
    smu = Smu2400(bench, "smu")
    bench.relays_changed(SWITCH, frozenset({1, 2}))
    _, i_sc = smu.at_voltage(0.0)
    assert i_sc == pytest.approx(expected_iv(1)["i_sc_A"], abs=ISC_ABS_A)
    bench.select_device(2)
    _, i_sc = smu.at_voltage(0.0)
    assert i_sc == pytest.approx(expected_iv(2)["i_sc_A"], abs=ISC_ABS_A)
    assert bench.connected_devices("smu") == (2,)


def test_two_smus_read_concurrently_what_each_reads_alone() -> None:
    """Each wired terminal has its own noise stream (from the bench seed and its name): interleaving the two
    SMUs' readings, as concurrent runs do on the virtual clock, changes none of them (flickering lamp)."""

    def bench_with_flicker() -> Bench:
        devices = [params(k) for k in range(1, 9)]
        return Bench(devices=devices, light=Light(shutter_open=True, flicker=0.01), wiring=WIRES, seed=7)

    def readings(order: list[str]) -> dict[str, list[tuple[float, float]]]:
        bench = bench_with_flicker()
        smus = {"smu": Smu2400(bench, "smu"), "smu2": Smu2400(bench, "smu2")}
        connect(bench, 3, 6)
        got: dict[str, list[tuple[float, float]]] = {"smu": [], "smu2": []}
        for name in order:
            got[name].append(smus[name].at_voltage(0.0))
            got[name].append(smus[name].at_current(0.0))
        return got

    one_by_one = readings(["smu"] * 4 + ["smu2"] * 4)
    interleaved = readings(["smu", "smu2"] * 4)
    assert interleaved == one_by_one
    i_sc = [i for _, i in one_by_one["smu"][::2]]
    assert len(set(i_sc)) == 4  # the flicker is there: every reading differs
    assert np.mean(i_sc) == pytest.approx(expected_iv(3)["i_sc_A"], rel=0.02)


def test_a_station_with_two_smus_and_wiring_builds_the_fixture() -> None:
    """Through labctl's station schema and the simulator provider: sim://smu2 is a resource, the wiring is in
    the bench, and a bad wire is one line naming its key."""
    from labctl.config import ConfigError, parse_station
    from sim_instruments.provider import Simulator
    from tests.helpers import default_station

    data = default_station()
    data["instruments"]["smu2"] = dict(data["instruments"]["smu"], resource="sim://smu2")
    sim = data.setdefault("simulation", {})
    sim.pop("device", None)
    sim["devices"] = [{"jph_mA_cm2": 18.0 + k} for k in range(8)]
    sim["wiring"] = [{"switch": SWITCH, "channel": CHANNEL[d], "device": d, "terminal": "smu" if d <= 4 else "smu2"}
                     for d in range(1, 9)]
    bench = Simulator(parse_station(data)).bench
    assert bench is not None and bench.wiring == tuple(WIRES)
    bench.relays_changed(SWITCH, frozenset({4, 11}))
    assert (bench.connected_devices("smu"), bench.connected_devices("smu2")) == ((4,), (5,))
    assert bench.selected_device == 4  # the EQE/PL/temperature DUT follows sim://smu's pixel
    sim["wiring"][2]["device"] = 9
    with pytest.raises(ConfigError, match=r"simulation.wiring.2.device = 9: the bench has 8 devices"):
        parse_station(data)


def test_a_pixel_switched_in_under_a_sourced_current_starts_from_its_own_voc() -> None:
    """With capacitance the terminal voltage is a state; a relay change under the source puts the new pixel's
    static Voc there (it floated at it until then), not the voltage the old pixel left."""
    c_nF_cm2 = 1e5
    bench = substrate(d1=params(1, capacitance_nF_cm2=c_nF_cm2), d2=params(2, capacitance_nF_cm2=c_nF_cm2))
    term = bench.terminal("smu")
    connect(bench, 1)
    term.set_cell_bias(0.0)
    term.source_current(0.0, math.inf, 5.0)
    bench.clock.sleep(1.0)  # settled at pixel 1's Voc
    v1, _ = term.source_current(0.0, math.inf, 5.0)
    assert v1 == pytest.approx(expected_iv(1)["v_oc_V"], abs=1e-5)
    connect(bench, 2)
    v2, _ = term.source_current(0.0, math.inf, 5.0)
    assert v2 == pytest.approx(expected_iv(2)["v_oc_V"], abs=1e-5)
    assert abs(expected_iv(1)["v_oc_V"] - expected_iv(2)["v_oc_V"]) > 1e-2
