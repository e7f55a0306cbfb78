"""Turn station objects (bench config, recipes, storage) into what the GUI views show.

Each function here is cheap except the loaders, which return callables the GUI runs in workers.
"""

from __future__ import annotations

from collections.abc import Sequence

from station.cells import Cell
from station.config import BenchConfig
from station.events import Sample
from station.recipes import (
    ChargeCC,
    ChargeCCCV,
    ChargeToSoc,
    DischargeCC,
    FollowUp,
    Hppc,
    Loop,
    MeasureAcir,
    MeasureEis,
    Pulse,
    Recipe,
    RecipeStep,
    Rest,
    estimate_duration_s,
)
from station.storage import Storage
from ui.engine_api import HistoryLoader, InstrumentInfo, RecipeInfo


def instruments_from_bench(
    bench: BenchConfig, identities: dict[str, str] | None = None
) -> list[InstrumentInfo]:
    """One row per configured instrument; ``identities`` holds those already identified."""
    identities = identities or {}
    return [
        InstrumentInfo(
            name=name,
            address=instrument.address,
            identity=identities.get(name, ""),
            connected=name in identities,
            calibration_due=(
                instrument.calibration_due.isoformat() if instrument.calibration_due else ""
            ),
        )
        for name, instrument in bench.instruments.items()
    ]


def _volts(value: float | None) -> str:
    return "the cell's limit" if value is None else f"{value:g} V"


def describe_step(step: RecipeStep) -> str:
    """A recipe step in words, as a technician reads it."""
    text: str
    if isinstance(step, Rest):
        text = f"Rest {step.duration_s:g} s" + (" (record OCV)" if step.record_ocv else "")
    elif isinstance(step, ChargeCCCV):
        text = (
            f"CC-CV charge at {step.current.describe()} to {_volts(step.voltage_v)},"
            f" until current < {step.cutoff.describe()}"
        )
    elif isinstance(step, ChargeCC):
        text = f"CC charge at {step.current.describe()} to {_volts(step.voltage_v)}"
    elif isinstance(step, DischargeCC):
        text = f"CC discharge at {step.current.describe()} to {_volts(step.voltage_v)}"
        if step.measure_capacity:
            text += " (measures capacity)"
    elif isinstance(step, Pulse):
        direction = "charge" if step.charge else "discharge"
        text = f"{direction.capitalize()} pulse {step.current.describe()} for {step.duration_s:g} s"
    elif isinstance(step, Hppc):
        points = ", ".join(f"{p:.0%}" for p in step.soc_points)
        text = f"HPPC at {points} SOC, pulses {step.pulse_current.describe()}"
    elif isinstance(step, ChargeToSoc):
        text = f"Charge to {step.soc:.0%} SOC at {step.current.describe()}"
    elif isinstance(step, MeasureAcir):
        text = "Measure ACIR (1 kHz)"
    elif isinstance(step, MeasureEis):
        freqs = step.frequencies_hz
        text = f"Measure EIS, {len(freqs)} frequencies {max(freqs):g}-{min(freqs):g} Hz"
    elif isinstance(step, FollowUp):
        text = f"Follow-up {step.kind} after {step.after_days:g} days"
    elif isinstance(step, Loop):
        inner = "; ".join(describe_step(s) for s in step.steps)
        text = f"Repeat {step.count}x: {inner}"
    else:
        text = type(step).__name__
    return f"{step.label}: {text}" if step.label else text


def recipe_info(recipe: Recipe, cell: Cell | None = None, profile: str = "") -> RecipeInfo:
    """The recipe's steps in words and its estimated duration for ``cell`` (if given)."""
    return RecipeInfo(
        name=recipe.name,
        steps=tuple(describe_step(step) for step in recipe.steps),
        estimated_duration_s=None if cell is None else estimate_duration_s(recipe, cell),
        profile=profile,
        extra={"version": str(recipe.version), "description": recipe.description},
    )


def storage_history(storage: Storage) -> HistoryLoader:
    """A history loader reading a run's samples from storage (blocking; run it in a worker)."""

    def load(run_id: str, channel_id: str) -> Sequence[Sample]:
        rows = storage.samples(run_id)
        return [
            Sample(run_id, channel_id, seq, t_s, step, voltage_v, current_a, temperature_c)
            for seq, t_s, step, voltage_v, current_a, temperature_c in rows
        ]

    return load
