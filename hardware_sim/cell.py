"""An equivalent-circuit cell integrated in simulated time.

Circuit (current ``I`` positive when charging)::

    V = OCV(soc) + h + I * R0 + sum_k v_k          dv_k/dt = (I * R_k - v_k) / tau_k

The sum runs over the two RC pairs (R1, tau1; R2, tau2) and over the Foster expansion of a
finite-length (transmissive) Warburg element ``Z_W = Rw * tanh(sqrt(j w tw)) / sqrt(j w tw)``:
``tanh(sqrt(s))/sqrt(s) = sum_n 2 / (s + a_n^2)``, ``a_n = (2n - 1) pi / 2``, so term n is an RC
pair with ``R_n = 2 Rw / a_n^2`` and ``tau_n = tw / a_n^2`` (the ``R_n`` add up to ``Rw``). The
first terms are kept and the remainder is lumped into one more pair, so the DC resistance is
exactly ``R0 + R1 + R2 + Rw`` in both the time and the frequency domain, and
:meth:`Cell.impedance` is the exact small-signal impedance of the same parameters plus the
series inductance (which has no DC effect) and the OCV slope as a capacitor
``C = 3600 * Q / (dOCV/dsoc)``.

Integration is exact for a constant current over a sub-step (exponential RC updates, linear
coulomb counting, exponential thermal approach), so a long constant-current segment costs a few
sub-steps of at most ``MAX_DSOC_PER_STEP`` of charge each. Voltage clamps are found by bisection
on the closed-form step; constant-voltage phases solve the current implicitly per sub-step.

Thermal: lumped mass ``C_th`` coupled to ambient through ``R_th``; heat is the Joule heat in R0 and
the RC resistors plus, above ``runaway_onset_c``, an exothermic term that grows exponentially with
temperature (thermal runaway onset). Self-discharge is a leakage resistance across the OCV.
Hysteresis (optional) relaxes towards ``+/- hysteresis_v`` with charge throughput.
"""

from __future__ import annotations

import enum
import math
from bisect import bisect_right
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

MAX_DSOC_PER_STEP = 0.01
MAX_DT_PER_STEP_S = 3600.0
CLAMP_MARGIN_V = 1.0e-6
GAS_CONSTANT = 8.314462618
REFERENCE_TEMPERATURE_C = 25.0
WARBURG_TERMS = 6
RUNAWAY_SCALE_K = 8.0
RUNAWAY_MAX_POWER_W = 500.0
MAX_TEMPERATURE_C = 900.0
#: Below soc 0 / above soc 1 the OCV is extrapolated with this slope (V per unit soc): an
#: over-discharged cell's voltage collapses, an over-charged one rises steeply.
EXTRAPOLATION_SLOPE_V = 20.0


class Contact(enum.Enum):
    """How the cell appears at the instrument's fixture or channel leads."""

    OK = "ok"
    OPEN = "open"  # open tab / probe not touching: no contact
    REVERSED = "reversed"  # inserted the wrong way round: the instrument sees -V


class Mode(enum.Enum):
    """What drives the cell terminals."""

    OPEN_CIRCUIT = "open_circuit"
    CURRENT = "current"  # CC, optionally clamped to a voltage limit (CC -> CV)
    VOLTAGE = "voltage"  # CV with a current limit


@dataclass(frozen=True)
class CellParams:
    """Every parameter of one cell. Units in the names; resistances in ohm, time constants in s.

    ``ocv_soc``/``ocv_v``: the OCV table (soc increasing from 0 to 1). ``v_min_v``/``v_max_v``: the
    rated voltage window. ``cpe_alpha`` < 1 depresses the two RC arcs in :meth:`Cell.impedance`
    only (a ZARC); the time-domain model keeps ideal RC pairs, which have the same DC resistance and
    time constants. ``leak_resistance_ohm`` = inf means no self-discharge.
    """

    chemistry: str
    capacity_ah: float
    ocv_soc: tuple[float, ...]
    ocv_v: tuple[float, ...]
    v_min_v: float
    v_max_v: float
    r0_ohm: float = 0.020
    r1_ohm: float = 0.010
    tau1_s: float = 0.002
    r2_ohm: float = 0.010
    tau2_s: float = 20.0
    warburg_ohm: float = 0.005
    warburg_tau_s: float = 400.0
    inductance_h: float = 1.0e-7
    cpe_alpha: float = 1.0
    leak_resistance_ohm: float = math.inf
    thermal_mass_j_per_k: float = 40.0
    thermal_resistance_k_per_w: float = 15.0
    ambient_c: float = 25.0
    hysteresis_v: float = 0.0
    hysteresis_rate: float = 30.0
    runaway_onset_c: float = 150.0
    runaway_power_w: float = 2.0
    ea_ohmic_j_per_mol: float = 0.0
    ea_kinetic_j_per_mol: float = 0.0

    def __post_init__(self) -> None:
        if len(self.ocv_soc) != len(self.ocv_v) or len(self.ocv_soc) < 2:
            raise ValueError("ocv_soc and ocv_v must have the same length, at least 2")
        if any(b <= a for a, b in zip(self.ocv_soc, self.ocv_soc[1:], strict=False)):
            raise ValueError("ocv_soc must be strictly increasing")
        for name in (
            "capacity_ah",
            "r0_ohm",
            "tau1_s",
            "tau2_s",
            "warburg_tau_s",
            "thermal_mass_j_per_k",
            "thermal_resistance_k_per_w",
            "leak_resistance_ohm",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"CellParams.{name} must be positive, got {getattr(self, name)!r}")
        for name in (
            "r1_ohm",
            "r2_ohm",
            "warburg_ohm",
            "inductance_h",
            "hysteresis_v",
            "ea_ohmic_j_per_mol",
            "ea_kinetic_j_per_mol",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"CellParams.{name} must be >= 0, got {getattr(self, name)!r}")
        if not 0.5 <= self.cpe_alpha <= 1.0:
            raise ValueError(f"CellParams.cpe_alpha must be in [0.5, 1], got {self.cpe_alpha!r}")

    @property
    def dc_resistance_ohm(self) -> float:
        """R0 + R1 + R2 + Rw: the resistance a long current step settles to."""
        return self.r0_ohm + self.r1_ohm + self.r2_ohm + self.warburg_ohm

    def resistance_factors(self, temperature_c: float) -> tuple[float, float]:
        """Arrhenius multipliers (ohmic, kinetic) of the 25 degC resistances at a temperature."""
        inv = 1.0 / (temperature_c + 273.15) - 1.0 / (REFERENCE_TEMPERATURE_C + 273.15)
        return (
            math.exp(self.ea_ohmic_j_per_mol / GAS_CONSTANT * inv),
            math.exp(self.ea_kinetic_j_per_mol / GAS_CONSTANT * inv),
        )

    def at_temperature(self, temperature_c: float) -> CellParams:
        """A copy whose resistances are those at ``temperature_c``."""
        ohmic, kinetic = self.resistance_factors(temperature_c)
        if ohmic == 1.0 and kinetic == 1.0:
            return self
        return replace(
            self,
            r0_ohm=self.r0_ohm * ohmic,
            r1_ohm=self.r1_ohm * kinetic,
            r2_ohm=self.r2_ohm * kinetic,
            warburg_ohm=self.warburg_ohm * kinetic,
        )

    def with_acir(self, acir_ohm: float, frequency_hz: float = 1000.0) -> CellParams:
        """A copy whose R0 is chosen so that Re Z(frequency_hz) equals ``acir_ohm``."""
        others = replace(self, r0_ohm=1.0e-9)
        rest = float(np.real(impedance_of(others, frequency_hz, ocv_slope_v=0.0))) - 1.0e-9
        r0 = acir_ohm - rest
        if r0 <= 0:
            raise ValueError(
                f"ACIR {acir_ohm} ohm is below the arcs' own {rest:.6g} ohm at {frequency_hz} Hz"
            )
        return replace(self, r0_ohm=r0)

    def arcs(self) -> list[tuple[float, float]]:
        """The time-domain RC pairs ``(R_ohm, tau_s)``: R1, R2, then the Warburg Foster terms."""
        pairs = [(self.r1_ohm, self.tau1_s), (self.r2_ohm, self.tau2_s)]
        if self.warburg_ohm > 0:
            kept = 0.0
            for n in range(1, WARBURG_TERMS + 1):
                a2 = ((2 * n - 1) * math.pi / 2) ** 2
                r_n = 2 * self.warburg_ohm / a2
                pairs.append((r_n, self.warburg_tau_s / a2))
                kept += r_n
            a2_next = ((2 * WARBURG_TERMS + 1) * math.pi / 2) ** 2
            pairs.append((self.warburg_ohm - kept, self.warburg_tau_s / a2_next))
        return [(r, tau) for r, tau in pairs if r > 0]


def impedance_of(
    params: CellParams, frequency_hz: Any, *, ocv_slope_v: float
) -> complex | np.ndarray:
    """Small-signal Z(f) of ``params``: L + R0 + 2 RC/ZARC arcs + finite Warburg + OCV capacitor.

    ``ocv_slope_v`` is dOCV/dsoc at the operating point (0 drops the capacitor term).
    """
    f = np.asarray(frequency_hz, dtype=float)
    if np.any(f <= 0):
        raise ValueError("impedance frequencies must be positive")
    w = 2 * np.pi * f
    jw = 1j * w
    a = params.cpe_alpha
    z = params.r0_ohm + jw * params.inductance_h
    z = z + params.r1_ohm / (1 + (jw * params.tau1_s) ** a)
    z = z + params.r2_ohm / (1 + (jw * params.tau2_s) ** a)
    if params.warburg_ohm > 0:
        s = np.sqrt(jw * params.warburg_tau_s)
        z = z + params.warburg_ohm * np.tanh(s) / s
    if ocv_slope_v > 0:
        z = z + ocv_slope_v / (jw * 3600.0 * params.capacity_ah)
    if np.ndim(z) == 0:
        return complex(z)
    return z


@dataclass
class _State:
    t_s: float
    soc: float
    v_arcs: list[float]
    temperature_c: float
    hysteresis_v: float
    charge_ah: float
    leak_ah: float


class Cell:
    """One simulated cell: drive it with ``set_*``, move it with :meth:`advance_to`, read it.

    Not thread-safe by itself: the personality that owns a cell calls it under its own lock.
    ``cell_id`` is a barcode-like identifier; ``rated`` holds rated values for intake (free form).
    """

    def __init__(
        self,
        params: CellParams,
        *,
        soc: float = 0.5,
        temperature_c: float | None = None,
        t_s: float = 0.0,
        contact: Contact = Contact.OK,
        cell_id: str = "",
        rated: dict[str, Any] | None = None,
    ) -> None:
        self._params = params
        self._arcs = params.arcs()
        self._arcs_eff = list(self._arcs)
        self._r0 = params.r0_ohm
        self._decay_cache: dict[float, tuple[list[float], float]] = {}
        self._soc_table = list(params.ocv_soc)
        self._v_table = list(params.ocv_v)
        self._t_s = float(t_s)
        self._soc = float(soc)
        self._v_arcs = [0.0] * len(self._arcs)
        self._temperature_c = params.ambient_c if temperature_c is None else float(temperature_c)
        self._h = 0.0
        self._charge_ah = 0.0
        self._leak_ah = 0.0
        self._current_a = 0.0
        self._mode = Mode.OPEN_CIRCUIT
        self._setpoint_a = 0.0
        self._setpoint_v: float | None = None
        self._current_limit_a = 0.0
        self.contact = contact
        self.cell_id = cell_id
        self.rated: dict[str, Any] = dict(rated or {})
        self._scale_resistances()

    # ---- control -------------------------------------------------------------------------------

    def set_open_circuit(self) -> None:
        """Disconnect the source: no current flows (self-discharge and relaxation go on)."""
        self._mode = Mode.OPEN_CIRCUIT
        self._setpoint_v = None
        self._current_a = 0.0

    def set_current(self, current_a: float, *, voltage_limit_v: float | None = None) -> None:
        """Constant current (positive charges). With ``voltage_limit_v`` the terminal voltage is
        clamped there (an upper limit when charging, a lower one when discharging): CC -> CV."""
        self._mode = Mode.CURRENT
        self._setpoint_a = float(current_a)
        self._setpoint_v = None if voltage_limit_v is None else float(voltage_limit_v)
        self._current_a = self._solve_current(0.0)

    def set_voltage(self, voltage_v: float, *, current_limit_a: float) -> None:
        """Constant voltage at the terminals with ``|I| <= current_limit_a``."""
        if current_limit_a < 0:
            raise ValueError(f"current_limit_a must be >= 0, got {current_limit_a!r}")
        self._mode = Mode.VOLTAGE
        self._setpoint_v = float(voltage_v)
        self._current_limit_a = float(current_limit_a)
        self._current_a = self._solve_current(0.0)

    # ---- observation ---------------------------------------------------------------------------

    @property
    def params(self) -> CellParams:
        return self._params

    @property
    def mode(self) -> Mode:
        return self._mode

    @property
    def t_s(self) -> float:
        """Simulated time the state refers to (s)."""
        return self._t_s

    @property
    def soc(self) -> float:
        """State of charge (0..1 in the rated window; may leave it when abused)."""
        return self._soc

    @property
    def current_a(self) -> float:
        """Terminal current (A), positive when charging."""
        return self._current_a

    @property
    def ocv_v(self) -> float:
        """Open-circuit voltage at the present soc, including hysteresis (V)."""
        return self._ocv(self._soc) + self._h

    @property
    def terminal_voltage_v(self) -> float:
        """Voltage at the cell's terminals with the present current (V)."""
        return self._voltage(self._soc, self._v_arcs, self._h, self._current_a)

    @property
    def temperature_c(self) -> float:
        return self._temperature_c

    @property
    def charge_ah(self) -> float:
        """Net charge that entered through the terminals since creation (Ah, + when charging)."""
        return self._charge_ah

    @property
    def leakage_ah(self) -> float:
        """Charge lost to self-discharge since creation (Ah, >= 0)."""
        return self._leak_ah

    def ocv_slope_v(self) -> float:
        """dOCV/dsoc at the present soc (V per unit soc)."""
        return self._ocv_slope(self._soc)

    def impedance(self, frequency_hz: Any) -> complex | np.ndarray:
        """Small-signal impedance at the present operating point (ohm), float or array of f."""
        params = self._params.at_temperature(self._temperature_c)
        return impedance_of(params, frequency_hz, ocv_slope_v=self.ocv_slope_v())

    # ---- defects and state edits ---------------------------------------------------------------

    def set_soc(self, soc: float) -> None:
        """Place the cell at ``soc`` with relaxed RC voltages (for lot generation and tests)."""
        self._soc = float(soc)
        self._v_arcs = [0.0] * len(self._arcs)

    def set_temperature(self, temperature_c: float) -> None:
        self._temperature_c = float(temperature_c)
        self._scale_resistances()

    def _scale_resistances(self) -> None:
        """Effective R0 and arc resistances at the present temperature (Arrhenius)."""
        p = self._params
        if p.ea_ohmic_j_per_mol == 0.0 and p.ea_kinetic_j_per_mol == 0.0:
            self._r0 = p.r0_ohm
            self._arcs_eff = list(self._arcs)
            return
        ohmic, kinetic = p.resistance_factors(self._temperature_c)
        self._r0 = p.r0_ohm * ohmic
        self._arcs_eff = [(r * kinetic, tau) for r, tau in self._arcs]

    def set_params(self, params: CellParams) -> None:
        """Replace the parameters (fault injection: heat, resistance growth), keeping the state."""
        arcs = params.arcs()
        if len(arcs) != len(self._arcs):
            self._v_arcs = [0.0] * len(arcs)
        self._params = params
        self._arcs = arcs
        self._decay_cache.clear()
        self._scale_resistances()
        self._soc_table = list(params.ocv_soc)
        self._v_table = list(params.ocv_v)

    # ---- integration ---------------------------------------------------------------------------

    def advance_to(self, t_s: float) -> None:
        """Integrate up to simulated time ``t_s``; earlier times are ignored (never backwards)."""
        remaining = t_s - self._t_s
        while remaining > 1e-12:
            dt = min(remaining, self._max_step(remaining))
            taken = self._substep(dt)
            remaining -= taken
        if t_s > self._t_s:
            self._t_s = t_s

    def _max_step(self, remaining: float) -> float:
        p = self._params
        dt = MAX_DT_PER_STEP_S
        lo, hi = self._bounds()
        net_a = max(abs(lo), abs(hi), abs(self._current_a)) + self._leak_current(self._soc)
        if net_a > 0:
            dt = min(dt, MAX_DSOC_PER_STEP * 3600.0 * p.capacity_ah / net_a)
        if self._setpoint_v is not None and lo < self._current_a < hi:
            # In CV the current decays with the time constant R_dc * C_diff (C_diff from the OCV
            # slope); a sub-step of a few percent of it keeps the taper accurate.
            c_diff = 3600.0 * p.capacity_ah / max(self._ocv_slope(self._soc), 1e-3)
            tau_cv = p.dc_resistance_ohm * c_diff
            dt = min(dt, max(0.02 * tau_cv, 4.0 * p.tau1_s, 0.05))
        # Near the runaway onset the heat feeds back on the temperature within a step: small
        # steps. A cell burnt out at the temperature cap stays there whatever the step (the
        # clamp holds it), so long spans, such as a skipped hold, need not crawl.
        if p.runaway_onset_c - 20 < self._temperature_c < MAX_TEMPERATURE_C:
            heat_w = self._heat_w(self._current_a, self._v_arcs, self._temperature_c)
            dt = min(dt, 0.5 * p.thermal_mass_j_per_k / max(heat_w, 1e-3))
        return max(dt, 1e-6)

    def _bounds(self) -> tuple[float, float]:
        if self._mode is Mode.OPEN_CIRCUIT:
            return 0.0, 0.0
        if self._mode is Mode.VOLTAGE:
            return -self._current_limit_a, self._current_limit_a
        if self._setpoint_v is None:
            return self._setpoint_a, self._setpoint_a
        return (0.0, self._setpoint_a) if self._setpoint_a >= 0 else (self._setpoint_a, 0.0)

    def _solve_current(self, dt: float) -> float:
        """Current held over the next ``dt``: the set current, or the CV current (terminal voltage
        at the set-point at the end of ``dt``) clipped to the mode's bounds."""
        lo, hi = self._bounds()
        if lo == hi or self._setpoint_v is None:
            return lo
        return min(max(self._cv_current(dt), lo), hi)

    def _cv_current(self, dt: float) -> float:
        """Unclipped current that puts the terminal voltage at the set-point after ``dt``.

        The end voltage is affine in the current except through the piecewise-linear OCV, so a
        linear solve followed by a few Newton corrections on the exact step converges."""
        assert self._setpoint_v is not None
        p = self._params
        num = self._setpoint_v - self._ocv(self._soc) - self._h
        den_arcs = self._r0
        for (r, tau), v in zip(self._arcs_eff, self._v_arcs, strict=True):
            e = math.exp(-dt / tau)
            num -= v * e
            den_arcs += r * (1.0 - e)
        scale = dt / (3600.0 * p.capacity_ah)
        current = num / (den_arcs + self._ocv_slope(self._soc) * scale)
        if dt <= 0:
            return current
        for _ in range(4):
            s = self._propagate(dt, current)
            error = self._voltage(s.soc, s.v_arcs, s.hysteresis_v, current) - self._setpoint_v
            if abs(error) < 1e-10:
                break
            current -= error / (den_arcs + self._ocv_slope(s.soc) * scale)
        return current

    def _substep(self, dt: float) -> float:
        """Advance by at most ``dt``; returns the time actually taken (shorter at a CC->CV edge)."""
        lo, hi = self._bounds()
        if lo == hi or self._setpoint_v is None:
            self._commit(self._propagate(dt, lo), lo)
            return dt
        # Still in CC at the start: if the clamp is not reached within dt this is a plain CC step;
        # if it is, run CC up to the crossing instead of starting the taper early.
        for bound, sign in ((hi, 1.0), (lo, -1.0)):
            if bound == 0.0 or abs(self._current_a - bound) > 1e-12:
                continue
            end = self._propagate(dt, bound)
            v_end = self._voltage(end.soc, end.v_arcs, end.hysteresis_v, bound)
            if (v_end - self._setpoint_v) * sign <= 0:
                self._commit(end, bound)
                return dt
            start_v = self._voltage(self._soc, self._v_arcs, self._h, bound)
            if (self._setpoint_v - start_v) * sign > CLAMP_MARGIN_V:
                dt = self._crossing_time(dt, bound)
                self._commit(self._propagate(dt, bound), bound)
                return dt
            break
        current = min(max(self._cv_current(dt), lo), hi)
        self._commit(self._propagate(dt, current), current)
        return dt

    def _crossing_time(self, dt: float, current: float) -> float:
        """Time at which CC ``current`` brings the terminal voltage to the set-point (bisection)."""
        assert self._setpoint_v is not None
        sign = 1.0 if current > 0 else -1.0
        lo_t, hi_t = 0.0, dt
        for _ in range(60):
            mid = 0.5 * (lo_t + hi_t)
            s = self._propagate(mid, current)
            v = self._voltage(s.soc, s.v_arcs, s.hysteresis_v, current)
            if (v - self._setpoint_v) * sign > 0:
                hi_t = mid
            else:
                lo_t = mid
        return max(lo_t, 1e-12)

    def _decays(self, dt: float) -> tuple[list[float], float]:
        """exp(-dt/tau) per arc and for the thermal mass; hosts poll at fixed intervals, so the
        same dt comes back again and again and is worth caching."""
        cached = self._decay_cache.get(dt)
        if cached is None:
            if len(self._decay_cache) > 256:
                self._decay_cache.clear()
            arcs = [math.exp(-dt / tau) for _r, tau in self._arcs]
            p = self._params
            thermal = math.exp(-dt / (p.thermal_resistance_k_per_w * p.thermal_mass_j_per_k))
            cached = (arcs, thermal)
            self._decay_cache[dt] = cached
        return cached

    def _propagate(self, dt: float, current: float) -> _State:
        p = self._params
        decays, thermal_decay = self._decays(dt)
        v_arcs = []
        heat_w = current * current * self._r0
        for (r, _tau), v, e in zip(self._arcs_eff, self._v_arcs, decays, strict=True):
            v_new = v * e + r * current * (1.0 - e)
            v_arcs.append(v_new)
            heat_w += v_new * v_new / r
        heat_w += self._runaway_w(self._temperature_c)
        leak_a = self._leak_current(self._soc)
        soc = self._soc + (current - leak_a) * dt / (3600.0 * p.capacity_ah)
        h = self._h
        if p.hysteresis_v > 0 and current != 0:
            target = p.hysteresis_v if current > 0 else -p.hysteresis_v
            decay = math.exp(-abs(current) * dt * p.hysteresis_rate / (3600.0 * p.capacity_ah))
            h = target + (h - target) * decay
        t_inf = p.ambient_c + heat_w * p.thermal_resistance_k_per_w
        temp = t_inf + (self._temperature_c - t_inf) * thermal_decay
        return _State(
            t_s=self._t_s + dt,
            soc=soc,
            v_arcs=v_arcs,
            temperature_c=min(temp, MAX_TEMPERATURE_C),
            hysteresis_v=h,
            charge_ah=self._charge_ah + current * dt / 3600.0,
            leak_ah=self._leak_ah + leak_a * dt / 3600.0,
        )

    def _commit(self, s: _State, current: float) -> None:
        self._t_s = s.t_s
        self._soc = s.soc
        self._v_arcs = s.v_arcs
        self._temperature_c = s.temperature_c
        self._h = s.hysteresis_v
        self._charge_ah = s.charge_ah
        self._leak_ah = s.leak_ah
        if self._params.ea_ohmic_j_per_mol or self._params.ea_kinetic_j_per_mol:
            self._scale_resistances()
        # What an ammeter shows now: for CV the current that holds the set-point at this instant.
        self._current_a = self._solve_current(0.0) if self._setpoint_v is not None else current

    def _heat_w(self, current: float, v_arcs: list[float], temperature_c: float) -> float:
        heat = current * current * self._r0
        for (r, _tau), v in zip(self._arcs_eff, v_arcs, strict=True):
            heat += v * v / r
        return heat + self._runaway_w(temperature_c)

    def _runaway_w(self, temperature_c: float) -> float:
        p = self._params
        if temperature_c <= p.runaway_onset_c:
            return 0.0
        excess = (temperature_c - p.runaway_onset_c) / RUNAWAY_SCALE_K
        return min(p.runaway_power_w * math.exp(min(excess, 50.0)), RUNAWAY_MAX_POWER_W)

    def _leak_current(self, soc: float) -> float:
        r = self._params.leak_resistance_ohm
        if math.isinf(r):
            return 0.0
        return max(self._ocv(soc), 0.0) / r

    def _voltage(self, soc: float, v_arcs: list[float], h: float, current: float) -> float:
        return self._ocv(soc) + h + current * self._r0 + sum(v_arcs)

    def _ocv(self, soc: float) -> float:
        xs, ys = self._soc_table, self._v_table
        if soc <= xs[0]:
            return max(ys[0] - EXTRAPOLATION_SLOPE_V * (xs[0] - soc), 0.0)
        if soc >= xs[-1]:
            return ys[-1] + EXTRAPOLATION_SLOPE_V * (soc - xs[-1])
        i = bisect_right(xs, soc) - 1
        x0, x1 = xs[i], xs[i + 1]
        return ys[i] + (ys[i + 1] - ys[i]) * (soc - x0) / (x1 - x0)

    def _ocv_slope(self, soc: float) -> float:
        xs, ys = self._soc_table, self._v_table
        if soc <= xs[0] or soc >= xs[-1]:
            return EXTRAPOLATION_SLOPE_V
        i = bisect_right(xs, soc) - 1
        return (ys[i + 1] - ys[i]) / (xs[i + 1] - xs[i])
