"""OCV, K-value, leakage and ICA/DVA against analytic curves."""

from __future__ import annotations

import numpy as np
import pytest

from station.grading.ocv import dqdv_at, dva, ica, k_value_mv_per_day, leakage, peaks, rest_ocv
from station.grading.results import Figure, Quality


def test_rest_ocv_of_an_exponential_relaxation() -> None:
    t = np.arange(0, 4 * 3600.0, 10.0)
    v = 3.65 - 0.02 * np.exp(-t / 600.0)
    ocv = rest_ocv(t, v, min_rest_s=3600)
    # After 4 h the remaining relaxation is 0.02 * e^-24 V: below 1e-9 V.
    assert ocv.ok
    assert ocv.value == pytest.approx(3.65, abs=1e-9)
    early = rest_ocv(t[:60], v[:60], min_rest_s=3600)
    assert Quality.NOT_RELAXED in early.flags and Quality.REST_TOO_SHORT in early.flags


def test_k_value_and_leakage_by_hand() -> None:
    k = k_value_mv_per_day(Figure(3.6500, "V", 1e-5), 0.0, Figure(3.6479, "V", 1e-5), 7 * 86400.0)
    # 2.1 mV over 7 days = 0.3 mV/day; sigma = sqrt(2)*0.01 mV / 7 d.
    assert k.value == pytest.approx(0.3, rel=1e-9)
    assert k.uncertainty == pytest.approx(np.sqrt(2) * 0.01 / 7, rel=1e-9)
    leak = leakage(k, dqdv_ah_per_v=20.0, rated_capacity_ah=50.0)
    # I = 0.3e-3/86400 V/s * 20*3600 As/V = 0.25 mA; 0.25e-3*24/50*100 = 0.012 %/day.
    assert leak.current_a.value == pytest.approx(2.5e-4, rel=1e-9)
    assert leak.pct_per_day.value == pytest.approx(0.012, rel=1e-9)
    assert leak.pct_per_month.value == pytest.approx(0.36, rel=1e-9)
    with pytest.raises(ValueError, match="later"):
        k_value_mv_per_day(Figure(3.6, "V"), 10.0, Figure(3.6, "V"), 5.0)


STAGES = ((3.45, 0.6, 0.012), (3.65, 1.0, 0.015), (3.95, 0.4, 0.010))  # V_p, Ah, width


def ocv_charge_curve() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A C/20 charge on an OCV made of logistic stages: Q(V) = sum Q_k / (1 + e^-(V-V_k)/w_k).

    dQ/dV is then a sum of logistic-derivative peaks at V_k with area Q_k and height
    Q_k / (4 w_k), and FWHM 2 w_k ln(3 + 2 sqrt 2).
    """
    v_fine = np.linspace(3.0, 4.3, 200001)
    q_fine = sum(q / (1 + np.exp(-(v_fine - vp) / w)) for vp, q, w in STAGES)
    total = float(q_fine[-1] - q_fine[0])
    current = total / 20.0
    t = np.arange(0, 20 * 3600.0, 2.0)
    q_t = q_fine[0] + current * t / 3600.0
    v = np.interp(q_t, q_fine, v_fine)
    return t, v, np.full_like(t, current)


def test_ica_recovers_peak_positions_and_areas() -> None:
    t, v, i = ocv_charge_curve()
    curve = ica(t, v, i, step_v=0.001, fwhm_v=0.01)
    found = peaks(curve)
    assert len(found) == 3
    for peak, (vp, q, w) in zip(found, STAGES, strict=True):
        # Gaussian smoothing of 10 mV FWHM keeps the position (+-1 mV) and the area between
        # the bases (+-3 %: tails of neighbours overlap); it lowers and widens the peak.
        assert peak.position == pytest.approx(vp, abs=1e-3)
        assert peak.area == pytest.approx(q, rel=0.03)
        assert peak.height < q / (4 * w)
        assert peak.fwhm > 2 * w * np.log(3 + 2 * np.sqrt(2))
    # Without smoothing the height is the analytic one (+-2 % from the 1 mV grid).
    raw = peaks(ica(t, v, i, step_v=0.001, fwhm_v=0.0))
    assert raw[1].height == pytest.approx(1.0 / (4 * 0.015), rel=0.02)
    assert dqdv_at(curve, 3.65) == pytest.approx(raw[1].height, rel=0.15)


def test_ica_of_a_discharge_and_dva_are_consistent() -> None:
    t, v, i = ocv_charge_curve()
    curve = ica(t, v[::-1].copy(), -i, step_v=0.001, fwhm_v=0.01)
    assert [round(p.position, 2) for p in peaks(curve)] == [3.45, 3.65, 3.95]
    dv = dva(t, v, i, points=2000, fwhm_fraction=0.0)
    # dV/dQ is the reciprocal of dQ/dV: at the middle stage's centre, 4 w / Q = 0.06 V/Ah.
    q_mid = 0.6 + 0.5
    assert float(np.interp(q_mid, dv.x, dv.y)) == pytest.approx(0.06, rel=0.05)
