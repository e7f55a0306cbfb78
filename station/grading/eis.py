"""EIS equivalent-circuit fitting, Lin-KK validity check and model comparison.

Circuits (``../shared/reference/grading.md`` 2.6), named as impedance.py spells them:

- ``full``: ``L0-R0-p(R1,CPE1)-p(R2,CPE2)-Wo1`` (10 parameters)
- ``randles``: ``R0-p(R1,CPE1)-Wo1`` (6 parameters; the minimal grading model)

Z_CPE = 1 / (Q (j w)^a), Z_Wo = R_W coth(sqrt(j w tau)) / sqrt(j w tau).

Fitting is modulus-weighted least squares (residuals (Z_model - Z) / |Z|, real and imaginary
parts) solved by a batched Levenberg-Marquardt on many spectra at once. Bounds are enforced by
the parameterisation: positive parameters are fitted as their logarithm, CPE exponents through
a logistic map onto (0, 1]. The Jacobian is analytic (derivatives of every element in closed
form, chain rule through the parameterisation). Standard errors come from the Jacobian at the
solution: cov = s^2 (J^T J)^-1 with s^2 = SSR / (2 N - P).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from station.grading.results import Quality

Complex = NDArray[Any]
Float = NDArray[Any]

TINY = 1e-300
MAX_STEP = 2.0


def _r(p: Float, omega: Float) -> tuple[Complex, list[Complex]]:
    z = p[:, 0:1] + 0j * omega
    return z, [np.ones_like(z)]


def _l(p: Float, omega: Float) -> tuple[Complex, list[Complex]]:
    jw = 1j * omega[None, :]
    return p[:, 0:1] * jw, [np.broadcast_to(jw, (p.shape[0], omega.size)).astype(complex)]


def _r_cpe(p: Float, omega: Float) -> tuple[Complex, list[Complex]]:
    r, q, a = p[:, 0:1], p[:, 1:2], p[:, 2:3]
    log_jw = np.log(omega)[None, :] + 0.5j * np.pi
    jwa = np.exp(a * log_jw)
    z = 1.0 / (1.0 / r + q * jwa)
    z2 = z * z
    return z, [z2 / (r * r), -z2 * jwa, -z2 * q * jwa * log_jw]


def _wo(p: Float, omega: Float) -> tuple[Complex, list[Complex]]:
    rw, tau = p[:, 0:1], p[:, 1:2]
    s = np.sqrt(1j * omega[None, :] * tau)
    coth = 1.0 / np.tanh(s)
    base = coth / s
    d_tau = rw * (-(coth * coth - 1.0) * s - coth) / (2.0 * tau * s)
    return rw * base, [base, d_tau]


ELEMENTS = {"R": (_r, 1), "L": (_l, 1), "RCPE": (_r_cpe, 3), "Wo": (_wo, 2)}


@dataclass(frozen=True)
class Circuit:
    """A series chain of elements; ``params``/``units`` in order; ``exponents`` index CPE a."""

    name: str
    impedance_py: str
    chain: tuple[str, ...]
    params: tuple[str, ...]
    units: tuple[str, ...]
    exponents: tuple[int, ...] = field(default=())

    def impedance(self, p: Float, f_hz: Float) -> Complex:
        """Z (ohm) for parameter rows ``p`` (n, P) at frequencies ``f_hz`` (m,): shape (n, m)."""
        return self.evaluate(np.atleast_2d(p), f_hz)[0]

    def evaluate(self, p: Float, f_hz: Float) -> tuple[Complex, Complex]:
        """Z (n, m) and dZ/dp (n, m, P)."""
        omega = 2.0 * np.pi * np.asarray(f_hz, dtype=float)
        n = p.shape[0]
        z = np.zeros((n, omega.size), dtype=complex)
        jac: list[Complex] = []
        col = 0
        for element in self.chain:
            func, width = ELEMENTS[element]
            z_el, d_el = func(p[:, col : col + width], omega)
            z = z + z_el
            jac.extend(np.broadcast_to(d, (n, omega.size)) for d in d_el)
            col += width
        return z, np.stack(jac, axis=-1)


CIRCUITS: dict[str, Circuit] = {
    "full": Circuit(
        "full",
        "L0-R0-p(R1,CPE1)-p(R2,CPE2)-Wo1",
        ("L", "R", "RCPE", "RCPE", "Wo"),
        ("L0", "R0", "R1", "Q1", "a1", "R2", "Q2", "a2", "Rw", "tau_w"),
        ("H", "ohm", "ohm", "F*s^(a-1)", "1", "ohm", "F*s^(a-1)", "1", "ohm", "s"),
        (4, 7),
    ),
    "randles": Circuit(
        "randles",
        "R0-p(R1,CPE1)-Wo1",
        ("R", "RCPE", "Wo"),
        ("R0", "R1", "Q1", "a1", "Rw", "tau_w"),
        ("ohm", "ohm", "F*s^(a-1)", "1", "ohm", "s"),
        (3,),
    ),
}


def circuit(name: str) -> Circuit:
    """The circuit of that name; ``ValueError`` naming the known ones otherwise."""
    try:
        return CIRCUITS[name]
    except KeyError:
        raise ValueError(f"unknown circuit {name!r}; known: {', '.join(CIRCUITS)}") from None


# --- parameterisation: u = log(p) for positive parameters, logit(a) for CPE exponents ---------


def _to_u(c: Circuit, p: Float) -> Float:
    u = np.log(np.maximum(p, TINY))
    for k in c.exponents:
        a = np.clip(p[:, k], 1e-6, 1 - 1e-9)
        u[:, k] = np.log(a / (1 - a))
    return u


def _from_u(c: Circuit, u: Float) -> tuple[Float, Float]:
    """Parameters and dp/du."""
    p = np.exp(np.clip(u, -700, 700))
    dp = p.copy()
    for k in c.exponents:
        a = 1.0 / (1.0 + np.exp(-np.clip(u[:, k], -700, 700)))
        p[:, k] = a
        dp[:, k] = a * (1 - a)
    return p, dp


def _residuals(c: Circuit, p: Float, f_hz: Float, z: Complex) -> tuple[Float, Float]:
    """Modulus-weighted residuals (n, 2m) and their Jacobian in p (n, 2m, P)."""
    model, dz = c.evaluate(p, f_hz)
    w = 1.0 / np.abs(z)
    diff = (model - z) * w
    r = np.concatenate([diff.real, diff.imag], axis=1)
    dzw = dz * w[:, :, None]
    return r, np.concatenate([dzw.real, dzw.imag], axis=1)


# --- initial guesses from the spectrum --------------------------------------------------------


def initial_guess(c: Circuit, f_hz: Float, z: Complex) -> Float:
    """Start values from the spectrum: high-frequency intercept (R0), inductive tail (L0), the
    apex of the capacitive arc(s) (R and Q of each arc at a = 0.9) and the low-frequency tail
    (Warburg R and tau)."""
    order = np.argsort(f_hz)[::-1]
    f, zz = f_hz[order], z[order]
    omega = 2 * np.pi * f
    minus_im = -zz.imag
    capacitive = np.flatnonzero(minus_im > 0)
    first_cap = int(capacitive[0]) if len(capacitive) else 0
    if first_cap > 0:
        k = first_cap
        w = minus_im[k] / (minus_im[k] - minus_im[k - 1])  # Im crosses zero between k-1 and k
        r0 = float(zz.real[k] + w * (zz.real[k - 1] - zz.real[k]))
        inductance = float(max(zz.imag[0], 0.0) / omega[0]) or 1e-9
    else:
        r0 = float(zz.real[0])
        inductance = 1e-9
    r0 = max(r0, 1e-6 * float(np.abs(zz).max()))
    # Arc apexes: local maxima of -Im in the capacitive part (highest first = fastest arc).
    seg = minus_im[first_cap:]
    maxima = [
        first_cap + k
        for k in range(1, len(seg) - 1)
        if seg[k] >= seg[k - 1] and seg[k] > seg[k + 1]
    ]
    apex = maxima[0] if maxima else first_cap + int(np.argmax(seg))
    r_arc = max(2.0 * (float(zz.real[apex]) - r0), 1e-3 * r0)
    alpha = 0.9
    arcs = c.chain.count("RCPE")
    guesses: list[tuple[float, float, float]] = []
    if arcs == 2:
        if len(maxima) >= 2:
            second = maxima[1]
            r2 = max(2.0 * (float(zz.real[second]) - r0 - r_arc), 0.5 * r_arc)
            apexes = ((r_arc, omega[apex]), (r2, omega[second]))
        else:
            apexes = ((0.4 * r_arc, omega[apex] * 3.0), (0.6 * r_arc, omega[apex] / 3.0))
        for r_k, w_k in apexes:
            guesses.append((r_k, 1.0 / (r_k * w_k**alpha), alpha))
    else:
        guesses.append((r_arc, 1.0 / (r_arc * omega[apex] ** alpha), alpha))
    r_arcs = sum(g[0] for g in guesses)
    tail_re = float(zz.real[-1]) - r0 - r_arcs
    rw = max(3.0 * tail_re, 0.2 * r_arcs)
    tail_im = max(float(minus_im[-1]), 1e-12)
    tau_w = float(np.clip(rw / (omega[-1] * tail_im), 1e-3 / omega[-1], 1e3 / omega[-1]))
    values: list[float] = []
    arc_iter = iter(guesses)
    for element in c.chain:
        if element == "L":
            values.append(inductance)
        elif element == "R":
            values.append(r0)
        elif element == "RCPE":
            values.extend(next(arc_iter))
        else:
            values.extend((rw, tau_w))
    return np.array(values)


# --- fitting ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FitResult:
    """One fitted spectrum: parameters with units and standard errors, residual, convergence.

    ``residual_rms`` is the RMS of the modulus-weighted residuals (a relative error, 1 = 100 %).
    ``aic`` is Akaike's criterion on the weighted sum of squares (lower is better).
    """

    circuit: str
    names: tuple[str, ...]
    units: tuple[str, ...]
    values: Float
    std_errors: Float
    residual_rms: float
    aic: float
    converged: bool
    iterations: int
    flags: frozenset[Quality] = frozenset()

    def as_dict(self) -> dict[str, object]:
        return {
            "circuit": self.circuit,
            "parameters": [
                {
                    "name": n,
                    "value": float(v),
                    "unit": u,
                    "std_error": None if not np.isfinite(e) else float(e),
                }
                for n, v, u, e in zip(
                    self.names, self.values, self.units, self.std_errors, strict=True
                )
            ],
            "residual_rms": self.residual_rms,
            "aic": self.aic,
            "converged": self.converged,
            "iterations": self.iterations,
            "flags": sorted(flag.value for flag in self.flags),
        }


def _check_spectra(f_hz: Float, z: Complex) -> None:
    if f_hz.ndim != 1 or z.shape[-1] != f_hz.size:
        raise ValueError(f"frequencies {f_hz.shape} and impedances {z.shape} do not match")
    if np.any(f_hz <= 0) or not np.all(np.isfinite(f_hz)):
        row = int(np.flatnonzero((f_hz <= 0) | ~np.isfinite(f_hz))[0])
        raise ValueError(f"frequency at row {row} is not a positive number")
    bad = ~np.isfinite(z) | (np.abs(z) == 0)
    if bad.any():
        where = np.argwhere(bad)[0]
        raise ValueError(f"impedance at row {int(where[-1])} is zero or not finite")


def fit_many(
    f_hz: Float,
    z: Complex,
    circuit_name: str = "full",
    initial: Float | None = None,
    max_iter: int = 300,
    tol: float = 1e-12,
) -> list[FitResult]:
    """Fit every spectrum in ``z`` (n, m) at the shared frequencies ``f_hz`` (m,), batched."""
    f_hz = np.asarray(f_hz, dtype=float)
    z = np.atleast_2d(np.asarray(z, dtype=complex))
    _check_spectra(f_hz, z)
    c = circuit(circuit_name)
    n, m = z.shape
    n_par = len(c.params)
    if 2 * m <= n_par:
        raise ValueError(f"{m} frequencies are too few for {n_par} parameters")
    p0 = (
        np.array([initial_guess(c, f_hz, z[k]) for k in range(n)])
        if initial is None
        else np.broadcast_to(np.asarray(initial, dtype=float), (n, n_par)).copy()
    )
    u = _to_u(c, p0)
    lam = np.full(n, 1e-2)
    active = np.ones(n, dtype=bool)
    done = np.zeros(n, dtype=bool)
    iterations = np.zeros(n, dtype=int)
    p, dp = _from_u(c, u)
    r, jp = _residuals(c, p, f_hz, z)
    cost = np.einsum("ij,ij->i", r, r)
    eye = np.eye(n_par)
    for _ in range(max_iter):
        idx = np.flatnonzero(active)
        if len(idx) == 0:
            break
        ju = jp[idx] * dp[idx][:, None, :]
        g = np.einsum("nmp,nm->np", ju, r[idx])
        a = np.einsum("nmp,nmq->npq", ju, ju)
        diag = np.einsum("npp->np", a)
        damped = a + lam[idx, None, None] * (diag[:, :, None] * eye + 1e-12 * eye)
        step = -np.linalg.solve(damped, g[:, :, None])[:, :, 0]
        # A step may change no parameter by more than a factor e^2: LM's damping alone lets a
        # poorly conditioned first step jump to absurd values.
        largest = np.max(np.abs(step), axis=1, keepdims=True)
        step = step * np.minimum(1.0, MAX_STEP / np.maximum(largest, TINY))
        u_try = u[idx] + step
        with np.errstate(all="ignore"):
            p_try, dp_try = _from_u(c, u_try)
            r_try, jp_try = _residuals(c, p_try, f_hz, z[idx])
            cost_try = np.einsum("ij,ij->i", r_try, r_try)
        ok = np.isfinite(cost_try) & (cost_try <= cost[idx])
        acc = idx[ok]
        gain = cost[acc] - cost_try[ok]
        u[acc], dp[acc], r[acc], jp[acc], cost[acc] = (
            u_try[ok],
            dp_try[ok],
            r_try[ok],
            jp_try[ok],
            cost_try[ok],
        )
        lam[acc] = np.maximum(lam[acc] / 3.0, 1e-12)
        lam[idx[~ok]] *= 4.0
        iterations[idx] += 1
        small_step = np.max(np.abs(step), axis=1) < 1e-10
        converged_now = np.zeros(len(idx), dtype=bool)
        converged_now[ok] = gain <= tol * np.maximum(cost[acc], TINY)
        converged_now |= small_step | (lam[idx] > 1e12)
        done[idx[converged_now]] = True
        active[idx[converged_now]] = False
    p, _ = _from_u(c, u)
    results = []
    dof = max(2 * m - n_par, 1)
    for k in range(n):
        s2 = cost[k] / dof
        # Relative parameterisation keeps J^T J well scaled (L0 ~ 1e-7 H next to Q ~ 1e2).
        scale = np.where(p[k] != 0, np.abs(p[k]), 1.0)
        js = jp[k] * scale
        cov_rel = s2 * np.linalg.pinv(js.T @ js, rcond=1e-12)
        std = np.sqrt(np.abs(np.diag(cov_rel))) * scale
        flags = frozenset() if done[k] else frozenset({Quality.FIT_NOT_CONVERGED})
        results.append(
            FitResult(
                circuit=c.name,
                names=c.params,
                units=c.units,
                values=p[k].copy(),
                std_errors=std,
                residual_rms=float(np.sqrt(cost[k] / (2 * m))),
                aic=float(2 * m * np.log(max(cost[k], TINY) / (2 * m)) + 2 * n_par),
                converged=bool(done[k]),
                iterations=int(iterations[k]),
                flags=flags,
            )
        )
    return results


def fit(
    f_hz: Float, z: Complex, circuit_name: str = "full", initial: Float | None = None
) -> FitResult:
    """Fit one spectrum (see :func:`fit_many`)."""
    return fit_many(f_hz, np.asarray(z)[None, :], circuit_name, initial)[0]


# --- Kramers-Kronig ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LinKKResult:
    """Lin-KK test (Schoenleber et al. 2014): M RC elements, mu, relative residuals, verdict."""

    m: int
    mu: float
    residual_real: Float
    residual_imag: Float
    max_residual: float
    valid: bool

    def as_dict(self) -> dict[str, object]:
        return {
            "m": self.m,
            "mu": self.mu,
            "max_residual": self.max_residual,
            "valid": self.valid,
        }


def lin_kk(
    f_hz: Float, z: Complex, c: float = 0.85, max_m: int = 50, threshold: float = 0.01
) -> LinKKResult:
    """Fit a KK-compliant chain R + L + C + sum of M RC elements (tau log-spaced over the
    measured range, as impedance.py's ``linKK`` with ``add_cap``; the series C takes the
    capacitive low-frequency tail of a blocking Warburg) by modulus-weighted linear least
    squares, raising M until
    mu = 1 - sum|R_k<0| / sum|R_k>=0| falls below ``c``. The spectrum is KK-valid when every
    relative residual is below ``threshold`` (1 % by default)."""
    f_hz = np.asarray(f_hz, dtype=float)
    z = np.asarray(z, dtype=complex)
    _check_spectra(f_hz, z[None, :])
    omega = 2 * np.pi * f_hz
    w = 1.0 / np.abs(z)
    tau_min, tau_max = 1 / omega.max(), 1 / omega.min()
    best: tuple[int, float, Complex] | None = None
    for m in range(1, max_m + 1):
        taus = np.array([tau_min]) if m == 1 else np.geomspace(tau_min, tau_max, m)
        rc = 1.0 / (1.0 + 1j * omega[:, None] * taus[None, :])
        basis = (
            np.concatenate(
                [np.ones((omega.size, 1)), rc, 1j * omega[:, None], -1j / omega[:, None]], axis=1
            )
            * w[:, None]
        )
        a = np.concatenate([basis.real, basis.imag])
        b = np.concatenate([(z * w).real, (z * w).imag])
        coef = np.linalg.lstsq(a, b, rcond=None)[0]
        rk = coef[1 : 1 + m]
        positive = np.sum(np.abs(rk[rk >= 0]))
        mu = 1.0 - np.sum(np.abs(rk[rk < 0])) / positive if positive > 0 else 0.0
        z_fit = (basis @ coef) / w
        best = (m, float(mu), z_fit)
        if mu <= c:
            break
    assert best is not None
    m, mu, z_fit = best
    res_re = (z.real - z_fit.real) / np.abs(z)
    res_im = (z.imag - z_fit.imag) / np.abs(z)
    worst = float(max(np.abs(res_re).max(), np.abs(res_im).max()))
    return LinKKResult(m, mu, res_re, res_im, worst, worst < threshold)


def compare_models(
    f_hz: Float, z: Complex, names: tuple[str, ...] = ("randles", "full")
) -> list[FitResult]:
    """Fit each circuit and return the results, best (lowest AIC among converged) first."""
    results = [fit(f_hz, z, name) for name in names]
    return sorted(results, key=lambda r: (not r.converged, r.aic))
