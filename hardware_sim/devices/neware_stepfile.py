"""Read a Neware BTS 8 step file into the programme a simulated channel runs.

This is the cabinet's side of the format documented in ``drivers/neware_stepfile.py`` (the
simulator never imports the station's code, so this is a second, independent reader of that page).
Summary of what is read:

- ``config/Whole_Prt/Protect/Main``: ``Volt/Upper``, ``Volt/Lower`` (0.1 mV), ``Curr/Upper``,
  ``Curr/Lower`` (mA), ``Cap/Upper`` (mA*s); ``Protect/Aux/Temp/Upper`` (0.1 degC).
- ``config/Whole_Prt/Record/Main``: ``Time`` (ms) and ``Volt`` (0.1 mV) record settings.
- ``config/Step_Info/Step<n>`` with ``Step_ID`` and ``Step_Type`` (1 CC charge, 2 CC discharge,
  3 CV charge, 4 rest, 6 end, 7 CCCV charge, 19 CV discharge, 20 CCCV discharge) and
  ``Limit/Main`` values ``Curr`` (mA), ``Volt``, ``Stop_Volt`` (0.1 mV), ``Stop_Curr`` (mA),
  ``Time`` (ms), ``Cap`` (mA*s), ``Stop_dVdt`` (uV/s).

Steps run in ``Step_ID`` order until the End step. Unknown step types are refused with a
:class:`StepFileError` naming the step, as BTS refuses a file it cannot run.
"""

from __future__ import annotations

import enum
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path


class StepFileError(ValueError):
    """The step file is missing, not XML, or has a step the simulated cabinet cannot run."""


class SimStepKind(enum.Enum):
    REST = "rest"
    CC = "cc"
    CV = "cv"
    CCCV = "cccv"


_TYPES: dict[int, tuple[SimStepKind, int]] = {
    1: (SimStepKind.CC, +1),
    2: (SimStepKind.CC, -1),
    3: (SimStepKind.CV, +1),
    4: (SimStepKind.REST, 0),
    7: (SimStepKind.CCCV, +1),
    19: (SimStepKind.CV, -1),
    20: (SimStepKind.CCCV, -1),
}
END_TYPE = 6


@dataclass(frozen=True)
class SimStep:
    """One step as the cabinet runs it; currents signed (+ charge), SI units."""

    step_id: int
    step_type: int
    kind: SimStepKind
    direction: int
    current_a: float = 0.0
    hold_voltage_v: float | None = None
    stop_voltage_v: float | None = None
    stop_current_a: float | None = None
    time_s: float | None = None
    capacity_ah: float | None = None
    dvdt_v_per_s: float | None = None


@dataclass(frozen=True)
class SimProtection:
    voltage_upper_v: float | None = None
    voltage_lower_v: float | None = None
    current_upper_a: float | None = None
    current_lower_a: float | None = None
    capacity_upper_ah: float | None = None
    temperature_upper_c: float | None = None


@dataclass(frozen=True)
class SimProgramme:
    steps: tuple[SimStep, ...]
    protection: SimProtection
    record_interval_s: float | None
    record_delta_v: float | None
    remark: str = ""


def _number(element: ET.Element | None, where: str) -> float | None:
    if element is None:
        return None
    raw = element.get("Value")
    try:
        value = float(raw) if raw is not None else math.nan
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise StepFileError(f"{where}: Value={raw!r} is not a number")
    return value


def _scaled(parent: ET.Element | None, path: str, scale: float) -> float | None:
    if parent is None:
        return None
    value = _number(parent.find(path), path)
    return None if value is None else value * scale


_TENTH_MV = 1e-4
_MILLI = 1e-3
_MAS_TO_AH = 1e-3 / 3600.0


def _parse_step(element: ET.Element) -> SimStep:
    name = element.tag
    try:
        step_id = int(element.get("Step_ID", ""))
        step_type = int(element.get("Step_Type", ""))
    except ValueError as exc:
        raise StepFileError(f"{name}: Step_ID/Step_Type missing or not integers") from exc
    if step_type == END_TYPE:
        return SimStep(step_id, step_type, SimStepKind.REST, 0)
    if step_type not in _TYPES:
        raise StepFileError(f"{name}: Step_Type={step_type} is not supported by the simulator")
    kind, direction = _TYPES[step_type]
    main = element.find("Limit/Main")
    current = _scaled(main, "Curr", _MILLI)
    if kind is not SimStepKind.REST and (current is None or current <= 0):
        raise StepFileError(f"{name}: a {kind.value} step needs a positive Limit/Main/Curr")
    hold = _scaled(main, "Volt", _TENTH_MV)
    if kind in (SimStepKind.CV, SimStepKind.CCCV) and hold is None:
        raise StepFileError(f"{name}: a {kind.value} step needs Limit/Main/Volt")
    dvdt = _scaled(main, "Stop_dVdt", 1e-6)
    return SimStep(
        step_id=step_id,
        step_type=step_type,
        kind=kind,
        direction=direction,
        current_a=direction * (current or 0.0),
        hold_voltage_v=hold,
        stop_voltage_v=_scaled(main, "Stop_Volt", _TENTH_MV),
        stop_current_a=_scaled(main, "Stop_Curr", _MILLI),
        time_s=_scaled(main, "Time", _MILLI),
        capacity_ah=_scaled(main, "Cap", _MAS_TO_AH),
        dvdt_v_per_s=dvdt,
    )


def parse_step_file(data: bytes) -> SimProgramme:
    """Parse step-file bytes; raise :class:`StepFileError` naming the element on bad input."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise StepFileError(f"step file is not well-formed XML: {exc}") from exc
    config = root.find("config")
    if config is None or config.get("type") != "Step File":
        raise StepFileError('step file has no <config type="Step File"> element')
    info = config.find("Step_Info")
    if info is None or len(info) == 0:
        raise StepFileError("step file has no steps in <Step_Info>")
    steps = sorted((_parse_step(child) for child in info), key=lambda s: s.step_id)
    working: list[SimStep] = []
    for step in steps:
        if step.step_type == END_TYPE:
            break
        working.append(step)
    else:
        raise StepFileError("step file has no End step (Step_Type 6)")

    whole = config.find("Whole_Prt")
    prot = whole.find("Protect") if whole is not None else None
    pmain = prot.find("Main") if prot is not None else None
    current_lower = _scaled(pmain, "Curr/Lower", _MILLI)
    protection = SimProtection(
        voltage_upper_v=_scaled(pmain, "Volt/Upper", _TENTH_MV),
        voltage_lower_v=_scaled(pmain, "Volt/Lower", _TENTH_MV),
        current_upper_a=_scaled(pmain, "Curr/Upper", _MILLI),
        current_lower_a=current_lower,
        capacity_upper_ah=_scaled(pmain, "Cap/Upper", _MAS_TO_AH),
        temperature_upper_c=_scaled(prot, "Aux/Temp/Upper", 0.1),
    )
    record = whole.find("Record/Main") if whole is not None else None
    remark = config.find("Head_Info/Remark")
    return SimProgramme(
        steps=tuple(working),
        protection=protection,
        record_interval_s=_scaled(record, "Time", _MILLI),
        record_delta_v=_scaled(record, "Volt", _TENTH_MV),
        remark=(remark.get("Value", "") if remark is not None else ""),
    )


def read_step_file(path: Path) -> SimProgramme:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise StepFileError(f"cannot read step file {path}: {exc}") from exc
    return parse_step_file(data)
