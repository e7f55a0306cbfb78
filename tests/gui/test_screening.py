"""The intake gate's rules (ui.screening.gate) on hand-made readings; thresholds from
../shared/reference/grading.md 3.2 (minimum voltage) and 8.1 (resistance over 2 x BOL)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from station.cells import Cell
from ui.screening import gate

CELL = Cell("CELL-0001", chemistry="NMC", voltage_min_v=2.5, voltage_max_v=4.2)


@dataclass(frozen=True)
class Reading:
    acir_ohm: float | None
    ocv_v: float | None
    channel_id: str = "ch01"
    t_s: float = 0.0
    instrument: str = "HIOKI BT3562 s/n 1"


@pytest.mark.parametrize(
    ("cell", "ocv_v", "acir_ohm", "passed", "reason"),
    [
        (CELL, 3.6, 0.020, True, ""),
        (CELL, 2.499, 0.020, False, "OCV 2.499 V below the minimum 2.5 V (over-discharged)"),
        (CELL, 2.5, 0.020, True, ""),  # the minimum itself passes
        (CELL, 4.25, 0.020, True, ""),  # 4.2 V + 0.05 V margin
        (CELL, 4.251, 0.020, False, "OCV 4.251 V above the maximum 4.2 V (overcharged)"),
        # No rated window: the chemistry's default minimum (LFP 2.0 V) applies.
        (Cell("CELL-0002", chemistry="LFP"), 1.99, 0.02, False, "below the minimum 2 V"),
        # BOL 10 mohm: 2 x 10 = 20 mohm is the limit.
        (Cell("CELL-0003", bol_resistance_ohm=0.010), 3.6, 0.020, True, ""),
        (
            Cell("CELL-0003", bol_resistance_ohm=0.010),
            3.6,
            0.0201,
            False,
            "ACIR 20.10 mΩ above 2 x BOL (20.00 mΩ)",
        ),
    ],
)
def test_gate_rules(cell: Cell, ocv_v: float, acir_ohm: float, passed: bool, reason: str) -> None:
    result = gate(cell, Reading(acir_ohm, ocv_v))
    assert result.passed is passed
    assert reason in result.reason
    assert result.ocv_v == ocv_v and result.acir_ohm == acir_ohm
    assert result.summary.startswith(f"OCV {ocv_v:.3f} V, ACIR {acir_ohm * 1000:.2f} mΩ")


def test_no_number_from_the_meter_quarantines_with_its_status() -> None:
    result = gate(CELL, Reading(None, None), "no_contact")
    assert not result.passed and result.summary == "no reading (no_contact)"
