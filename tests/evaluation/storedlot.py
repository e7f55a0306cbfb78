"""A stored lot with analytic records: the real :class:`Storage` fed the events a run emits.

Each cell gets a grading run (CC-CV charge, rest, 1 A C/3 discharge, rest, recharge, rest) at
constant voltages per step, an intake ACIR and OCV, the intake checklist, and a later hold run
whose two OCV records are ``hold_days`` apart. Every figure then has a closed form:

- capacity: the discharge rows at -1 A every ``DT_S``, counting the interval that ends at the
  step's first row at half weight (decision 0006: the interval k-1..k belongs to row k's step;
  the row before is a rest at 0 A), so ``Q = I * DT_S * (n - 1/2)``;
- K-value: ``(OCV1 - OCV2) / hold_days`` in mV/day.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from station.cells import Cell
from station.clock import ManualClock
from station.events import (
    MeasurementTaken,
    RunEnded,
    RunOutcome,
    RunStarted,
    Sample,
    StepEnded,
    StepStarted,
)
from station.storage import RunRecord, Storage

T0 = 1_700_000_000.0
DT_S = 10.0
RATED_AH = 3.0
BOL_OHM = 0.016
DISCHARGE_A = 1.0
CHARGE_A = 1.5
TAPER_A = 0.1  # below C/20 (0.15 A): the CV cut-off is reached
V_CHARGE = 3.9
V_DISCHARGE = 3.7
V_REST = 3.8
FACTS = {"damaged": False, "calendar_expired": False, "traceable": True}
SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True)
class Spec:
    cell_id: str
    discharge_rows: int  # rows of the C/3 discharge step
    acir_ohm: float
    k_mv_per_day: float | None = None  # None: no hold
    hold_days: float = 7.5
    ocv_v: float = 3.7

    @property
    def capacity_ah(self) -> float:
        return DISCHARGE_A * DT_S * (self.discharge_rows - 0.5) / 3600.0


def rows_for(soh: float) -> int:
    """Discharge rows that give ``soh`` of the rated capacity (to within one row)."""
    return round(soh * RATED_AH * 3600.0 / (DISCHARGE_A * DT_S) + 0.5)


class _Run:
    def __init__(self, storage: Storage, run_id: str, cell_id: str, t_s: float) -> None:
        self.storage, self.run_id, self.t_s = storage, run_id, t_s
        self.seq, self.step = 0, -1
        storage.begin_run(
            RunRecord(
                run_id=run_id,
                channel_id="ch01",
                cell_id=cell_id,
                recipe_name="analytic",
                recipe_version=1,
                recipe_hash="0" * 64,
                recipe_toml="",
                instrument="analytic",
                instrument_serial="A1",
                calibration_due=None,
                simulated=True,
                production=False,
                operator="test",
                started_t_s=t_s,
            )
        )
        storage.handle_event(RunStarted(run_id, "ch01", cell_id, "analytic", t_s, True))

    def step_rows(self, kind: str, rows: list[tuple[float, float]]) -> None:
        """One step: ``rows`` of (voltage V, current A) every DT_S."""
        if self.step >= 0:
            self.storage.handle_event(StepEnded(self.run_id, "ch01", self.step, "", "", self.t_s))
        self.step += 1
        self.storage.handle_event(StepStarted(self.run_id, "ch01", self.step, kind, kind, self.t_s))
        for voltage, current in rows:
            self.storage.handle_event(
                Sample(self.run_id, "ch01", self.seq, self.t_s, self.step, voltage, current, 25.0)
            )
            self.seq += 1
            self.t_s += DT_S

    def measure(self, kind: str, values: dict[str, float], t_s: float | None = None) -> None:
        self.storage.handle_event(
            MeasurementTaken(
                self.run_id, "ch01", max(self.step, 0), kind, json.dumps(values), "analytic",
                self.t_s if t_s is None else t_s,
            )
        )  # fmt: skip

    def end(self) -> float:
        self.storage.handle_event(StepEnded(self.run_id, "ch01", self.step, "", "", self.t_s))
        self.storage.handle_event(
            RunEnded(self.run_id, "ch01", RunOutcome.COMPLETED, "done", self.t_s)
        )
        return self.t_s


def store_lot(path: Path, specs: list[Spec], lot: str = "L1") -> dict[str, str]:
    """Store the lot; returns cell_id -> grading run ID."""
    runs: dict[str, str] = {}
    storage = Storage(path, ManualClock(T0), batch_interval_s=0.05)
    try:
        storage.add_cells(
            [
                Cell(
                    s.cell_id,
                    lot=lot,
                    chemistry="NMC",
                    rated_capacity_ah=RATED_AH,
                    voltage_min_v=2.5,
                    voltage_max_v=4.2,
                    bol_resistance_ohm=BOL_OHM,
                )
                for s in specs
            ],
            who="test",
        )
        for spec in specs:
            storage.record_intake(spec.cell_id, FACTS, who="test", why="intake")
            run_id = f"run-{spec.cell_id}"
            runs[spec.cell_id] = run_id
            run = _Run(storage, run_id, spec.cell_id, T0)
            run.step_rows("ocv_hold", [(spec.ocv_v, 0.0)] * 6)
            run.measure("acir", {"resistance_ohm": spec.acir_ohm})
            run.measure("ocv", {"voltage_v": spec.ocv_v})
            charge = [(V_CHARGE, CHARGE_A)] * 400 + [(V_CHARGE, TAPER_A)] * 5
            run.step_rows("charge_cccv", charge)
            run.step_rows("rest", [(V_REST, 0.0)] * 30)
            run.step_rows("discharge_cc", [(V_DISCHARGE, -DISCHARGE_A)] * spec.discharge_rows)
            run.step_rows("rest", [(V_REST, 0.0)] * 30)
            recharge = [(V_CHARGE, CHARGE_A)] * round(spec.discharge_rows / CHARGE_A)
            run.step_rows("charge_cccv", recharge + [(V_CHARGE, TAPER_A)] * 5)
            run.step_rows("rest", [(V_REST, 0.0)] * 200)
            ended = run.end()
            if spec.k_mv_per_day is None:
                continue
            hold = _Run(storage, f"hold-{spec.cell_id}", spec.cell_id, ended + 3600.0)
            hold.step_rows("ocv_hold", [(V_REST, 0.0)] * 3)
            hold.measure("ocv", {"voltage_v": V_REST})
            drop_v = spec.k_mv_per_day * spec.hold_days / 1000.0
            later = hold.t_s + spec.hold_days * SECONDS_PER_DAY
            hold.measure("ocv", {"voltage_v": V_REST - drop_v}, later)
            hold.t_s = later
            hold.end()
        storage.flush()
    finally:
        storage.close()
    return runs
