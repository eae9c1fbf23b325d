"""The real simulated bench for the SMU emulator tests: a 1 cm² single-diode cell (methods ref. §1.6 set A) under
1 sun, Jsc ≈ 18.3 mA, with its expected terminal current and voltage computed by pvlib (not by the bench)."""

from __future__ import annotations

import numpy as np
import pvlib
from numpy.typing import ArrayLike
from scipy.constants import Boltzmann, elementary_charge

from sim_instruments.bench import Bench, CellParameters, Light

AREA_CM2 = 1.0
#: methods ref. §1.6 set A (per cm², 298.15 K)
JPH_A_CM2, J0_A_CM2, IDEALITY, RS_OHM_CM2, RSH_OHM_CM2, T_K = 18.33514e-3, 1.16004e-15, 1.5, 3.84022, 2000.0, 298.15
N_VT_V = IDEALITY * Boltzmann * T_K / elementary_charge


def cell_bench() -> Bench:
    """A bench with the set-A cell on 1 cm² in steady light (no flicker, shutter open), virtual clock."""
    cell = CellParameters(jph_mA_cm2=JPH_A_CM2 * 1e3, j0_A_cm2=J0_A_CM2, ideality=IDEALITY, rs_ohm_cm2=RS_OHM_CM2,
                          rsh_ohm_cm2=RSH_OHM_CM2, area_cm2=AREA_CM2, temperature_K=T_K)
    return Bench(cell=cell, light=Light(irradiance_W_m2=1000.0, shutter_open=True, flicker=0.0))


def cell_current_A(voltage_V: ArrayLike) -> np.ndarray:
    """Current an SMU reads with ``voltage_V`` on the cell (A; SMU convention, negative in the power quadrant)."""
    j = pvlib.pvsystem.i_from_v(np.asarray(voltage_V, dtype=float), JPH_A_CM2, J0_A_CM2, RS_OHM_CM2, RSH_OHM_CM2,
                                N_VT_V)
    return -np.asarray(j) * AREA_CM2


def cell_voltage_V(current_A: float) -> float:
    """Terminal voltage at which the SMU reads ``current_A`` (V)."""
    return float(pvlib.pvsystem.v_from_i(-current_A / AREA_CM2, JPH_A_CM2, J0_A_CM2, RS_OHM_CM2, RSH_OHM_CM2,
                                         N_VT_V))
