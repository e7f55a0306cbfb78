"""Typed events the sequencer emits; storage, live views and grading consume them.

Events are immutable and carry everything a consumer needs, so a GUI can render them without
asking the engine anything back (the Qt layer re-emits them as queued signals). Times are in the
clock's seconds; values carry units in their names.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class RunOutcome(enum.Enum):
    COMPLETED = "completed"
    ABORTED = "aborted"
    TRIPPED = "tripped"
    FAULTED = "faulted"


@dataclass(frozen=True)
class RunStarted:
    run_id: str
    channel_id: str
    cell_id: str
    recipe_name: str
    t_s: float
    simulated: bool = False


@dataclass(frozen=True)
class Sample:
    """One stored measurement point of a run; ``seq`` increases by one per sample of the run."""

    run_id: str
    channel_id: str
    seq: int
    t_s: float
    step_index: int
    voltage_v: float
    current_a: float
    temperature_c: float | None = None


@dataclass(frozen=True)
class StepStarted:
    run_id: str
    channel_id: str
    step_index: int
    step_kind: str
    label: str
    t_s: float
    # Opaque JSON the sequencer needs to resume this step after a crash (stored with progress).
    resume_token: str = ""


@dataclass(frozen=True)
class StepEnded:
    run_id: str
    channel_id: str
    step_index: int
    step_kind: str
    reason: str
    t_s: float
    capacity_ah: float | None = None  # signed Ah the step moved (positive = charge)
    energy_wh: float | None = None


@dataclass(frozen=True)
class LimitTripped:
    """A safety limit tripped: the output was turned off and the channel stopped safely."""

    run_id: str
    channel_id: str
    limit: str
    value: float
    threshold: float
    unit: str
    t_s: float


@dataclass(frozen=True)
class Fault:
    """An instrument or link problem (stuck instrument, link down, protocol error)."""

    run_id: str
    channel_id: str
    kind: str
    message: str
    t_s: float


@dataclass(frozen=True)
class MeasurementTaken:
    """A non-sample result of a run: ACIR, EIS sweep, OCV, or a scheduled follow-up.

    ``values_json`` is a JSON object (kept as text so the event stays immutable and hashable);
    ``instrument`` is the measuring instrument's identity (``make model serial firmware``).
    """

    run_id: str
    channel_id: str
    step_index: int
    kind: str
    values_json: str
    instrument: str
    t_s: float


@dataclass(frozen=True)
class RunEnded:
    run_id: str
    channel_id: str
    outcome: RunOutcome
    reason: str
    t_s: float


Event = (
    RunStarted
    | Sample
    | StepStarted
    | StepEnded
    | LimitTripped
    | Fault
    | MeasurementTaken
    | RunEnded
)
