"""An analytic test cell: linear OCV(SOC) and a series resistance, integrated in closed form.

With ``ocv = v0 + k * soc`` and ``v = ocv + i * r`` a constant-voltage phase decays exactly as
``i(t) = i0 * exp(-t / tau)`` with ``tau = 3600 * q * r / k``, so cut-off times and capacities
have analytic answers the simulated cabinet is checked against. It implements the part of the
``hardware_sim.cell.Cell`` API the cabinet uses (current positive when charging).
"""

from __future__ import annotations

import math


class LinearCell:
    def __init__(
        self,
        *,
        capacity_ah: float = 2.0,
        v0: float = 3.0,
        k_v: float = 1.2,
        r_ohm: float = 0.05,
        soc: float = 0.1,
        temperature_c: float = 25.0,
        t_s: float = 0.0,
    ) -> None:
        self.q_ah = capacity_ah
        self.v0 = v0
        self.k_v = k_v
        self.r_ohm = r_ohm
        self.soc = soc
        self._temperature_c = temperature_c
        self.t_s = t_s
        self.charge_ah = 0.0
        self._mode = "open"
        self._set_a = 0.0
        self._target_v: float | None = None

    @property
    def tau_s(self) -> float:
        return 3600.0 * self.q_ah * self.r_ohm / self.k_v

    @property
    def ocv_v(self) -> float:
        return self.v0 + self.k_v * self.soc

    def set_open_circuit(self) -> None:
        self._mode, self._set_a, self._target_v = "open", 0.0, None

    def set_current(self, current_a: float, *, voltage_limit_v: float | None = None) -> None:
        self._mode, self._set_a, self._target_v = "cc", current_a, voltage_limit_v

    def set_voltage(self, voltage_v: float, *, current_limit_a: float) -> None:
        self._mode, self._set_a, self._target_v = "cv", abs(current_limit_a), voltage_v

    def _current(self, ocv: float) -> float:
        if self._mode == "open":
            return 0.0
        if self._target_v is None:
            return self._set_a
        free = (self._target_v - ocv) / self.r_ohm
        if self._mode == "cv":
            return max(-self._set_a, min(self._set_a, free))
        return min(self._set_a, free) if self._set_a > 0 else max(self._set_a, free)

    @property
    def current_a(self) -> float:
        return self._current(self.ocv_v)

    @property
    def terminal_voltage_v(self) -> float:
        return self.ocv_v + self.current_a * self.r_ohm

    @property
    def temperature_c(self) -> float:
        return self._temperature_c

    def set_temperature(self, temperature_c: float) -> None:
        self._temperature_c = temperature_c

    def _add_charge(self, ah: float) -> None:
        self.charge_ah += ah
        self.soc += ah / self.q_ah

    def advance_to(self, t_s: float) -> None:
        while self.t_s < t_s:
            remaining = t_s - self.t_s
            ocv = self.ocv_v
            current = self._current(ocv)
            if current == 0.0:
                self.t_s = t_s
                return
            to_switch = math.inf
            if self._target_v is not None:
                soc_switch = (self._target_v - current * self.r_ohm - self.v0) / self.k_v
                to_switch = (soc_switch - self.soc) * self.q_ah * 3600.0 / current
            if self._target_v is not None and (abs(current) < abs(self._set_a) or to_switch < 1e-9):
                # Voltage-held phase: exponential approach of the OCV to the target.
                gap = self._target_v - ocv
                new_gap = gap * math.exp(-remaining / self.tau_s)
                self._add_charge((gap - new_gap) / self.k_v * self.q_ah)
                self.t_s = t_s
                return
            dt = min(remaining, to_switch)
            self._add_charge(current * dt / 3600.0)
            self.t_s += dt
