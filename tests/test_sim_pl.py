"""The simulated PL path (sim_instruments/pl.py): Lambertian collection, the whole chain to the analyser's input,
the k factor, the stray pump with the emission blocked, and the ``simulation.pl`` section.

Expected values are the methods reference's numbers (§5.2, §5.4, §9 L1-L3) or computed here by hand (the diode
equation solved with scipy's brentq, the chain multiplied out), never by the simulator's own functions.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq

from labctl.config import ConfigError, parse_station
from labctl.station import Station
from sim_instruments.bench import Bench, CellParameters, Laser, Light
from sim_instruments.config import SimulationConfig
from sim_instruments.laser_path import place_in_beam
from sim_instruments.pl import (
    Collection,
    LongPass,
    PLPath,
    Transimpedance,
    collection_fraction_disk,
    collection_fraction_rectangle,
)
from tests.helpers import default_station

Q = 1.602176634e-19
HC_Q_NM_V = 1239.841984  # methods ref. §0
KB = 1.380649e-23
VT_298 = KB * 298.15 / Q


def _dbm(v_rms: float) -> float:
    """Power in 50 Ω (dBm) of a sine of ``v_rms`` (methods ref. §5.1 step 1)."""
    return 10.0 * math.log10(v_rms**2 / 50.0 / 1e-3)


# -- methods ref. §9 L1, L2 ------------------------------------------------------------------------------------
def _lambertian_on_square_numerically(side: float, d: float) -> float:
    """∫∫ cosθ_e·cosθ_d/(π r²) dA = ∫∫ d²/(π·(x² + y² + d²)²) dx dy over the square (scipy dblquad)."""
    from scipy.integrate import dblquad

    h = side / 2.0
    value, _ = dblquad(lambda y, x: d * d / (math.pi * (x * x + y * y + d * d) ** 2), -h, h, -h, h,
                       epsabs=1e-14, epsrel=1e-12)
    return value


def test_l1_rectangular_detector_at_5_cm():
    # the methods' 1.25650e-2 is given to 6 figures (±4e-6 relative); the integral pins the formula to 1e-9
    assert collection_fraction_rectangle(10.0, 10.0, 50.0) == pytest.approx(
        _lambertian_on_square_numerically(10.0, 50.0), rel=1e-9)
    assert collection_fraction_rectangle(10.0, 10.0, 50.0) == pytest.approx(1.25650e-2, rel=1e-5)
    assert collection_fraction_rectangle(10.0, 10.0, 20.0) == pytest.approx(7.3478e-2, rel=1e-4)
    assert collection_fraction_rectangle(10.0, 10.0, 100.0) == pytest.approx(3.1725e-3, rel=1e-4)
    assert Collection().fraction == pytest.approx(1.25650e-2, rel=1e-5)  # the default geometry is L1's


def test_l2_disk_to_disk_view_factor_and_the_point_source_limit():
    assert collection_fraction_disk(0.5, 2.0, emitter_radius_m=1.0) == pytest.approx(0.048059, abs=1e-5)
    # a point emitter: sin²θ = r²/(r² + d²) = 0.25/4.25 (methods ref. §5.2: 0.0588, the 22 % error of L2)
    assert collection_fraction_disk(0.5, 2.0) == pytest.approx(0.25 / 4.25, rel=1e-12)
    assert Collection(shape="disk", radius_mm=5, emitter_radius_mm=10, distance_mm=20).fraction == pytest.approx(
        0.048059, abs=1e-5)


@settings(max_examples=60, deadline=None)
@given(a=st.floats(0.1, 50), b=st.floats(0.1, 50), d=st.floats(1, 500))
def test_rectangle_fraction_is_the_lambertian_integral(a, b, d):
    """Any rectangle: F is ∫∫ d²/(π(x² + y² + d²)²) over it, and below the small-detector A/(πd²)."""
    from scipy.integrate import dblquad

    value, _ = dblquad(lambda y, x: d * d / (math.pi * (x * x + y * y + d * d) ** 2), -a / 2, a / 2, -b / 2, b / 2,
                       epsabs=1e-15, epsrel=1e-11)
    f = collection_fraction_rectangle(a, b, d)
    assert f == pytest.approx(value, rel=1e-8)
    assert f <= a * b / (math.pi * d * d)


@settings(max_examples=60, deadline=None)
@given(r2=st.floats(0.1, 50), d=st.floats(0.5, 500))
def test_disk_to_disk_tends_to_the_point_emitter(r2, d):
    """A vanishing emitting disk sees the coaxial disk as a point does: r2²/(r2² + d²)."""
    assert collection_fraction_disk(r2, d, emitter_radius_m=1e-4 * min(r2, d)) == pytest.approx(
        r2 * r2 / (r2 * r2 + d * d), rel=1e-6)


# -- a bench built by hand: the methods' worked example (§5.4) -------------------------------------------------
JSC_A_CM2 = 18.3e-3
AREA = 0.049
EQE_520 = 0.80


def _one_sun_laser_W() -> float:
    """Laser power (W) that generates Jsc in the test cell: Jsc·A·(hc/q)/(λ·EQE)."""
    return JSC_A_CM2 * AREA * HC_Q_NM_V / (520.0 * EQE_520)


def _bench(cell: CellParameters, m: float = 0.005, f_Hz: float = 7.0, power_W: float | None = None) -> Bench:
    laser = Laser(wavelength_nm=520.0, power_W=_one_sun_laser_W() if power_W is None else power_W, on=True)
    laser.modulation_depth = m  # the fgen helper's fields, set on the object as the contract allows
    laser.modulation_frequency_Hz = f_Hz
    return Bench(cell=cell, light=Light(shutter_open=False), laser=laser)


def _ideal_cell(**kw) -> CellParameters:
    """n = 1, no shunt to speak of: Φ_PL ∝ generation, k = 1 (methods ref. §5.4 uses k = 1)."""
    args = dict(jph_mA_cm2=18.3, j0_A_cm2=1e-20, ideality=1.0, rs_ohm_cm2=0.0, rsh_ohm_cm2=1e12, area_cm2=AREA,
                eqe=lambda lam: EQE_520)
    args.update(kw)
    return CellParameters(**args)


def _worked_example_pl(bench: Bench, **kw) -> PLPath:
    args = dict(plqy_1sun=0.10, peak_nm=760.0, fwhm_nm=20.0, collection=Collection(),
                filters=(LongPass(550.0, 0.9, 6.0), LongPass(650.0, 1.0, 6.0)), responsivity_A_W=0.50,
                tia=Transimpedance(gain_V_A=1e7, amplifier_noise_A_rtHz=0.0), scattered_fraction=0.0)
    args.update(kw)
    return PLPath(bench, **args)


def test_the_chain_gives_the_worked_example_line():
    """PLQY 10 %, 1 sun (N_abs 5.5968e15 s⁻¹), m 0.5 %, F 1.2565e-2, T_f 0.9, EQE_det 0.8157, G 1e7:
    −17.669 dBm at 7 Hz (methods ref. §5.4, §9 L3 forward)."""
    bench = _bench(_ideal_cell())
    bench.pl = _worked_example_pl(bench)
    assert bench.suns == pytest.approx(1.0, rel=1e-9)
    # by hand: δN_abs = m·N_abs/√2; × PLQY_diff × F × T × EQE_det × q × G
    v_hand = 0.1 * 0.005 / math.sqrt(2) * 5.5968e15 * 1.2565e-2 * 0.9 * 0.8157 * Q * 1e7
    assert _dbm(v_hand) == pytest.approx(-17.669, abs=1e-3)
    tones = dict(bench.pl.analyser_input().tones)
    assert sorted(tones) in ([7.0], [7.0, 14.0])
    v_rms = tones[7.0]
    assert tones.get(14.0, 0.0) < 1e-9 * v_rms  # k = 1: no second harmonic to speak of
    assert v_rms == pytest.approx(29.24e-3, rel=5e-4)
    assert _dbm(v_rms) == pytest.approx(-17.669, abs=2e-3)
    assert v_rms == pytest.approx(v_hand, rel=2e-4)
    # DC PL current 8.271e-7 A (methods ref. §5.4)
    assert bench.pl.dc_current_A() == pytest.approx(8.271e-7, rel=5e-4)
    assert bench.pl.qfls_eV() == pytest.approx(VT_298 * math.log(18.3e-3 / 1e-20 + 1), abs=1e-9)


def test_noise_density_is_johnson_amplifier_and_shot():
    bench = _bench(_ideal_cell())
    bench.pl = _worked_example_pl(bench, tia=Transimpedance(gain_V_A=1e7, temperature_K=295.0,
                                                             amplifier_noise_A_rtHz=2e-14))
    i_dc = 8.2712e-7  # the worked example's DC PL current (A)
    hand = 1e7 * math.sqrt(4 * KB * 295.0 / 1e7 + (2e-14) ** 2 + 2 * Q * i_dc)
    assert bench.pl.analyser_input().noise_V_rtHz == pytest.approx(hand, rel=1e-3)
    # methods ref. §5.3: the shot noise of 0.83 µA dominates, SNR ≈ 75 dB in ~1.06 Hz
    line = bench.pl.analyser_input().tones[0][1]
    snr_dB = 20 * math.log10(line / (bench.pl.analyser_input().noise_V_rtHz * math.sqrt(1.06)))
    assert 73.0 < snr_dB < 76.0


def test_no_modulation_no_line():
    bench = _bench(_ideal_cell(), m=0.0)
    bench.pl = _worked_example_pl(bench)
    assert bench.pl.analyser_input().tones == []
    assert bench.pl.analyser_input().noise_V_rtHz > 0


# -- the intensity law and the k factor ---------------------------------------------------------------------------
DEFAULT = CellParameters()  # set A: n 1.5, J0 1.16004e-15, Rsh 2000, 298.15 K


def _voc_hand(suns: float) -> float:
    """Voc of set A at ``suns`` (no current through Rs at open circuit): X·Jph = J0·(e^(V/nVt) − 1) + V/Rsh."""
    jph, j0, n, rsh = 18.33514e-3, 1.16004e-15, 1.5, 2000.0
    return brentq(lambda v: suns * jph - j0 * math.expm1(v / (n * VT_298)) - v / rsh, 0.0, 2.0, xtol=1e-15)


def _pl_hand(suns: float) -> float:
    """Φ_PL up to a constant: the radiative (n = 1) current at Voc(X)."""
    return math.expm1(_voc_hand(suns) / VT_298)


def _default_bench(power_scale: float = 1.0) -> Bench:
    cell = CellParameters(eqe=lambda lam: EQE_520)
    power = 18.33514e-3 * 0.049 * HC_Q_NM_V / (520.0 * EQE_520) * power_scale
    bench = _bench(cell, power_W=power)
    bench.pl = _worked_example_pl(bench)
    return bench


def test_k_factor_is_the_derivative_of_the_intensity_law():
    bench = _default_bench()
    assert bench.suns == pytest.approx(1.0, rel=1e-9)
    h = 1e-4
    k_hand = (math.log(_pl_hand(1 + h)) - math.log(_pl_hand(1 - h))) / (math.log(1 + h) - math.log(1 - h))
    assert 1.3 < k_hand < 1.6  # set A: n 1.5, pulled down a little by the shunt
    assert bench.pl.k_factor() == pytest.approx(k_hand, rel=1e-5)
    assert bench.pl.plqy() == pytest.approx(0.10, rel=1e-9)
    assert bench.pl.plqy_differential() == pytest.approx(k_hand * 0.10, rel=1e-5)


def test_plqy_follows_the_cells_recombination():
    """PLQY(X) = PLQY(1)·Φ(X)/Φ(1)/X: one decade down, set A's PLQY falls by 10^(n−1) = 3.2 and more, as the
    2000 Ω cm² shunt takes ~30 % of the generation at 0.1 sun (Voc/Rsh ≈ 0.55 of 1.83 mA/cm²)."""
    bench = _default_bench(power_scale=0.1)
    assert bench.suns == pytest.approx(0.1, rel=1e-9)
    hand = 0.10 * _pl_hand(0.1) / _pl_hand(1.0) / 0.1
    assert bench.pl.plqy() == pytest.approx(hand, rel=1e-6)
    assert 0.015 < hand < 0.10 / 10**0.5
    assert bench.pl.qfls_eV() == pytest.approx(_voc_hand(0.1), abs=1e-6)


def test_line_amplitude_is_k_times_plqy_times_the_modulated_flux():
    bench = _default_bench()
    m = 0.005
    n_abs = 18.33514e-3 * 0.049 / Q
    h = 1e-4
    k_hand = (math.log(_pl_hand(1 + h)) - math.log(_pl_hand(1 - h))) / (math.log(1 + h) - math.log(1 - h))
    eqe_det = 0.5 * HC_Q_NM_V / 760.0
    line_hand = k_hand * 0.10 * m / math.sqrt(2) * n_abs * 1.25650e-2 * 0.9 * eqe_det * Q * 1e7
    tones = dict(bench.pl.analyser_input().tones)
    assert tones[7.0] == pytest.approx(line_hand, rel=1e-4)
    # the second harmonic of X^k: (k − 1)·m/4 of the line (methods ref. §5.1)
    assert tones[14.0] == pytest.approx(line_hand * (k_hand - 1) * m / 4, rel=1e-3)


def test_degradation_lowers_the_plqy():
    """J0 grown by e (10 h of light at j0_growth_tau_h 10 h): Voc falls, and the radiative current with it."""
    from sim_instruments.bench import Degradation

    bench = _bench(_ideal_cell(degradation=Degradation(enabled=True, j0_growth_tau_h=10.0)))
    bench.pl = _worked_example_pl(bench)
    bench.cell.light_dose_s = 10 * 3600.0
    voc_0 = VT_298 * math.log1p(18.3e-3 / 1e-20)
    voc_1 = VT_298 * math.log1p(18.3e-3 / (1e-20 * math.e))
    assert bench.pl.qfls_eV() == pytest.approx(voc_1, abs=1e-9)
    assert bench.pl.plqy() == pytest.approx(0.10 * math.expm1(voc_1 / VT_298) / math.expm1(voc_0 / VT_298),
                                            rel=1e-6)
    assert bench.pl.plqy() == pytest.approx(0.10 / math.e, rel=1e-6)


def test_radiative_j0_follows_the_temperature_as_an_ideality_one_diode():
    """In an n = 1 cell the radiative and the total J0 scale alike with T: the PLQY at 1 sun stays, Voc moves."""
    bench = _bench(_ideal_cell())
    bench.pl = _worked_example_pl(bench)
    voc_298 = bench.pl.qfls_eV()
    bench.cell.params.temperature_K = 320.0
    assert bench.pl.qfls_eV() < voc_298 - 0.02
    assert bench.pl.plqy() == pytest.approx(0.10, rel=1e-7)


def test_plqy_never_exceeds_one():
    bench = _default_bench(power_scale=1e4)  # PLQY 0.1 ∝ X^0.5: 1 well below 1e4 sun
    assert bench.pl.plqy() == pytest.approx(1.0, rel=1e-12)


# -- the stray pump ---------------------------------------------------------------------------------------------
def test_stray_pump_with_the_emission_blocked():
    """A blank in the device's place: only the pump leaking through the filters' stopband reaches the detector."""
    bench = _bench(_ideal_cell())
    bench.pl = _worked_example_pl(bench, filters=(LongPass(550.0, 0.9, 2.0), LongPass(650.0, 1.0, 3.0)),
                                  scattered_fraction=1e-2, pump_responsivity_A_W=0.30)
    with_pl = dict(bench.pl.analyser_input().tones)[7.0]
    place_in_beam(bench, "blank")
    assert bench.pl.emission_blocked
    (f_Hz, stray), = bench.pl.analyser_input().tones  # no PL, no harmonic: the stray pump is linear
    pump_per_s = _one_sun_laser_W() * 520.0 / HC_Q_NM_V / Q
    hand = 0.005 / math.sqrt(2) * pump_per_s * 1e-2 * 1e-5 * (0.30 * HC_Q_NM_V / 520.0) * Q * 1e7
    assert f_Hz == 7.0 and stray == pytest.approx(hand, rel=1e-9)
    assert 0 < stray < 1e-3 * with_pl
    place_in_beam(bench, "dut")
    assert dict(bench.pl.analyser_input().tones)[7.0] == pytest.approx(with_pl, rel=1e-12)


def test_a_device_without_photocurrent_emits_nothing():
    bench = _bench(_ideal_cell(jph_mA_cm2=0.0))
    bench.pl = _worked_example_pl(bench, scattered_fraction=0.0)
    assert bench.pl.plqy() == 0.0 and bench.pl.dc_current_A() == 0.0
    assert bench.pl.analyser_input().tones == []


def test_the_laser_off_gives_nothing():
    bench = _bench(_ideal_cell())
    bench.pl = _worked_example_pl(bench, scattered_fraction=1e-2)
    bench.laser.on = False
    assert bench.pl.analyser_input().tones == []
    assert bench.pl.dc_current_A() == 0.0


# -- the station section ------------------------------------------------------------------------------------------
def test_no_pl_section_no_pl_path():
    station = Station(parse_station(default_station()))
    try:
        assert station.simulator.bench.pl is None
    finally:
        station.close()


def test_pl_section_builds_the_path_with_its_defaults():
    data = default_station()
    data["simulation"]["pl"] = {"plqy": 0.05}
    station = Station(parse_station(data))
    try:
        pl = station.simulator.bench.pl
        assert pl.plqy_1sun == 0.05
        assert pl.collection.fraction == pytest.approx(1.25650e-2, rel=1e-5)
        assert [(f.cut_on_nm, f.stopband_od) for f in pl.filters] == [(550.0, 2.0), (650.0, 3.0)]
        assert pl.tia.gain_V_A == 1e7
        assert pl.pl_peak_nm() == pytest.approx(HC_Q_NM_V / 1.5789, rel=1e-9)  # the cell's gap
        # the station's named question moves the blank in and out
        station.place_in_beam("blank")
        assert pl.emission_blocked
        station.place_in_beam("dut")
        assert not pl.emission_blocked
    finally:
        station.close()


def test_default_stray_pump_is_small_but_detectable_with_a_blank():
    """The defaults a user gets (default device, 1 sun of 520 nm pump, m 0.5 %): with a blank the stray pump
    stands above the 1 Hz noise floor (so a procedure can measure it), and it is far below the PL line."""
    data = default_station()
    data["simulation"]["pl"] = {}
    station = Station(parse_station(data))
    try:
        bench = station.simulator.bench
        eqe_520 = bench.cell.params.eqe(520.0)
        bench.laser.power_W = 18.33514e-3 * 0.049 * HC_Q_NM_V / (520.0 * eqe_520)
        bench.laser.on = True
        bench.laser.modulation_depth, bench.laser.modulation_frequency_Hz = 0.005, 7.0
        line = dict(bench.pl.analyser_input().tones)[7.0]
        station.place_in_beam("blank")
        blank = bench.pl.analyser_input()
        (f_Hz, stray), = blank.tones
        assert f_Hz == 7.0
        assert stray > 5 * blank.noise_V_rtHz * math.sqrt(1.0)  # > 14 dB over the floor in a 1 Hz RBW (18 dB)
        assert stray < 1e-3 * line  # > 60 dB below the PL: negligible for the PLQY
        # the hand chain of the leak: pump photons × 1e-2 scattered × OD 2 + 3 × Si QE at 520 nm × q × G
        pump_per_s = bench.laser.power_W * 520.0 / HC_Q_NM_V / Q
        hand = 0.005 / math.sqrt(2) * pump_per_s * 1e-2 * 1e-5 * (0.30 * HC_Q_NM_V / 520.0) * Q * 1e7
        assert stray == pytest.approx(hand, rel=1e-9)
    finally:
        station.close()


def test_pl_section_errors_name_the_key():
    data = default_station()
    data["simulation"]["pl"] = {"plqy": 1.5}
    with pytest.raises(ConfigError, match=r"simulation\.pl\.plqy"):
        parse_station(data)
    assert SimulationConfig().pl is None
