"""The intake gate: a scanned cell's quick OCV / 1 kHz ACIR screen decides pass or quarantine.

Pure Python (no Qt). :func:`gate` holds the rules; :func:`make_screener` wires them to storage
(find or create the cell) and to the engine's :meth:`station.engine.Engine.measure_screen`, which
measures on the impedance meter's own worker thread. The screener blocks, so the controller runs
it in a worker.

Rules (any one sends the cell to quarantine), ../shared/reference/grading.md 3.2 and 8.1:

- the meter gave no number (no contact, over range, reversed probes): the cell cannot be judged;
- OCV below the cell's minimum voltage (rated, else the chemistry's default minimum): an
  over-discharged cell risks copper dissolution and internal shorts;
- OCV above the cell's maximum voltage by more than ``OVERVOLTAGE_MARGIN_V``: overcharged;
- ACIR above ``ACIR_LIMIT_FACTOR`` x the cell's beginning-of-life resistance when that is known
  (a resistance increase over 100 % halves the pulse power, the 8.1 gate).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Protocol

from station.cells import CHEMISTRIES, Cell
from ui.engine_api import GateResult

OVERVOLTAGE_MARGIN_V = 0.05
"""How far (V) OCV may exceed the rated maximum (meter accuracy, relaxation) before quarantine."""
ACIR_LIMIT_FACTOR = 2.0
"""ACIR above this multiple of the BOL resistance is quarantined (R_inc > 100 %)."""
SCREEN_TIMEOUT_S = 30.0
"""Wall seconds the screener waits for the meter before giving up."""


class ScreenReadingLike(Protocol):
    """What :class:`station.engine.ScreenReading` carries (ohm, V, station-clock s)."""

    @property
    def channel_id(self) -> str: ...

    @property
    def acir_ohm(self) -> float | None: ...

    @property
    def ocv_v(self) -> float | None: ...

    @property
    def t_s(self) -> float: ...

    @property
    def instrument(self) -> str: ...


MeasureScreen = Callable[[str, float], ScreenReadingLike]
"""``Engine.measure_screen``: (channel_id, timeout in wall s) -> the reading (blocks)."""


class CellStore(Protocol):
    def find_or_create_cell(self, cell_id: str, *, who: str) -> tuple[Cell, bool]: ...


def minimum_voltage_v(cell: Cell) -> float | None:
    """The cell's rated minimum voltage (V), else its chemistry's default minimum, else None."""
    if cell.voltage_min_v is not None:
        return cell.voltage_min_v
    window = CHEMISTRIES.get(cell.chemistry.upper())
    return None if window is None else window[0]


def maximum_voltage_v(cell: Cell) -> float | None:
    """The cell's rated maximum voltage (V), else its chemistry's default maximum, else None."""
    if cell.voltage_max_v is not None:
        return cell.voltage_max_v
    window = CHEMISTRIES.get(cell.chemistry.upper())
    return None if window is None else window[1]


def gate(cell: Cell, reading: ScreenReadingLike, status: str = "") -> GateResult:
    """Pass or quarantine ``cell`` on its screen ``reading``; ``status`` is the meter's status
    word, used in the reason when the reading has no number."""
    ocv, acir = reading.ocv_v, reading.acir_ohm
    if ocv is None or acir is None:
        why = f"no reading ({status or 'no number from the meter'})"
        return GateResult(False, why, reason=why, ocv_v=ocv, acir_ohm=acir)
    shown = f"OCV {ocv:.3f} V, ACIR {acir * 1000:.2f} mΩ"
    problems: list[str] = []
    v_min = minimum_voltage_v(cell)
    if v_min is not None and ocv < v_min:
        problems.append(f"OCV {ocv:.3f} V below the minimum {v_min:g} V (over-discharged)")
    v_max = maximum_voltage_v(cell)
    if v_max is not None and ocv > v_max + OVERVOLTAGE_MARGIN_V:
        problems.append(f"OCV {ocv:.3f} V above the maximum {v_max:g} V (overcharged)")
    if cell.bol_resistance_ohm is not None:
        limit = ACIR_LIMIT_FACTOR * cell.bol_resistance_ohm
        if acir > limit:
            problems.append(
                f"ACIR {acir * 1000:.2f} mΩ above {ACIR_LIMIT_FACTOR:g} x BOL"
                f" ({limit * 1000:.2f} mΩ)"
            )
    if problems:
        reason = "; ".join(problems)
        return GateResult(False, f"{shown}: {reason}", reason=reason, ocv_v=ocv, acir_ohm=acir)
    return GateResult(True, f"{shown}: pass", ocv_v=ocv, acir_ohm=acir)


def make_screener(
    storage: CellStore,
    measure: MeasureScreen,
    *,
    operator: str,
    timeout_s: float = SCREEN_TIMEOUT_S,
) -> Callable[[str, str], GateResult]:
    """A screener ``(cell_id, channel_id) -> GateResult``: finds the cell in storage (or creates
    it bare), measures it on ``channel_id``'s fixture and applies :func:`gate`. Blocks."""

    def screen(cell_id: str, channel_id: str) -> GateResult:
        cell, _created = storage.find_or_create_cell(cell_id, who=operator)
        reading = measure(channel_id, timeout_s)
        status = getattr(reading, "status", "")
        result = gate(cell, reading, str(getattr(status, "value", status)))
        return dataclasses.replace(result, cell=cell)

    return screen
