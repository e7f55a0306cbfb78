"""DRT of a two-RC spectrum: the two processes come back at their time constants."""

from __future__ import annotations

import numpy as np
import pytest

from station.grading.drt import drt


def test_two_rc_processes_are_resolved() -> None:
    f = np.geomspace(1e5, 1e-2, 71)
    w = 2 * np.pi * f
    r0, r1, t1, r2, t2 = 0.010, 0.004, 1e-3, 0.008, 1.0
    z = r0 + r1 / (1 + 1j * w * t1) + r2 / (1 + 1j * w * t2)
    result = drt(f, z)
    assert len(result.peaks) == 2
    # A single RC is a delta in ln(tau); regularisation spreads it over a few grid points
    # (10 per decade), so the peak sits within one grid step (factor 10^0.1) and its area
    # holds the resistance within 5 %.
    for peak, (r, tau) in zip(result.peaks, ((r1, t1), (r2, t2)), strict=True):
        assert peak.tau_s == pytest.approx(tau, rel=0.26)
        assert peak.resistance_ohm == pytest.approx(r, rel=0.05)
    assert result.r_inf_ohm == pytest.approx(r0, rel=0.05)
    with pytest.raises(ValueError, match="5 positive"):
        drt(f[:3], z[:3])
