"""EIS fitting against known parameters and against impedance.py; Lin-KK; T-compensation."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from station.grading.compensation import (
    GAS_CONSTANT_J_PER_MOL_K,
    compensate_to_25c,
    fit_activation_energy,
)
from station.grading.eis import CIRCUITS, compare_models, fit, fit_many, lin_kk
from station.grading.results import Figure, Quality

F_HZ = np.geomspace(1e4, 1e-2, 61)
# Warburg tau is chosen so that w tau = 1 falls inside the band: a longer tau leaves only
# R_w / sqrt(tau) identifiable from 10 mHz data, and no fitter can recover both.
FULL = np.array([2e-7, 0.010, 0.004, 2.0, 0.85, 0.008, 50.0, 0.75, 0.005, 20.0])
RANDLES = np.array([0.012, 0.006, 1.5, 0.8, 0.004, 10.0])


def impedance_py_model(name: str, params: np.ndarray) -> np.ndarray:
    from impedance.models.circuits import CustomCircuit

    c = CustomCircuit(CIRCUITS[name].impedance_py, initial_guess=list(params))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Simulating circuit based on initial parameters"
        return np.asarray(c.predict(F_HZ, use_initial=True))


@pytest.mark.parametrize(("name", "params"), [("full", FULL), ("randles", RANDLES)])
def test_model_impedance_equals_impedance_py(name: str, params: np.ndarray) -> None:
    ours = CIRCUITS[name].impedance(params, F_HZ)[0]
    theirs = impedance_py_model(name, params)
    # Same closed forms, independent code: equal to float rounding (1e-10 relative).
    assert np.max(np.abs(ours - theirs) / np.abs(theirs)) < 1e-10


@pytest.mark.parametrize(("name", "params"), [("full", FULL), ("randles", RANDLES)])
def test_analytic_jacobian_matches_finite_differences(name: str, params: np.ndarray) -> None:
    c = CIRCUITS[name]
    p = params[None, :] * 1.1
    z, jac = c.evaluate(p, F_HZ)
    for k in range(p.shape[1]):
        step = p.copy()
        h = 1e-7 * p[0, k]
        step[0, k] += h
        numeric = (c.impedance(step, F_HZ)[0] - z[0]) / h
        scale = np.max(np.abs(jac[0, :, k]))
        # Forward difference with h = 1e-7 relative: truncation error well below 1e-4.
        assert np.max(np.abs(numeric - jac[0, :, k])) / scale < 1e-4, c.params[k]


@pytest.mark.parametrize(("name", "params"), [("full", FULL), ("randles", RANDLES)])
def test_noise_free_spectrum_is_recovered_from_automatic_guesses(
    name: str, params: np.ndarray
) -> None:
    z = CIRCUITS[name].impedance(params, F_HZ)[0]
    result = fit(F_HZ, z, name)
    assert result.converged
    # Exact data: parameters back to 1e-6 relative, residual at rounding level.
    np.testing.assert_allclose(result.values, params, rtol=1e-6)
    assert result.residual_rms < 1e-9


def noisy(z: np.ndarray, seed: int, level: float = 0.002) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return z + level * np.abs(z) * (rng.standard_normal(z.size) + 1j * rng.standard_normal(z.size))


@pytest.mark.parametrize(("name", "params"), [("full", FULL), ("randles", RANDLES)])
def test_noisy_spectrum_agrees_with_impedance_py_within_1_percent(
    name: str, params: np.ndarray
) -> None:
    from impedance.models.circuits import CustomCircuit

    z = noisy(CIRCUITS[name].impedance(params, F_HZ)[0], seed=3)
    ours = fit(F_HZ, z, name)
    assert ours.converged
    peer = CustomCircuit(CIRCUITS[name].impedance_py, initial_guess=list(ours.values * 1.05))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peer.fit(F_HZ, z, weight_by_modulus=True)
    # Same weighted least-squares problem: both optima agree within 1 % per parameter.
    np.testing.assert_allclose(ours.values, peer.parameters_, rtol=0.01)
    # With 0.2 % noise the fitted parameters stay within 5 standard errors of the truth.
    assert np.all(np.abs(ours.values - params) < 5 * ours.std_errors + 1e-12)


def test_batched_fit_equals_single_fits() -> None:
    rng = np.random.default_rng(5)
    params = FULL * rng.uniform(0.8, 1.2, (8, FULL.size))
    params[:, [4, 7]] = np.minimum(params[:, [4, 7]], 0.97)
    spectra = CIRCUITS["full"].impedance(params, F_HZ)
    batch = fit_many(F_HZ, spectra, "full")
    for k, result in enumerate(batch):
        single = fit(F_HZ, spectra[k], "full")
        np.testing.assert_allclose(result.values, single.values, rtol=1e-8)
        np.testing.assert_allclose(result.values, params[k], rtol=1e-5)


def test_model_comparison_prefers_the_two_arc_model_on_two_arc_data() -> None:
    z = noisy(CIRCUITS["full"].impedance(FULL, F_HZ)[0], seed=9, level=0.001)
    ranked = compare_models(F_HZ, z)
    assert ranked[0].circuit == "full"
    assert ranked[0].residual_rms < ranked[1].residual_rms


def test_lin_kk_accepts_a_causal_spectrum_and_rejects_a_distorted_one() -> None:
    z = noisy(CIRCUITS["full"].impedance(FULL, F_HZ)[0], seed=1, level=0.001)
    ours = lin_kk(F_HZ, z)
    assert ours.valid
    drifted = z.copy()
    drifted[40:] = drifted[40:].real * 1.15 + 1j * drifted[40:].imag  # drift at low frequency
    assert not lin_kk(F_HZ, drifted).valid


def test_lin_kk_verdict_agrees_with_impedance_py(monkeypatch: pytest.MonkeyPatch) -> None:
    import impedance.validation
    from impedance.models.circuits import CustomCircuit
    from impedance.validation import linKK

    # impedance.py 1.7.1 builds a source string from numpy 2 scalar reprs ("np.float64(...)")
    # and evals it without numpy in scope; give its namespace the name so its linKK runs.
    monkeypatch.setitem(impedance.validation.circuit_elements, "np", np)
    peer = CustomCircuit(
        "R0-p(R1,CPE1)-p(R2,CPE2)", initial_guess=[0.01, 0.004, 2, 0.85, 0.008, 50, 0.75]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        z = noisy(np.asarray(peer.predict(F_HZ, use_initial=True)), seed=2, level=0.001)
    _, _, _, res_re, res_im = linKK(F_HZ, z, c=0.85, max_M=50)
    theirs = max(np.abs(res_re).max(), np.abs(res_im).max())
    ours = lin_kk(F_HZ, z)
    # Both see a valid spectrum: residuals within the 1 % band, of the same order (noise 0.1 %).
    assert ours.valid and theirs < 0.01
    distorted = z.copy()
    distorted[45:] *= 1.2
    _, _, _, res_re, res_im = linKK(F_HZ, distorted, c=0.85, max_M=50)
    assert not lin_kk(F_HZ, distorted).valid
    assert max(np.abs(res_re).max(), np.abs(res_im).max()) >= 0.01


def test_bad_spectrum_names_the_row() -> None:
    f = F_HZ.copy()
    f[7] = 0.0
    with pytest.raises(ValueError, match="row 7"):
        fit(f, CIRCUITS["randles"].impedance(RANDLES, F_HZ)[0], "randles")
    with pytest.raises(ValueError, match="unknown circuit"):
        fit(F_HZ, CIRCUITS["randles"].impedance(RANDLES, F_HZ)[0], "nope")


def test_arrhenius_compensation_round_trip_and_refusal() -> None:
    ea, r25 = 30e3, 0.02
    temps = np.array([15.0, 25.0, 35.0])
    r = r25 * np.exp(ea / GAS_CONSTANT_J_PER_MOL_K * (1 / (temps + 273.15) - 1 / 298.15))
    assert fit_activation_energy(temps, r) == pytest.approx(ea, rel=1e-9)
    back = compensate_to_25c(Figure(float(r[2]), "ohm"), 35.0, ea)
    assert back.value == pytest.approx(r25, rel=1e-12)
    refused = compensate_to_25c(Figure(float(r[2]), "ohm"), 35.0, None)
    assert math.isnan(refused.value) and Quality.NOT_TEMPERATURE_COMPENSATED in refused.flags
    near = compensate_to_25c(Figure(0.02, "ohm"), 27.0, None)
    assert near.value == 0.02 and near.ok
    with pytest.raises(ValueError, match="three"):
        fit_activation_energy(np.array([20.0, 25.0]), np.array([0.02, 0.02]))
