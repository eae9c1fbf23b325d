"""Light-intensity Voc on the simulated bench: the three-diode cell of methods ref. §4.3 read by the simulated
Keithley 2450 sourcing 0 A through the driver (methods ref. §9 cases V1, V2), and the 2450's limits at I = 0.

Expected values are computed here, independently of the simulator: J01, J02, J04 from the §4.3
parameterisation by hand, and Voc as the root of the diode equation by scipy's brentq (checked against the
methods' reference numbers, which are also asserted directly).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.constants import Boltzmann, elementary_charge, h, speed_of_light
from scipy.optimize import brentq

from drivers.keithley2450 import Keithley2450
from sim_instruments.adapter import EmulatorAdapter
from sim_instruments.bench import Bench, Laser, Light
from sim_instruments.compose import cell_parameters
from sim_instruments.config import SimulationConfig
from sim_instruments.keithley2450 import Keithley2450Emulator

T_K = 298.15
VT = Boltzmann * T_K / elementary_charge
JSC_A_CM2 = 18.3e-3  # methods ref. §4.2/§4.3 worked device
AREA_CM2 = 0.049

# methods ref. §4.3: channels of n = 1, 2, 4 with equal currents at the crossovers 10^-1.5 and 10^-4.5 sun
J01 = JSC_A_CM2 / math.exp(1.17 / VT)
G12, G24 = 10**-1.5, 10**-4.5
V12 = VT * math.log(G12 * JSC_A_CM2 / (2 * J01))
J02 = (G12 * JSC_A_CM2 / 2) * math.exp(-V12 / (2 * VT))
V24 = 2 * VT * math.log(G24 * JSC_A_CM2 / (2 * J02))
J04 = (G24 * JSC_A_CM2 / 2) * math.exp(-V24 / (4 * VT))
DIODES = ((1.0, J01), (2.0, J02), (4.0, J04))

# methods ref. §4.3 table / §9 V1: Voc (V) at 1 ... 1e-7 sun
REFERENCE_VOC_V = {1: 1.1667, 1e-1: 1.1005, 1e-2: 1.0199, 1e-3: 0.9126, 1e-4: 0.7828, 1e-5: 0.6241,
                   1e-6: 0.4204, 1e-7: 0.2027}


def expected_voc_V(suns: float, load_A: float = 0.0, r_in_ohm: float = math.inf) -> float:
    """Root of X·Jsc = Σ J0k(exp(V/(n_k Vt)) − 1) + (load_A + V/R_in)/A (no shunt; Rs drops out at J = 0)."""
    def f(v: float) -> float:
        rec = sum(j0 * math.expm1(v / (n * VT)) for n, j0 in DIODES)
        return suns * JSC_A_CM2 - rec - (load_A + v / r_in_ohm) / AREA_CM2
    return brentq(f, -1.0, 2.0, xtol=1e-12)


def three_diode_bench(suns: float, laser: Laser | None = None) -> Bench:
    """The §4.3 device given through the simulator's own schema (simulation.device.extra_diodes), lit by the
    solar simulator at ``suns`` (shutter open)."""
    section = SimulationConfig.model_validate({"device": {
        "jph_mA_cm2": JSC_A_CM2 * 1e3, "j0_A_cm2": J01, "ideality": 1.0,
        "extra_diodes": [{"ideality": 2.0, "j0_A_cm2": J02}, {"ideality": 4.0, "j0_A_cm2": J04}],
        "rsh_ohm_cm2": math.inf, "rs_ohm_cm2": 3.0, "area_cm2": AREA_CM2, "temperature_K": T_K,
    }})
    light = Light(irradiance_W_m2=1000.0 * suns, shutter_open=suns > 0)
    return Bench(cell=cell_parameters(section.device), light=light, laser=laser)


def smu_on(bench: Bench, **options: float) -> Keithley2450:
    smu = Keithley2450(EmulatorAdapter(Keithley2450Emulator(bench, **options)))
    smu.reset()
    return smu


def voc_at_zero_current_V(smu: Keithley2450) -> float:
    """Voc as the lab reads it: the 2450 sourcing 0 A, measuring V (driver: configure_current_source)."""
    smu.configure_current_source(compliance_V=2.0, nplc=1.0)
    smu.set_current(0.0)
    smu.enable_output()
    return float(smu.measure_point().voltage_V[0])


def test_independent_expectation_reproduces_the_methods_table() -> None:
    """The test's own root-finding agrees with methods ref. §4.3 (guards the expected values themselves)."""
    assert (J01, J02, J04) == pytest.approx((3.0574e-22, 2.9743e-13, 2.9336e-10), rel=2e-4)
    for suns, voc in REFERENCE_VOC_V.items():
        assert expected_voc_V(suns) == pytest.approx(voc, abs=6e-5)


@pytest.mark.parametrize("suns", list(REFERENCE_VOC_V))
def test_v1_voc_ladder_of_the_three_diode_cell(suns: float) -> None:
    """methods ref. §9 V1: Voc(1 sun) 1.1667 V ... Voc(1e-7 sun) 0.2027 V within 0.5 mV, at I = 0 on a 2450."""
    voc = voc_at_zero_current_V(smu_on(three_diode_bench(suns)))
    assert voc == pytest.approx(REFERENCE_VOC_V[suns], abs=0.5e-3)
    assert voc == pytest.approx(expected_voc_V(suns), abs=0.5e-3)


@pytest.mark.parametrize(("log10_window", "n_reference"), [((0.0, -0.5), 1.086), ((-2.5, -3.5), 2.021),
                                                          ((-6.5, -7.0), 3.612)])
def test_v1_ideality_fits_of_the_ladder(log10_window: tuple[float, float], n_reference: float) -> None:
    """methods ref. §9 V1: linear fits of Voc against ln X give n = 1.086, 2.021, 3.612 (within 0.01) over
    [1, 10^-0.5], [10^-2.5, 10^-3.5] and [10^-6.5, 10^-7] sun; 11 intensities per window, one 2450 held at 0 A
    while the solar simulator's irradiance steps."""
    bench = three_diode_bench(10 ** log10_window[0])
    smu = smu_on(bench)
    smu.configure_current_source(compliance_V=2.0, nplc=1.0)
    smu.set_current(0.0)
    smu.enable_output()
    ln_x = np.linspace(*log10_window, 11) * math.log(10)
    voc = []
    for value in ln_x:
        bench.light.irradiance_W_m2 = 1000.0 * math.exp(value)
        voc.append(float(smu.measure_point().voltage_V[0]))
    n_fit = np.polyfit(ln_x, voc, 1)[0] / VT
    assert n_fit == pytest.approx(n_reference, abs=0.01)
    assert n_fit == pytest.approx(np.polyfit(ln_x, [expected_voc_V(math.exp(v)) for v in ln_x], 1)[0] / VT,
                                  abs=0.01)


def test_v2_source_offset_lowers_voc_at_1e_7_sun() -> None:
    """methods ref. §9 V2: a +10 pA offset (drawn from the device, methods' I_dev = I_offset + V/R_in; −10 pA
    into the 2450's HI, the emulator's convention) gives 0.1924 V at 1e-7 sun (A = 0.049 cm²), within 1 mV."""
    voc = voc_at_zero_current_V(smu_on(three_diode_bench(1e-7), current_offset_A=-10e-12))
    assert voc == pytest.approx(0.1924, abs=1e-3)
    assert voc == pytest.approx(expected_voc_V(1e-7, load_A=10e-12), abs=1e-3)


@pytest.mark.parametrize(("suns", "reference_V"), [(1e-7, 0.1829), (1e-6, 0.4158)])
def test_input_resistance_of_10_gohm_shunts_the_cell(suns: float, reference_V: float) -> None:
    """methods ref. §4.2: the voltmeter's > 10 GΩ (instruments ref. §2) acts as a 4.9e8 Ω·cm² shunt:
    0.2027 → 0.1829 V at 1e-7 sun, 0.4204 → 0.4158 V at 1e-6 sun."""
    voc = voc_at_zero_current_V(smu_on(three_diode_bench(suns), input_resistance_ohm=10e9))
    assert voc == pytest.approx(reference_V, abs=1e-3)
    assert voc == pytest.approx(expected_voc_V(suns, r_in_ohm=10e9), abs=0.5e-3)


def test_an_ideal_2450_is_the_default() -> None:
    """Without options the emulator neither offsets nor loads the cell: Voc at 1e-7 sun is the device's."""
    voc = voc_at_zero_current_V(smu_on(three_diode_bench(1e-7)))
    assert voc == pytest.approx(expected_voc_V(1e-7), abs=0.5e-3)
    assert voc - expected_voc_V(1e-7, load_A=10e-12) > 5e-3  # an offset of 10 pA would be seen


def laser_power_W(suns: float, wavelength_nm: float, eqe: float) -> float:
    """Laser power whose photocurrent is ``suns`` × Jsc·A: P = X·Jsc·A·hc/(q·λ·EQE) (methods ref. §4.2)."""
    return suns * JSC_A_CM2 * AREA_CM2 * h * speed_of_light / (elementary_charge * wavelength_nm * 1e-9 * eqe)


@pytest.mark.parametrize("suns", [1e-2, 1e-4, 1e-6])
def test_laser_photocurrent_is_linear_in_photon_flux_and_gives_the_same_voc(suns: float) -> None:
    """At 520 nm the cell's short-circuit current is q·Φ·EQE (linear in photon flux), and the Voc under the
    laser is that of the same suns-equivalent intensity (methods ref. §4.2: 1 sun = the Jsc of AM1.5G)."""
    eqe_520 = 0.8  # the §4.2 worked value: EQE(520 nm) = 0.80
    power_W = laser_power_W(suns, 520.0, eqe_520)
    bench = three_diode_bench(0.0, laser=Laser(wavelength_nm=520.0, power_W=power_W, on=True))
    bench.cell.params.eqe = lambda wavelength_nm: eqe_520  # a flat EQE: the test's own, not the simulator's
    smu = smu_on(bench)
    smu.configure_voltage_source(compliance_A=1e-3, nplc=1.0)
    smu.set_voltage(0.0)
    smu.enable_output()
    isc_A = -float(smu.measure_point().current_A[0])  # the 2450 reports the generated current as negative
    photons_per_s = power_W * 520e-9 / (h * speed_of_light)
    assert isc_A == pytest.approx(elementary_charge * photons_per_s * eqe_520, rel=2e-3)
    assert voc_at_zero_current_V(smu) == pytest.approx(expected_voc_V(suns), abs=0.5e-3)


def test_station_file_gives_the_three_diode_cell_and_the_2450_offset(tmp_path) -> None:
    """The same case from station.yaml: ``simulation.device.extra_diodes`` and ``simulation.keithley2450``
    reach the bench and the 2450 behind ``sim://smu`` (methods ref. §9 V2: 0.1924 V within 1 mV)."""
    from labctl.config import parse_station
    from labctl.station import Station
    from tests.helpers import default_station

    data = default_station()
    data["instruments"]["smu"]["driver"] = "keithley2450"
    sim = data["simulation"]
    sim["device"].update({"jph_mA_cm2": JSC_A_CM2 * 1e3, "j0_A_cm2": J01, "ideality": 1.0, "rsh_ohm_cm2": math.inf,
                          "extra_diodes": [{"ideality": 2.0, "j0_A_cm2": J02}, {"ideality": 4.0, "j0_A_cm2": J04}]})
    sim["light"].update({"irradiance_W_m2": 1000.0 * 1e-7, "flicker": 0.0})
    sim["keithley2450"] = {"current_offset_A": -10e-12}
    station = Station(parse_station(data))
    try:
        station.connect(["smu"])
        station.bench.light.shutter_open = True
        assert voc_at_zero_current_V(station["smu"]) == pytest.approx(0.1924, abs=1e-3)
    finally:
        station.close()
