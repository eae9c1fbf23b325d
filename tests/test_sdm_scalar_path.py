"""The single-diode model's scalar path (one point: the simulator's hot path) gives exactly what the vectorised
Lambert-W solution gives, over cells far apart (Rs = 0, no shunt, reverse bias, beyond Voc, tiny and large J0)."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from labctl.analysis import sdm

finite = {"allow_nan": False, "allow_infinity": False}


@settings(max_examples=300, deadline=None)
@given(
    v=st.floats(-2.0, 2.5, **finite),
    jph=st.floats(0.0, 0.05, **finite),
    log_j0=st.floats(-22.0, -5.0, **finite),
    ideality=st.floats(0.8, 3.0, **finite),
    rs=st.one_of(st.just(0.0), st.floats(1e-4, 50.0, **finite)),
    rsh=st.one_of(st.just(math.inf), st.floats(1.0, 1e6, **finite)),
    temperature=st.floats(200.0, 400.0, **finite),
)
def test_scalar_and_vector_paths_agree(v, jph, log_j0, ideality, rs, rsh, temperature):
    j0 = 10.0 ** log_j0
    scalar = sdm.current_density_A_cm2(v, jph, j0, ideality, rs, rsh, temperature)
    vector = sdm.current_density_A_cm2(np.array([v]), jph, j0, ideality, rs, rsh, temperature)[0]
    assert isinstance(scalar, float)
    np.testing.assert_allclose(scalar, vector, rtol=1e-12, atol=0.0)
    j = vector if math.isfinite(vector) else 0.0
    v_scalar = sdm.voltage_V(float(j), jph, j0, ideality, rs, rsh, temperature)
    v_vector = sdm.voltage_V(np.array([j]), jph, j0, ideality, rs, rsh, temperature)[0]
    assert isinstance(v_scalar, float)
    np.testing.assert_allclose(v_scalar, v_vector, rtol=1e-12, atol=1e-15, equal_nan=True)
    t_scalar = sdm.j0_at_temperature_A_cm2(j0, temperature, 1.5, ideality, 298.15)
    t_vector = sdm.j0_at_temperature_A_cm2(np.array([j0]), temperature, 1.5, ideality, 298.15)[0]
    np.testing.assert_allclose(t_scalar, t_vector, rtol=1e-13, atol=0.0)


def test_the_scalar_path_refuses_what_the_vector_path_refuses():
    for bad in ({"rs": -1.0}, {"j0": 0.0}, {"ideality": -1.0}):
        args = {"v": 0.5, "jph": 0.02, "j0": 1e-15, "ideality": 1.5, "rs": 1.0, "rsh": 1e3} | bad
        for wrap in (float, lambda x: np.array([x])):
            try:
                sdm.current_density_A_cm2(wrap(args["v"]), args["jph"], args["j0"], args["ideality"], args["rs"],
                                          args["rsh"])
            except ValueError:
                continue
            raise AssertionError(f"{bad} accepted")
    for bad_t in (0.0, -5.0):
        for value in (bad_t, np.array([bad_t])):
            try:
                sdm.thermal_voltage_V(value)
            except ValueError:
                continue
            raise AssertionError(f"temperature {bad_t} accepted")
