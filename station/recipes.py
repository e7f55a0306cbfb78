"""Recipes as data: TOML files of steps, validated on load, with an estimated duration.

A recipe file::

    [recipe]
    name = "incoming-inspection"
    version = 1
    description = "..."
    assumed_start_soc = 0.3        # for the duration estimate only

    [limits]                       # per-test limits, derived from the cell's rated values
    voltage_margin_v = 0.05        # trip outside [V_min - margin, V_max + margin]
    current_factor = 1.1           # trip above factor x the cell's max rated current
    temperature_max_c = 55.0
    dtdt_max_c_per_min = 1.0
    capacity_factor = 1.3          # trip when one step moves more than factor x rated capacity
    step_time_factor = 1.5         # trip when a step runs longer than factor x its time limit
    run_time_max_s = 172800        # trip when the whole run exceeds this

    [[steps]]
    type = "charge_cccv"
    current = "C/2"                # a C-rate of the cell's rated capacity, or current_a = 1.5
    voltage_v = 4.2                # default: the cell's voltage_max_v
    cutoff = "C/20"                # or cutoff_a

Step types (``type``): ``rest`` (duration_s, optional dvdt_below_v_per_s), ``ocv_hold`` (a rest
whose end voltage is stored as an OCV measurement), ``charge_cc``, ``charge_cccv``, ``discharge_cc``
(``measure_capacity = true`` makes its Ah the run's measured capacity), ``pulse`` (one CC pulse),
``hppc`` (pulse sequences at SOC points, positioned with the capacity measured earlier in the run),
``charge_to_soc``, ``measure_acir``, ``measure_eis`` (frequencies_hz), ``loop`` (count + nested
steps) and ``follow_up`` (schedules a re-measurement ``after_days`` later; the due date is stored).
Common optional keys: ``label``, ``record_interval_s`` and end conditions (``end_time_s``,
``end_voltage_above_v``, ``end_voltage_below_v``, ``end_current_below_a``, ``end_capacity_ah``,
``end_dvdt_below_v_per_s``).

Recipes compile per cell, lazily, to operations (:class:`CyclerOp`, :class:`MeasureOp`,
:class:`FollowUpOp`): each top-level step is expanded when the run reaches it with the run's
:class:`RunContext` (measured capacity, estimated SOC) so SOC points use the capacity measured
earlier in the same run.
"""

from __future__ import annotations

import hashlib
import math
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from drivers.readings import CyclerStep, EndConditions, StepMode
from station.cells import Cell, check_ready_for_test

SHIPPED_RECIPES = (
    "second-life-full",
    "incoming-inspection",
    "fast-triage",
    "self-discharge-follow-up",
)
MAX_LOOP_COUNT = 1000
MAX_OPS = 20_000


class RecipeError(ValueError):
    """A recipe problem; the message names the step path/key and what is wrong."""


@dataclass(frozen=True)
class Current:
    """A current magnitude given either in amperes or as a C-rate of the rated capacity."""

    amps: float | None = None
    c_rate: float | None = None

    def resolve_a(self, capacity_ah: float) -> float:
        if self.amps is not None:
            return self.amps
        assert self.c_rate is not None
        return self.c_rate * capacity_ah

    def describe(self) -> str:
        return f"{self.amps:g} A" if self.amps is not None else f"{self.c_rate:g}C"


_C_RATE = re.compile(r"^\s*(?:C\s*/\s*(?P<div>\d+(?:\.\d+)?)|(?P<mul>\d+(?:\.\d+)?)\s*C)\s*$", re.I)


def parse_c_rate(text: str) -> float:
    """``"C/3"`` -> 0.333..., ``"0.5C"`` -> 0.5, ``"2C"`` -> 2.0."""
    match = _C_RATE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a C-rate such as 'C/3' or '0.5C'")
    divisor = float(match["div"]) if match["div"] else 1.0
    rate = float(match["mul"]) if match["mul"] else (1.0 / divisor if divisor > 0 else 0.0)
    if not math.isfinite(rate) or rate <= 0:
        raise ValueError(f"{text!r} is not a positive C-rate")
    return rate


@dataclass(frozen=True)
class Ends:
    time_s: float | None = None
    voltage_above_v: float | None = None
    voltage_below_v: float | None = None
    current_below_a: float | None = None
    capacity_ah: float | None = None
    dvdt_below_v_per_s: float | None = None


@dataclass(frozen=True)
class Rest:
    duration_s: float
    dvdt_below_v_per_s: float | None = None
    record_ocv: bool = False
    label: str = ""
    record_interval_s: float = 1.0


@dataclass(frozen=True)
class ChargeCC:
    current: Current
    voltage_v: float | None = None
    ends: Ends = Ends()
    label: str = ""
    record_interval_s: float = 1.0


@dataclass(frozen=True)
class ChargeCCCV:
    current: Current
    cutoff: Current
    voltage_v: float | None = None
    time_max_s: float | None = None
    label: str = ""
    record_interval_s: float = 1.0


@dataclass(frozen=True)
class DischargeCC:
    current: Current
    voltage_v: float | None = None
    measure_capacity: bool = False
    ends: Ends = Ends()
    label: str = ""
    record_interval_s: float = 1.0


@dataclass(frozen=True)
class Pulse:
    """One constant-current pulse; ``charge`` gives its direction."""

    current: Current
    duration_s: float
    charge: bool = False
    label: str = ""
    record_interval_s: float = 0.1


@dataclass(frozen=True)
class Hppc:
    """HPPC at SOC points (fractions): move to each point at ``soc_current``, rest, then a
    discharge pulse, a rest and a regen pulse at ``regen_ratio`` of the discharge current."""

    soc_points: tuple[float, ...]
    pulse_current: Current
    soc_current: Current
    pulse_s: float = 10.0
    between_s: float = 40.0
    regen_ratio: float = 0.75
    rest_s: float = 3600.0
    label: str = ""
    record_interval_s: float = 1.0
    pulse_record_interval_s: float = 0.1


@dataclass(frozen=True)
class ChargeToSoc:
    soc: float
    current: Current
    label: str = ""
    record_interval_s: float = 1.0


@dataclass(frozen=True)
class MeasureAcir:
    label: str = ""


@dataclass(frozen=True)
class MeasureEis:
    frequencies_hz: tuple[float, ...]
    label: str = ""


@dataclass(frozen=True)
class FollowUp:
    after_days: float
    kind: str = "self-discharge"
    label: str = ""


@dataclass(frozen=True)
class Loop:
    count: int
    steps: tuple[RecipeStep, ...]
    label: str = ""


RecipeStep = (
    Rest
    | ChargeCC
    | ChargeCCCV
    | DischargeCC
    | Pulse
    | Hppc
    | ChargeToSoc
    | MeasureAcir
    | MeasureEis
    | FollowUp
    | Loop
)


@dataclass(frozen=True)
class LimitRules:
    voltage_margin_v: float = 0.05
    current_factor: float = 1.1
    temperature_max_c: float = 55.0
    dtdt_max_c_per_min: float = 1.0
    capacity_factor: float = 1.3
    step_time_factor: float = 1.5
    run_time_max_s: float = 7 * 86400.0


@dataclass(frozen=True)
class Recipe:
    name: str
    version: int
    description: str
    steps: tuple[RecipeStep, ...]
    limits: LimitRules
    assumed_start_soc: float = 0.3
    source_text: str = ""

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(self.source_text.encode("utf-8")).hexdigest()


# --- operations the sequencer executes ------------------------------------------------------


@dataclass(frozen=True)
class CyclerOp:
    """One cycler step. ``role`` tells the sequencer how the step updates the run context."""

    step: CyclerStep
    kind: str
    role: str = ""  # "full_charge", "full_discharge", "capacity", "soc_move", "ocv"


@dataclass(frozen=True)
class MeasureOp:
    kind: str  # "acir" or "eis"
    label: str = ""
    frequencies_hz: tuple[float, ...] = ()


@dataclass(frozen=True)
class FollowUpOp:
    kind: str
    after_s: float
    label: str = ""


Op = CyclerOp | MeasureOp | FollowUpOp


@dataclass
class RunContext:
    """What a run has learned so far: measured capacity (Ah) and estimated SOC (fraction)."""

    cell: Cell
    measured_capacity_ah: float | None = None
    soc: float | None = None

    @property
    def capacity_ah(self) -> float:
        """The capacity SOC moves are based on: measured in this run if available, else rated."""
        if self.measured_capacity_ah:
            return self.measured_capacity_ah
        assert self.cell.rated_capacity_ah is not None
        return self.cell.rated_capacity_ah

    @property
    def rated_ah(self) -> float:
        assert self.cell.rated_capacity_ah is not None
        return self.cell.rated_capacity_ah

    def to_json(self) -> dict[str, Any]:
        return {"measured_capacity_ah": self.measured_capacity_ah, "soc": self.soc}

    def update(self, data: Mapping[str, Any]) -> None:
        self.measured_capacity_ah = data.get("measured_capacity_ah")
        self.soc = data.get("soc")


def _ends(ends: Ends, **overrides: float | None) -> EndConditions:
    values = {
        "time_s": ends.time_s,
        "voltage_above_v": ends.voltage_above_v,
        "voltage_below_v": ends.voltage_below_v,
        "current_below_a": ends.current_below_a,
        "capacity_ah": ends.capacity_ah,
        "dvdt_below_v_per_s": ends.dvdt_below_v_per_s,
    }
    for key, value in overrides.items():
        if value is not None and values[key] is None:
            values[key] = value
    return EndConditions(**values)


def expand_step(step: RecipeStep, ctx: RunContext) -> list[Op]:
    """The operations of one top-level recipe step for this cell and run context."""
    cell = ctx.cell
    assert cell.voltage_max_v is not None and cell.voltage_min_v is not None
    ops: list[Op] = []
    if isinstance(step, Rest):
        ops.append(
            CyclerOp(
                CyclerStep(
                    StepMode.REST,
                    end=EndConditions(
                        time_s=step.duration_s, dvdt_below_v_per_s=step.dvdt_below_v_per_s
                    ),
                    record_interval_s=step.record_interval_s,
                    label=step.label or ("OCV hold" if step.record_ocv else "rest"),
                ),
                "ocv_hold" if step.record_ocv else "rest",
                role="ocv" if step.record_ocv else "",
            )
        )
    elif isinstance(step, ChargeCC):
        v_end = step.voltage_v or cell.voltage_max_v
        ops.append(
            CyclerOp(
                CyclerStep(
                    StepMode.CC,
                    current_a=step.current.resolve_a(ctx.rated_ah),
                    voltage_v=v_end,
                    end=_ends(step.ends, voltage_above_v=v_end),
                    record_interval_s=step.record_interval_s,
                    label=step.label or f"CC charge {step.current.describe()}",
                ),
                "charge_cc",
                role="soc_move",
            )
        )
    elif isinstance(step, ChargeCCCV):
        v_end = step.voltage_v or cell.voltage_max_v
        ops.append(
            CyclerOp(
                CyclerStep(
                    StepMode.CCCV,
                    current_a=step.current.resolve_a(ctx.rated_ah),
                    voltage_v=v_end,
                    end=EndConditions(
                        current_below_a=step.cutoff.resolve_a(ctx.rated_ah),
                        time_s=step.time_max_s,
                    ),
                    record_interval_s=step.record_interval_s,
                    label=step.label or f"CCCV charge {step.current.describe()} to {v_end:g} V",
                ),
                "charge_cccv",
                role="full_charge",
            )
        )
    elif isinstance(step, DischargeCC):
        v_end = step.voltage_v or cell.voltage_min_v
        ops.append(
            CyclerOp(
                CyclerStep(
                    StepMode.CC,
                    current_a=-step.current.resolve_a(ctx.rated_ah),
                    voltage_v=v_end,
                    end=_ends(step.ends, voltage_below_v=v_end),
                    record_interval_s=step.record_interval_s,
                    label=step.label or f"CC discharge {step.current.describe()} to {v_end:g} V",
                ),
                "discharge_cc",
                role="capacity" if step.measure_capacity else "full_discharge",
            )
        )
    elif isinstance(step, Pulse):
        amps = step.current.resolve_a(ctx.rated_ah)
        ops.append(
            _pulse_op(
                amps if step.charge else -amps,
                step.duration_s,
                cell,
                step.label,
                step.record_interval_s,
            )
        )
    elif isinstance(step, Hppc):
        ops.extend(_expand_hppc(step, ctx))
    elif isinstance(step, ChargeToSoc):
        ops.extend(_move_soc(step.soc, step.current, ctx, step.label, step.record_interval_s))
    elif isinstance(step, MeasureAcir):
        ops.append(MeasureOp("acir", step.label or "ACIR 1 kHz"))
    elif isinstance(step, MeasureEis):
        ops.append(MeasureOp("eis", step.label or "EIS", step.frequencies_hz))
    elif isinstance(step, FollowUp):
        ops.append(FollowUpOp(step.kind, step.after_days * 86400.0, step.label))
    elif isinstance(step, Loop):
        for _ in range(step.count):
            for child in step.steps:
                ops.extend(expand_step(child, ctx))
    else:  # pragma: no cover - the union is closed
        raise TypeError(f"unknown step {step!r}")
    return ops


def _pulse_op(
    current_a: float, duration_s: float, cell: Cell, label: str, record_interval_s: float
) -> CyclerOp:
    assert cell.voltage_max_v is not None and cell.voltage_min_v is not None
    clamp = cell.voltage_max_v if current_a > 0 else cell.voltage_min_v
    ends = EndConditions(
        time_s=duration_s,
        voltage_above_v=clamp if current_a > 0 else None,
        voltage_below_v=clamp if current_a < 0 else None,
    )
    return CyclerOp(
        CyclerStep(
            StepMode.CC,
            current_a=current_a,
            voltage_v=clamp,
            end=ends,
            record_interval_s=record_interval_s,
            label=label or f"pulse {current_a:+.3g} A {duration_s:g} s",
        ),
        "pulse",
        role="soc_move",
    )


def _move_soc(
    target: float,
    current: Current,
    ctx: RunContext,
    label: str,
    record_interval_s: float,
    from_soc: float | None = None,
) -> list[Op]:
    """Charge or discharge by (target - soc) x capacity; SOC must be known (after a full step).

    ``from_soc`` is the planned SOC inside a multi-point step; the context itself changes only
    when an op ends, by the charge it really moved (:func:`apply_op_to_context`).
    """
    start = ctx.soc if from_soc is None else from_soc
    if start is None:
        raise RecipeError(
            f"{label or 'SOC move'}: the SOC is unknown here; put a full charge or discharge first"
        )
    assert ctx.cell.voltage_max_v is not None and ctx.cell.voltage_min_v is not None
    delta = target - start
    if abs(delta) < 1e-9:
        return []
    amps = current.resolve_a(ctx.rated_ah)
    charge = delta > 0
    clamp = ctx.cell.voltage_max_v if charge else ctx.cell.voltage_min_v
    step = CyclerStep(
        StepMode.CC,
        current_a=amps if charge else -amps,
        voltage_v=clamp,
        end=EndConditions(
            capacity_ah=abs(delta) * ctx.capacity_ah,
            voltage_above_v=clamp if charge else None,
            voltage_below_v=None if charge else clamp,
        ),
        record_interval_s=record_interval_s,
        label=label or f"to {target:.0%} SOC",
    )
    return [CyclerOp(step, "soc_move", role="soc_move")]


def _expand_hppc(step: Hppc, ctx: RunContext) -> list[Op]:
    cell = ctx.cell
    ops: list[Op] = []
    pulse_a = step.pulse_current.resolve_a(ctx.rated_ah)
    planned = ctx.soc
    for point in step.soc_points:
        ops.extend(
            _move_soc(
                point,
                step.soc_current,
                ctx,
                f"HPPC to {point:.0%} SOC",
                step.record_interval_s,
                from_soc=planned,
            )
        )
        planned = point
        rest = CyclerStep(
            StepMode.REST,
            end=EndConditions(time_s=step.rest_s),
            record_interval_s=step.record_interval_s,
            label=f"HPPC rest at {point:.0%} SOC",
        )
        ops.append(CyclerOp(rest, "rest"))
        ops.append(
            _pulse_op(
                -pulse_a,
                step.pulse_s,
                cell,
                f"HPPC discharge pulse {point:.0%}",
                step.pulse_record_interval_s,
            )
        )
        between = CyclerStep(
            StepMode.REST,
            end=EndConditions(time_s=step.between_s),
            record_interval_s=step.pulse_record_interval_s,
            label=f"HPPC pulse rest {point:.0%}",
        )
        ops.append(CyclerOp(between, "rest"))
        ops.append(
            _pulse_op(
                pulse_a * step.regen_ratio,
                step.pulse_s,
                cell,
                f"HPPC regen pulse {point:.0%}",
                step.pulse_record_interval_s,
            )
        )
        ops.append(CyclerOp(replace(between, label=f"HPPC settle {point:.0%}"), "rest"))
    return ops


def compile_recipe(recipe: Recipe, cell: Cell) -> list[Op]:
    """All operations of a run, assuming SOC moves land exactly (a preview; runs expand lazily)."""
    check_ready_for_test(cell)
    ctx = RunContext(cell)
    ops: list[Op] = []
    for step in recipe.steps:
        step_ops = expand_step(step, ctx)
        for op in step_ops:
            apply_op_to_context(op, ctx, moved_ah=None)
        ops.extend(step_ops)
    return ops


def apply_op_to_context(op: Op, ctx: RunContext, *, moved_ah: float | None) -> None:
    """Update the run context after an op ended (``moved_ah``: signed Ah the step moved)."""
    if not isinstance(op, CyclerOp):
        return
    if op.role == "full_charge":
        ctx.soc = 1.0
    elif op.role in ("full_discharge", "capacity"):
        ctx.soc = 0.0
        if op.role == "capacity" and moved_ah is not None and abs(moved_ah) > 0:
            ctx.measured_capacity_ah = abs(moved_ah)
    elif op.role == "soc_move" and ctx.soc is not None:
        if moved_ah is None and op.step.end.capacity_ah is not None:
            # A preview: assume the move lands on its planned charge.
            moved_ah = math.copysign(op.step.end.capacity_ah, op.step.current_a)
        if moved_ah is not None:
            ctx.soc = min(1.0, max(0.0, ctx.soc + moved_ah / ctx.capacity_ah))


# --- duration estimate ------------------------------------------------------------------------


def estimate_duration_s(recipe: Recipe, cell: Cell) -> float:
    """Estimated run time (s) for this cell.

    Model: a CC step moves charge at its set current until its SOC end (charge to 100 %,
    discharge to 0 %, or its capacity end), starting from ``assumed_start_soc``; a CCCV charge
    adds a CV tail of ``ln(I / I_cut) x 0.1 h x rated C`` (exponential current decay with a 0.1 C
    time constant); rests and pulses take their time; ACIR 5 s; EIS ``sum(max(0.5, 2/f) + 1/f)``;
    follow-ups add nothing (they are separate runs).
    """
    check_ready_for_test(cell)
    ctx = RunContext(cell, soc=recipe.assumed_start_soc)
    total = 0.0
    for step in recipe.steps:
        for op in expand_step(step, ctx):
            total += _op_duration_s(op, ctx)
    return total


def _op_duration_s(op: Op, ctx: RunContext) -> float:
    if isinstance(op, MeasureOp):
        if op.kind == "acir":
            return 5.0
        return sum(max(0.5, 2.0 / f) + 1.0 / f for f in op.frequencies_hz)
    if isinstance(op, FollowUpOp):
        return 0.0
    step = op.step
    end = step.end
    if step.mode is StepMode.REST:
        return end.time_s or 0.0
    amps = abs(step.current_a)
    soc = ctx.soc if ctx.soc is not None else 0.5
    if end.capacity_ah is not None:
        moved = end.capacity_ah
    elif step.current_a > 0:
        moved = (1.0 - soc) * ctx.rated_ah
    else:
        moved = soc * ctx.rated_ah
    seconds = moved / amps * 3600.0 if amps > 0 else 0.0
    if step.mode is StepMode.CCCV and end.current_below_a:
        seconds += math.log(max(amps / end.current_below_a, 1.0)) * 0.1 * 3600.0
    if end.time_s is not None:
        seconds = min(seconds, end.time_s)
    delta = moved / ctx.rated_ah if step.current_a > 0 else -moved / ctx.rated_ah
    if end.time_s is not None and amps > 0:
        delta = math.copysign(min(abs(delta), amps * end.time_s / 3600.0 / ctx.rated_ah), delta)
    ctx.soc = min(1.0, max(0.0, soc + delta))
    return seconds


# --- loading and validation -------------------------------------------------------------------

_COMMON = {"type", "label", "record_interval_s"}
_END_KEYS = {
    "end_time_s": "time_s",
    "end_voltage_above_v": "voltage_above_v",
    "end_voltage_below_v": "voltage_below_v",
    "end_current_below_a": "current_below_a",
    "end_capacity_ah": "capacity_ah",
    "end_dvdt_below_v_per_s": "dvdt_below_v_per_s",
}


class _Step:
    def __init__(self, data: Any, path: str) -> None:
        if not isinstance(data, dict):
            raise RecipeError(f"{path}: expected a table, got {data!r}")
        self.data = data
        self.path = path
        self.used = {"type"}

    def get(self, key: str) -> Any:
        self.used.add(key)
        return self.data.get(key)

    def number(
        self,
        key: str,
        *,
        required: bool = False,
        positive: bool = True,
        default: float | None = None,
    ) -> float | None:
        value = self.get(key)
        if value is None:
            if required:
                raise RecipeError(f"{self.path}.{key}: required key is missing")
            return default
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise RecipeError(f"{self.path}.{key}: expected a finite number, got {value!r}")
        if positive and value <= 0:
            raise RecipeError(f"{self.path}.{key}: must be positive, got {value!r}")
        return float(value)

    def req(self, key: str) -> float:
        value = self.number(key, required=True)
        assert value is not None
        return value

    def fraction(self, key: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise RecipeError(f"{self.path}.{key}: expected a fraction 0..1, got {value!r}")
        return float(value)

    def text(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise RecipeError(f"{self.path}.{key}: expected text, got {value!r}")
        return value

    def flag(self, key: str) -> bool:
        value = self.get(key)
        if value is None:
            return False
        if not isinstance(value, bool):
            raise RecipeError(f"{self.path}.{key}: expected true or false, got {value!r}")
        return value

    def current(self, key: str, *, required: bool = True, default: str | None = None) -> Current:
        rate = self.get(key)
        amps = self.get(f"{key}_a")
        if rate is not None and amps is not None:
            raise RecipeError(f"{self.path}: give {key} (C-rate) or {key}_a (amperes), not both")
        if amps is not None:
            value = self.number(f"{key}_a")
            return Current(amps=value)
        if rate is None:
            if default is not None:
                return Current(c_rate=parse_c_rate(default))
            if required:
                raise RecipeError(f"{self.path}.{key}: required (a C-rate like 'C/3' or {key}_a)")
        if not isinstance(rate, str):
            raise RecipeError(
                f"{self.path}.{key}: expected a C-rate string like 'C/3', got {rate!r}"
            )
        try:
            return Current(c_rate=parse_c_rate(rate))
        except ValueError as error:
            raise RecipeError(f"{self.path}.{key}: {error}") from None

    def ends(self) -> Ends:
        values = {name: self.number(key) for key, name in _END_KEYS.items()}
        return Ends(**values)

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise RecipeError(f"{self.path}: unknown key(s) {', '.join(map(repr, unknown))}")


def _common(step: _Step, default_interval: float = 1.0) -> dict[str, Any]:
    interval = step.number("record_interval_s", default=default_interval)
    return {"label": step.text("label"), "record_interval_s": interval}


def _parse_rest(s: _Step, ocv: bool) -> RecipeStep:
    return Rest(s.req("duration_s"), s.number("dvdt_below_v_per_s"), record_ocv=ocv, **_common(s))


def _parse_charge_cc(s: _Step) -> RecipeStep:
    return ChargeCC(s.current("current"), s.number("voltage_v"), s.ends(), **_common(s))


def _parse_cccv(s: _Step) -> RecipeStep:
    return ChargeCCCV(
        s.current("current"),
        s.current("cutoff", default="C/20"),
        s.number("voltage_v"),
        s.number("time_max_s"),
        **_common(s),
    )


def _parse_discharge(s: _Step) -> RecipeStep:
    return DischargeCC(
        s.current("current"),
        s.number("voltage_v"),
        s.flag("measure_capacity"),
        s.ends(),
        **_common(s),
    )


def _parse_pulse(s: _Step) -> RecipeStep:
    return Pulse(s.current("current"), s.req("duration_s"), s.flag("charge"), **_common(s, 0.1))


def _parse_hppc(s: _Step) -> RecipeStep:
    points = s.get("soc_points")
    if not isinstance(points, list) or not points:
        raise RecipeError(f"{s.path}.soc_points: expected a non-empty list of fractions")
    socs = tuple(s.fraction("soc_points", p) for p in points)
    if any(b >= a for a, b in zip(socs, socs[1:], strict=False)):
        raise RecipeError(f"{s.path}.soc_points: must decrease (HPPC walks down from full)")
    regen = s.number("regen_ratio", default=0.75)
    assert regen is not None
    common = _common(s)
    return Hppc(
        socs,
        s.current("pulse_current"),
        s.current("soc_current", default="C/3"),
        pulse_s=s.number("pulse_s", default=10.0) or 10.0,
        between_s=s.number("between_s", default=40.0) or 40.0,
        regen_ratio=regen,
        rest_s=s.number("rest_s", default=3600.0) or 3600.0,
        pulse_record_interval_s=s.number("pulse_record_interval_s", default=0.1) or 0.1,
        **common,
    )


def _parse_to_soc(s: _Step) -> RecipeStep:
    return ChargeToSoc(
        s.fraction("soc", s.get("soc")), s.current("current", default="C/3"), **_common(s)
    )


def _parse_acir(s: _Step) -> RecipeStep:
    return MeasureAcir(s.text("label"))


def _parse_eis(s: _Step) -> RecipeStep:
    freqs = s.get("frequencies_hz")
    if not isinstance(freqs, list) or not freqs:
        raise RecipeError(f"{s.path}.frequencies_hz: expected a non-empty list of frequencies")
    for f in freqs:
        if isinstance(f, bool) or not isinstance(f, int | float) or not 0.01 <= f <= 1e5:
            raise RecipeError(f"{s.path}.frequencies_hz: {f!r} is not a frequency in 0.01..1e5 Hz")
    return MeasureEis(tuple(float(f) for f in freqs), s.text("label"))


def _parse_follow_up(s: _Step) -> RecipeStep:
    kind = s.text("kind") or "self-discharge"
    return FollowUp(s.req("after_days"), kind, s.text("label"))


_PARSERS: dict[str, Callable[[_Step], RecipeStep]] = {
    "rest": lambda s: _parse_rest(s, False),
    "ocv_hold": lambda s: _parse_rest(s, True),
    "charge_cc": _parse_charge_cc,
    "charge_cccv": _parse_cccv,
    "discharge_cc": _parse_discharge,
    "pulse": _parse_pulse,
    "hppc": _parse_hppc,
    "charge_to_soc": _parse_to_soc,
    "measure_acir": _parse_acir,
    "measure_eis": _parse_eis,
    "follow_up": _parse_follow_up,
}


def _parse_steps(items: Any, path: str, depth: int = 0) -> tuple[RecipeStep, ...]:
    if not isinstance(items, list) or not items:
        raise RecipeError(f"{path}: expected a non-empty array of step tables ([[{path}]])")
    if depth > 3:
        raise RecipeError(f"{path}: loops nest deeper than 3")
    steps: list[RecipeStep] = []
    for index, item in enumerate(items, start=1):
        s = _Step(item, f"{path}[{index}]")
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "loop":
            count = s.get("count")
            if (
                isinstance(count, bool)
                or not isinstance(count, int)
                or not 1 <= count <= MAX_LOOP_COUNT
            ):
                raise RecipeError(
                    f"{s.path}.count: expected an integer 1..{MAX_LOOP_COUNT}, got {count!r}"
                )
            children = _parse_steps(s.get("steps"), f"{s.path}.steps", depth + 1)
            steps.append(Loop(count, children, s.text("label")))
        elif kind in _PARSERS:
            steps.append(_PARSERS[str(kind)](s))
        else:
            raise RecipeError(
                f"{s.path}.type: unknown step type {kind!r} (one of loop, {', '.join(_PARSERS)})"
            )
        s.done()
    return tuple(steps)


def parse_recipe(data: Mapping[str, Any], *, source_text: str = "") -> Recipe:
    unknown = sorted(set(data) - {"recipe", "limits", "steps"})
    if unknown:
        raise RecipeError(f"top level: unknown key(s) {', '.join(map(repr, unknown))}")
    head = _Step(data.get("recipe"), "recipe")
    name = head.text("name")
    if not name:
        raise RecipeError("recipe.name: required key is missing")
    version = head.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise RecipeError(f"recipe.version: expected a positive integer, got {version!r}")
    description = head.text("description")
    start_soc = head.get("assumed_start_soc")
    start = 0.3 if start_soc is None else head.fraction("assumed_start_soc", start_soc)
    head.done()
    lim = _Step(data.get("limits", {}), "limits")
    defaults = LimitRules()
    rules = LimitRules(
        voltage_margin_v=lim.number(
            "voltage_margin_v", positive=False, default=defaults.voltage_margin_v
        )
        or 0.0,
        current_factor=lim.number("current_factor", default=defaults.current_factor)
        or defaults.current_factor,
        temperature_max_c=lim.number("temperature_max_c", default=defaults.temperature_max_c)
        or defaults.temperature_max_c,
        dtdt_max_c_per_min=lim.number("dtdt_max_c_per_min", default=defaults.dtdt_max_c_per_min)
        or defaults.dtdt_max_c_per_min,
        capacity_factor=lim.number("capacity_factor", default=defaults.capacity_factor)
        or defaults.capacity_factor,
        step_time_factor=lim.number("step_time_factor", default=defaults.step_time_factor)
        or defaults.step_time_factor,
        run_time_max_s=lim.number("run_time_max_s", default=defaults.run_time_max_s)
        or defaults.run_time_max_s,
    )
    lim.done()
    if rules.voltage_margin_v < 0:
        raise RecipeError("limits.voltage_margin_v: must not be negative")
    if rules.current_factor < 1 or rules.capacity_factor < 1 or rules.step_time_factor < 1:
        raise RecipeError(
            "limits: current_factor, capacity_factor and step_time_factor must be >= 1"
        )
    steps = _parse_steps(data.get("steps"), "steps")
    recipe = Recipe(name, version, description, steps, rules, start, source_text)
    _check_op_count(recipe)
    return recipe


def _count_ops(steps: Sequence[RecipeStep]) -> int:
    total = 0
    for step in steps:
        if isinstance(step, Loop):
            total += step.count * _count_ops(step.steps)
        elif isinstance(step, Hppc):
            total += 6 * len(step.soc_points)
        else:
            total += 1
    return total


def _check_op_count(recipe: Recipe) -> None:
    count = _count_ops(recipe.steps)
    if count > MAX_OPS:
        raise RecipeError(f"steps: the recipe expands to {count} operations (max {MAX_OPS})")


def loads_recipe(text: str, *, source: str = "recipe") -> Recipe:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise RecipeError(f"{source}: malformed TOML: {error}") from error
    try:
        return parse_recipe(data, source_text=text)
    except RecipeError as error:
        raise RecipeError(f"{source}: {error}") from None


def load_recipe(path: str | Path) -> Recipe:
    path = Path(path)
    return loads_recipe(path.read_text(encoding="utf-8"), source=str(path))


def shipped_recipe(name: str) -> Recipe:
    resource = resources.files("station") / "data" / "recipes" / f"{name}.toml"
    if not resource.is_file():
        raise RecipeError(f"no shipped recipe {name!r} (shipped: {', '.join(SHIPPED_RECIPES)})")
    return loads_recipe(resource.read_text(encoding="utf-8"), source=f"recipe {name}")


def recipe_names() -> tuple[str, ...]:
    return SHIPPED_RECIPES
