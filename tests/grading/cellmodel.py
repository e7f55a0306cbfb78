"""An independent cell model for tests: OCV(SOC) + R0 + one RC pair, integrated exactly.

It shares no code with ``station.grading``. Between samples the current is held constant (zero
order), the RC voltage follows its exact exponential solution, and the charge moved is known in
closed form, so tests can compare the core's trapezoid figures against exact values.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class RcCell:
    capacity_ah: float = 2.0
    r0_ohm: float = 0.03
    r1_ohm: float = 0.02
    tau1_s: float = 20.0
    soc: float = 0.5
    ocv_points: tuple[tuple[float, ...], tuple[float, ...]] = (
        (0.0, 0.1, 0.5, 0.9, 1.0),
        (3.0, 3.45, 3.7, 4.05, 4.2),
    )
    v1_v: float = 0.0
    t: list[float] = field(default_factory=list)
    v: list[float] = field(default_factory=list)
    i: list[float] = field(default_factory=list)
    step: list[int] = field(default_factory=list)
    now_s: float = 0.0
    step_no: int = 0

    def ocv(self, soc: float) -> float:
        return float(np.interp(soc, *self.ocv_points))

    def terminal(self, current_a: float) -> float:
        return self.ocv(self.soc) + current_a * self.r0_ohm + self.v1_v

    def record(self, current_a: float) -> None:
        self.t.append(self.now_s)
        self.v.append(self.terminal(current_a))
        self.i.append(current_a)
        self.step.append(self.step_no)

    def advance(self, current_a: float, dt_s: float) -> None:
        self.soc += current_a * dt_s / 3600.0 / self.capacity_ah
        decay = np.exp(-dt_s / self.tau1_s)
        self.v1_v = self.v1_v * decay + current_a * self.r1_ohm * (1.0 - decay)
        self.now_s += dt_s

    def hold(self, current_a: float, duration_s: float, dt_s: float) -> None:
        """A constant-current step (current 0 = rest), its first sample at the step start."""
        self.step_no += 1
        n = round(duration_s / dt_s)
        for _ in range(n):
            self.record(current_a)
            self.advance(current_a, dt_s)
        self.record(current_a)

    def cc_until(self, current_a: float, v_limit: float, dt_s: float) -> None:
        self.step_no += 1
        while True:
            self.record(current_a)
            v_next = self.terminal(current_a)
            if (current_a > 0 and v_next >= v_limit) or (current_a < 0 and v_next <= v_limit):
                break
            self.advance(current_a, dt_s)

    def cv_hold(self, v_hold: float, i_cut_a: float, dt_s: float) -> None:
        """Hold the terminal voltage: solve for the current each sample, until |I| < i_cut."""
        while True:
            current = (v_hold - self.ocv(self.soc) - self.v1_v) / self.r0_ohm
            self.record(current)
            if abs(current) < i_cut_a:
                break
            self.advance(current, dt_s)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return np.array(self.t), np.array(self.v), np.array(self.i), np.array(self.step)
