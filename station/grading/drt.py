"""Distribution of relaxation times (DRT) by Tikhonov-regularised non-negative least squares.

Z(f) = R_inf + j 2 pi f L + integral gamma(ln tau) / (1 + j 2 pi f tau) d ln tau
(``../shared/reference/grading.md`` 2.6). gamma is sampled on a log-spaced tau grid extending
one decade beyond the measured band; the system is weighted by 1/|Z| (like the circuit fits)
and ``lambda_`` times the identity is appended for gamma, so the solution is smooth and
non-negative. Peaks give each process's time constant and resistance (the area under it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import nnls
from scipy.signal import find_peaks


@dataclass(frozen=True)
class DrtPeak:
    tau_s: float
    resistance_ohm: float


@dataclass(frozen=True)
class DrtResult:
    tau_s: np.ndarray
    gamma_ohm: np.ndarray  # per unit ln(tau)
    r_inf_ohm: float
    inductance_h: float
    peaks: tuple[DrtPeak, ...]


def drt(
    f_hz: np.ndarray, z: np.ndarray, points_per_decade: int = 10, lambda_: float = 1e-3
) -> DrtResult:
    f = np.asarray(f_hz, dtype=float)
    z = np.asarray(z, dtype=complex)
    if f.size < 5 or np.any(f <= 0):
        raise ValueError("DRT needs at least 5 positive frequencies")
    omega = 2 * np.pi * f
    lo, hi = np.log10(1 / omega.max()) - 1, np.log10(1 / omega.min()) + 1
    tau = np.logspace(lo, hi, int((hi - lo) * points_per_decade) + 1)
    d_ln_tau = np.log(tau[1] / tau[0])
    kernel = d_ln_tau / (1 + 1j * omega[:, None] * tau[None, :])
    basis = np.concatenate([np.ones((f.size, 1)), 1j * omega[:, None], kernel], axis=1)
    w = 1.0 / np.abs(z)
    weighted = basis * w[:, None]
    a = np.concatenate([weighted.real, weighted.imag])
    b = np.concatenate([(z * w).real, (z * w).imag])
    reg = np.zeros((tau.size, basis.shape[1]))
    reg[:, 2:] = np.sqrt(lambda_) * np.eye(tau.size) * d_ln_tau * float(np.mean(w))
    solution, _ = nnls(np.vstack([a, reg]), np.concatenate([b, np.zeros(tau.size)]))
    gamma = solution[2:]
    index, _ = find_peaks(gamma, prominence=0.02 * float(gamma.max()) if gamma.max() > 0 else 1)
    peaks = []
    for k, p in enumerate(index):
        left = 0 if k == 0 else int(index[k - 1])
        right = gamma.size - 1 if k == len(index) - 1 else int(index[k + 1])
        lo_i = left + int(np.argmin(gamma[left : p + 1]))
        hi_i = p + int(np.argmin(gamma[p : right + 1]))
        peaks.append(DrtPeak(float(tau[p]), float(np.sum(gamma[lo_i : hi_i + 1]) * d_ln_tau)))
    return DrtResult(tau, gamma, float(solution[0]), float(solution[1]), tuple(peaks))
