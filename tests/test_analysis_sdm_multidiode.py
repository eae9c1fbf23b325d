"""The multi-diode model of labctl.analysis.sdm (methods ref. §4.3) and the simulated cell that uses it.

Independent references: pvlib's single-diode solution (one diode), and for several diodes the terminal
equation solved here by scipy's brentq on the junction voltage.
"""

from __future__ import annotations

import math

import numpy as np
import pvlib
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.constants import Boltzmann, elementary_charge
from scipy.optimize import brentq

from labctl.analysis import sdm
from sim_instruments.bench import Bench, CellParameters, Light

T_K = 298.15
VT = Boltzmann * T_K / elementary_charge
THREE = ((1.0, 3.0574e-22), (2.0, 2.9743e-13), (4.0, 2.9336e-10))  # methods ref. §4.3


def reference_current_density(v: float, jph: float, diodes: tuple, rs: float, rsh: float) -> float:
    """J(V) from the junction balance jph − Σ J0k(exp(Vj/(n_k Vt)) − 1) − Vj/Rsh = (Vj − V)/Rs."""
    def balance(vj: float) -> float:
        rec = sum(j0 * math.expm1(vj / (n * VT)) for n, j0 in diodes)
        return jph - rec - vj / rsh - (vj - v) / rs
    vj = brentq(balance, v - 5.0, v + 5.0, xtol=1e-15)
    return (vj - v) / rs


@settings(max_examples=40, deadline=None)
@given(v=st.floats(-0.5, 1.25), rs=st.floats(0.1, 20.0), rsh=st.floats(50.0, 1e5),
       n=st.floats(1.0, 3.0), log_j0=st.floats(-22.0, -9.0))
def test_one_diode_is_pvlib_single_diode(v: float, rs: float, rsh: float, n: float, log_j0: float) -> None:
    jph, j0 = 18.3e-3, 10**log_j0
    expected = float(pvlib.pvsystem.i_from_v(v, jph, j0, rs, rsh, n * VT))
    got = sdm.multi_diode_current_density_A_cm2(v, jph, ((n, j0),), rs, rsh, T_K)
    assert got == pytest.approx(expected, rel=1e-7, abs=1e-12)
    back = sdm.multi_diode_voltage_V(got, jph, ((n, j0),), rs, rsh, T_K)
    assert back == pytest.approx(float(pvlib.pvsystem.v_from_i(got, jph, j0, rs, rsh, n * VT)), abs=1e-6)


@pytest.mark.parametrize("v", [-0.2, 0.0, 0.5, 0.9, 1.05, 1.15, 1.2])
def test_three_diodes_solve_the_terminal_equation(v: float) -> None:
    jph, rs, rsh = 18.3e-3, 3.0, 5000.0
    got = sdm.multi_diode_current_density_A_cm2(v, jph, THREE, rs, rsh, T_K)
    assert got == pytest.approx(reference_current_density(v, jph, THREE, rs, rsh), rel=1e-8, abs=1e-13)
    assert sdm.multi_diode_voltage_V(got, jph, THREE, rs, rsh, T_K) == pytest.approx(v, abs=1e-7)


def test_an_unshunted_cell_cannot_deliver_more_than_its_photocurrent() -> None:
    assert math.isnan(sdm.multi_diode_voltage_V(1.0, 18.3e-3, THREE, 3.0, math.inf, T_K))


def test_bench_j_v_of_a_three_diode_cell_is_the_same_cell_as_its_voc() -> None:
    """Under the solar simulator the bench's three-diode cell gives the J–V of the terminal equation, and the
    current vanishes at its Voc (one model for the J–V and the light-intensity Voc)."""
    cell = CellParameters(jph_mA_cm2=18.3, j0_A_cm2=THREE[0][1], ideality=1.0, extra_diodes=THREE[1:],
                          rs_ohm_cm2=3.0, rsh_ohm_cm2=5000.0, area_cm2=0.049)
    bench = Bench(cell=cell, light=Light(irradiance_W_m2=1000.0, shutter_open=True))
    for v in np.linspace(0.0, 1.15, 6):
        bench.set_cell_bias(float(v))
        expected = reference_current_density(float(v), 18.3e-3, THREE, 3.0, 5000.0)
        assert -bench.cell_current_A() / 0.049 == pytest.approx(expected, rel=1e-8, abs=1e-13)
    voc = bench.open_circuit_voltage_V()
    assert reference_current_density(voc, 18.3e-3, THREE, 3.0, 5000.0) == pytest.approx(0.0, abs=1e-12)


def test_extra_diode_limits_are_named() -> None:
    from pydantic import ValidationError

    from sim_instruments.config import DeviceConfig

    with pytest.raises(ValidationError, match="extra_diodes.0.ideality"):
        DeviceConfig.model_validate({"extra_diodes": [{"ideality": 0.1, "j0_A_cm2": 1e-12}]})
