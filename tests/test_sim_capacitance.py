"""The simulated device's junction capacitance: Voc at a sourced current (I = 0) settles with the device's time
constant, read through the real Keithley 2450 driver on the in-process simulated bench (virtual clock).

Expected values are computed here, independently of the simulator: the ODE C·dV/dt = X·Jsc − Σ J0k·(exp(V/(n_k
Vt)) − 1) − (I_load + V/R_in)/A written out by hand and solved by scipy's solve_ivp (Radau), and for one diode its
exact solution (y = exp(−V/(n·Vt)) relaxes exponentially with τ = C·n·Vt/(X·Jsc + J0)). Rs drops out: at I = 0
the cell carries at most the 2450's picoamperes, a J·Rs of nanovolts; the cells have no shunt.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from drivers.keithley2450 import Keithley2450
from labctl.config import ConfigError, parse_station
from sim_instruments.adapter import EmulatorAdapter
from sim_instruments.bench import Bench, Laser, Light
from sim_instruments.capacitance import relax_voltage_V
from sim_instruments.compose import cell_parameters
from sim_instruments.config import SimulationConfig
from sim_instruments.keithley2450 import Keithley2450Emulator
from tests.helpers import default_station
from tests.test_sim_voc_intensity import (
    AREA_CM2,
    DIODES,
    J01,
    J02,
    J04,
    JSC_A_CM2,
    VT,
    expected_voc_V,
    laser_power_W,
)

C_F_CM2 = 100e-9  # 100 nF/cm²: tau ~ 5 s at 1e-7 sun, ~0.1 us at 1 sun for the methods ref. §4.3 cell
NPLC = 10.0  # 0.6 s per reading at 50 Hz with auto-zero; reading noise 2e-5 x 2 V range / sqrt(10) = 12.6 uV rms
NOISE_V = 2e-5 * 2.0 / math.sqrt(NPLC)


def three_diode_device(**changes: float) -> dict:
    """The methods ref. §4.3 device (n = 1, 2, 4 channels) as a ``simulation.device`` mapping."""
    device = {"jph_mA_cm2": JSC_A_CM2 * 1e3, "j0_A_cm2": J01, "ideality": 1.0,
              "extra_diodes": [{"ideality": 2.0, "j0_A_cm2": J02}, {"ideality": 4.0, "j0_A_cm2": J04}],
              "rsh_ohm_cm2": math.inf, "rs_ohm_cm2": 3.0, "area_cm2": AREA_CM2, "temperature_K": 298.15,
              "capacitance_nF_cm2": C_F_CM2 * 1e9}
    device.update(changes)
    return device


def bench_of(device: dict, suns: float, laser: Laser | None = None) -> Bench:
    """A bench with ``device`` (through the simulator's schema and compose) lit by the solar simulator."""
    section = SimulationConfig.model_validate({"device": device})
    light = Light(irradiance_W_m2=1000.0 * suns, shutter_open=True)
    return Bench(cell=cell_parameters(section.device), light=light, laser=laser)


def voltmeter_at_zero_current(bench: Bench, nplc: float = NPLC, **options: float) -> Keithley2450:
    """The 2450 sourcing 0 A, measuring V, output on (the driver's configure_current_source)."""
    smu = Keithley2450(EmulatorAdapter(Keithley2450Emulator(bench, **options)))
    smu.reset()
    smu.configure_current_source(compliance_V=2.0, nplc=nplc)
    smu.set_current(0.0)
    smu.enable_output()
    return smu


def read(smu: Keithley2450) -> tuple[float, float]:
    """(bench time of the sample (s), Voc (V)): one driver reading; the time is the emulator's record of the
    reading's mid-window instant (the buffer's time stamp before it is made relative)."""
    voc = float(smu.measure_point().voltage_V[0])
    return smu.adapter.emulator.buffers["defbuffer1"].data[-1].t_s, voc


def ode_voc_V(v0_V: float, suns: float, t_s: np.ndarray, load_A: float = 0.0, r_in_ohm: float = math.inf,
              diodes: tuple[tuple[float, float], ...] = DIODES) -> np.ndarray:
    """V(t) of C·dV/dt = X·Jsc − Σ J0k·expm1(V/(n_k·Vt)) − (load_A + V/R_in)/A from V(0) = v0_V (per cm²)."""
    def rhs(_t: float, y: np.ndarray) -> list[float]:
        v = y[0]
        recombination = sum(j0 * math.expm1(v / (n * VT)) for n, j0 in diodes)
        j = suns * JSC_A_CM2 - recombination - (load_A + v / r_in_ohm) / AREA_CM2
        return [j / C_F_CM2]
    sol = solve_ivp(rhs, (0.0, float(t_s[-1])), [v0_V], method="Radau", t_eval=t_s, rtol=1e-11, atol=1e-12)
    assert sol.success
    return sol.y[0]


@pytest.mark.parametrize(("v0_V", "suns", "t_end_s"), [(0.0, 1.0, 5e-6), (1.1667, 1e-7, 50.0),
                                                      (0.2027, 1e-4, 0.05), (0.6241, 1e-3, 0.02)])
def test_integrator_is_within_10_uv_of_solve_ivp(v0_V: float, suns: float, t_end_s: float) -> None:
    """The simulator's integrator, given the test's own I(V) of the §4.3 cell (per cm²), advanced in 40 pieces
    as readings do, stays within 10 µV of solve_ivp's solution of the same ODE: from the dark to 1 sun (1.17 V
    in microseconds), from 1 sun to 1e-7 sun (a logarithmic fall over 10 τ), and up-steps at low light."""
    def net_current_A_cm2(v: float) -> float:
        return suns * JSC_A_CM2 - sum(j0 * math.expm1(min(v / (n * VT), 700.0)) for n, j0 in DIODES)

    t = np.linspace(0.0, t_end_s, 41)[1:]
    expected = ode_voc_V(v0_V, suns, t)
    v, got = v0_V, []
    for dt in np.diff(np.concatenate(([0.0], t))):
        v = relax_voltage_V(net_current_A_cm2, v, float(dt), C_F_CM2)
        got.append(v)
    assert np.max(np.abs(np.array(got) - expected)) < 10e-6
    assert abs(expected[0] - v0_V) > 1e-3  # it moved


@pytest.mark.parametrize(("x_before", "x_after", "stack"), [(1e-7, 1e-6, "n-i-p"), (1e-6, 1e-7, "n-i-p"),
                                                            (1e-7, 1e-6, "p-i-n")])
def test_voc_relaxes_after_a_light_step_as_the_ode_gives(x_before: float, x_after: float, stack: str) -> None:
    """After a step of the solar simulator's irradiance, Voc at I = 0 on a 2450 with its +10 pA offset
    (drawn from the device) and 10 GΩ input resistance follows the hand-written ODE, reading by reading, within
    the reading noise (5 σ); the transient is tens of mV, far beyond it. A p-i-n cell (anode on LO) reads the
    same transient negative (the 2450's offset is then into its cathode: a load of −10 pA on the device)."""
    sign = -1.0 if stack == "p-i-n" else 1.0
    load_A, r_in = sign * 10e-12, 10e9
    bench = bench_of(three_diode_device(stack=stack), x_before)
    smu = voltmeter_at_zero_current(bench, current_offset_A=-10e-12, input_resistance_ohm=r_in)
    bench.clock.sleep(500.0)  # > 25 tau at 1e-7 sun: settled
    v_settled = expected_voc_V(x_before, load_A=load_A, r_in_ohm=r_in)
    assert sign * read(smu)[1] == pytest.approx(v_settled, abs=5 * NOISE_V)
    t_step = bench.clock.now()
    bench.light.irradiance_W_m2 = 1000.0 * x_after
    t, v = np.array([read(smu) for _ in range(12)]).T  # 7 s: 13 tau at 1e-6 sun, 1.4 at 1e-7 sun
    v = sign * v
    expected = ode_voc_V(v_settled, x_after, t - t_step, load_A, r_in)
    assert np.max(np.abs(v - expected)) < 5 * NOISE_V
    assert abs(expected[0] - expected_voc_V(x_after, load_A=load_A, r_in_ohm=r_in)) > 0.02  # a real transient


@pytest.mark.parametrize(("x_before", "x_after"), [(1e-7, 2e-7), (2e-7, 1e-7)])
def test_time_constant_is_c_n_vt_over_j_for_one_diode(x_before: float, x_after: float) -> None:
    """One diode (n = 2, no shunt): y = exp(−V/(n·Vt)) relaxes exactly as y_eq + (y0 − y_eq)·e^(−t/τ),
    τ = C·n·Vt/(X·Jsc + J0) (~2.8 s at 1e-7 sun); the readings follow it, and the τ fitted from them is
    C·n·Vt/J within 2 %."""
    n, j0 = 2.0, J02
    bench = bench_of(three_diode_device(j0_A_cm2=j0, ideality=n, extra_diodes=[]), x_before)
    smu = voltmeter_at_zero_current(bench)
    bench.clock.sleep(200.0)
    a = n * VT
    y0, y_eq = j0 / (x_before * JSC_A_CM2 + j0), j0 / (x_after * JSC_A_CM2 + j0)
    tau_s = C_F_CM2 * a / (x_after * JSC_A_CM2 + j0)
    t_step = bench.clock.now()
    bench.light.irradiance_W_m2 = 1000.0 * x_after
    t, v = np.array([read(smu) for _ in range(20)]).T  # 12 s: 4 tau at 2e-7 sun, 2 at 1e-7 sun
    exact = -a * np.log(y_eq + (y0 - y_eq) * np.exp(-(t - t_step) / tau_s))
    assert np.max(np.abs(v - exact)) < 5 * NOISE_V
    far = np.abs(v - (-a * math.log(y_eq))) > 2e-3
    slope = np.polyfit(t[far] - t_step, np.log(np.abs(np.exp(-v[far] / a) - y_eq)), 1)[0]
    assert -1.0 / slope == pytest.approx(tau_s, rel=0.02)
    assert tau_s == pytest.approx(C_F_CM2 * a / (x_after * JSC_A_CM2), rel=1e-3)


def test_a_laser_step_at_low_light_takes_effect_when_it_happens() -> None:
    """The laser's power changed between two readings (in-process, as the LaserBoxx emulator does) acts from
    that moment: after 0.25 s of waiting and one reading, Voc is where the ODE started at the change puts it."""
    eqe = 0.8
    laser = Laser(wavelength_nm=520.0, power_W=laser_power_W(1e-7, 520.0, eqe), on=True)
    bench = bench_of(three_diode_device(), 0.0, laser=laser)
    bench.light.shutter_open = False
    bench.cell.params.eqe = lambda wavelength_nm: eqe  # a flat EQE: the test's own, not the simulator's
    smu = voltmeter_at_zero_current(bench)
    bench.clock.sleep(500.0)
    bench.clock.sleep(1.0)
    t_step = bench.clock.now()
    laser.power_W = laser_power_W(1e-6, 520.0, eqe)
    bench.clock.sleep(0.25)
    t, v = read(smu)
    expected = ode_voc_V(expected_voc_V(1e-7), 1e-6, np.array([t - t_step]))[0]
    assert v == pytest.approx(expected, abs=5 * NOISE_V)
    assert expected_voc_V(1e-6) - expected > 0.02


def test_at_one_sun_settling_is_effectively_instant() -> None:
    """At 1 sun τ = C·Vt/Jsc ≈ 0.14 µs (n → 1): the first reading after a step from 0.1 sun is the static
    Voc (methods ref. §4.3: 1.1667 V) within the reading noise, as the ODE gives."""
    tau_s = C_F_CM2 * VT / JSC_A_CM2
    assert tau_s < 1e-6
    bench = bench_of(three_diode_device(), 0.1)
    smu = voltmeter_at_zero_current(bench)
    assert read(smu)[1] == pytest.approx(expected_voc_V(0.1), abs=5 * NOISE_V)
    t_step = bench.clock.now()
    bench.light.irradiance_W_m2 = 1000.0
    t, v = read(smu)
    assert ode_voc_V(expected_voc_V(0.1), 1.0, np.array([t - t_step]))[0] == pytest.approx(expected_voc_V(1.0),
                                                                                          abs=1e-9)
    assert v == pytest.approx(expected_voc_V(1.0), abs=5 * NOISE_V)
    assert v == pytest.approx(1.1667, abs=0.5e-3)


def test_v2_offset_still_gives_methods_voc_once_settled() -> None:
    """methods ref. §9 V2 with the capacitance: the +10 pA offset gives 0.1924 V at 1e-7 sun once Voc has
    settled (here after 25 τ), and on the way there the reading is still far from it."""
    bench = bench_of(three_diode_device(), 1e-6)
    smu = voltmeter_at_zero_current(bench, current_offset_A=-10e-12)
    bench.clock.sleep(100.0)
    bench.light.irradiance_W_m2 = 1000.0 * 1e-7
    assert read(smu)[1] - 0.1924 > 0.05  # 0.6 s after the step: not settled
    bench.clock.sleep(200.0)
    assert read(smu)[1] == pytest.approx(0.1924, abs=1e-3)
    assert read(smu)[1] == pytest.approx(expected_voc_V(1e-7, load_A=10e-12), abs=5 * NOISE_V)


def test_output_off_floats_with_the_capacitance() -> None:
    """Output off, the device floats at open circuit and relaxes towards the new Voc with its own τ: turned on
    again 0.3 s after a light step, the 2450 reads the voltage the ODE gives (ideal 2450: the same ODE)."""
    bench = bench_of(three_diode_device(), 1e-7)
    smu = voltmeter_at_zero_current(bench)
    bench.clock.sleep(500.0)
    smu.disable_output()
    t_step = bench.clock.now()
    bench.light.irradiance_W_m2 = 1000.0 * 1e-6
    bench.clock.sleep(0.3)
    smu.enable_output()
    t, v = read(smu)
    expected = ode_voc_V(expected_voc_V(1e-7), 1e-6, np.array([t - t_step]))[0]
    assert v == pytest.approx(expected, abs=5 * NOISE_V)
    assert expected_voc_V(1e-6) - v > 0.02


def test_without_capacitance_nothing_changes() -> None:
    """capacitance_nF_cm2 = 0 (the default) is today's bench: the readings of a light-step sequence are the
    same as without the key, and each is the static Voc of the light of the moment (no transient)."""
    def readings(device: dict) -> list[float]:
        bench = bench_of(device, 1e-7)
        smu = voltmeter_at_zero_current(bench, nplc=1.0, current_offset_A=-10e-12)
        out = []
        for suns in (1e-7, 1e-6, 1e-4, 1e-6, 1.0, 1e-7):
            bench.light.irradiance_W_m2 = 1000.0 * suns
            out.append(read(smu)[1])
        return out

    without_key = three_diode_device()
    del without_key["capacitance_nF_cm2"]
    zero = readings(three_diode_device(capacitance_nF_cm2=0.0))
    assert zero == readings(without_key)
    static = [expected_voc_V(s, load_A=10e-12) for s in (1e-7, 1e-6, 1e-4, 1e-6, 1.0, 1e-7)]
    assert zero == pytest.approx(static, abs=5 * 2e-5 * 2.0)  # NPLC 1 on the 2 V range: 40 uV rms
    with_c = readings(three_diode_device())
    assert abs(with_c[1] - static[1]) > 0.05  # the capacitance would show


def test_compliance_holds_the_voltage_at_the_limit() -> None:
    """A sourced current the cell cannot take below the voltage limit: the voltage charges up to the limit and
    is held there, the limit tripped, as without capacitance."""
    for capacitance in (0.0, C_F_CM2 * 1e9):
        bench = bench_of(three_diode_device(capacitance_nF_cm2=capacitance), 0.0)
        smu = Keithley2450(EmulatorAdapter(Keithley2450Emulator(bench)))
        smu.reset()
        smu.configure_current_source(compliance_V=0.5, nplc=1.0)
        smu.set_current(1e-3)
        smu.enable_output()
        bench.clock.sleep(1.0)
        data = smu.measure_point()
        assert float(data.voltage_V[0]) == pytest.approx(0.5, abs=1e-3)
        assert bool(data.compliance[0])


def test_capacitance_is_a_device_key_with_bounds() -> None:
    """``simulation.device.capacitance_nF_cm2``: default 0; a negative value is an error naming the key."""
    data = default_station()
    assert parse_station(data).simulation.device.capacitance_nF_cm2 == 0.0
    data["simulation"]["device"]["capacitance_nF_cm2"] = -5
    with pytest.raises(ConfigError) as exc:
        parse_station(data)
    assert "simulation.device.capacitance_nF_cm2 = -5" in str(exc.value) and "0" in str(exc.value)
    data["simulation"]["device"]["capacitance_nF_cm2"] = 47.0
    assert cell_parameters(parse_station(data).simulation.device).capacitance_nF_cm2 == 47.0


def test_a_device_switched_in_under_the_source_starts_from_its_open_circuit() -> None:
    """A substrate under a 2450 at 0 A: the device switched in has floated at its static Voc, so the reading
    is that Voc (device 2 without capacitance, and device 1 with it, back after a light step it saw unconnected)."""
    section = SimulationConfig.model_validate({"devices": [three_diode_device(),
                                                           three_diode_device(capacitance_nF_cm2=0.0)]})
    bench = Bench(devices=[cell_parameters(d) for d in section.devices],
                  light=Light(irradiance_W_m2=1000.0 * 1e-6, shutter_open=True))
    smu = voltmeter_at_zero_current(bench)
    bench.select_device(2)
    bench.light.irradiance_W_m2 = 1000.0 * 1e-5
    assert read(smu)[1] == pytest.approx(expected_voc_V(1e-5), abs=5 * NOISE_V)
    bench.select_device(1)
    assert read(smu)[1] == pytest.approx(expected_voc_V(1e-5), abs=5 * NOISE_V)
