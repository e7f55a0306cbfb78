"""Typed events the sequencer emits; storage, live views and grading consume them.

Events are immutable and carry everything a consumer needs, so a GUI can render them without
asking the engine anything back (the Qt layer re-emits them as queued signals). Times are in the
clock's seconds; values carry units in their names.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
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


def _trapezoids(
    t_s: Sequence[float], voltage_v: Sequence[float], current_a: Sequence[float]
) -> tuple[float, float]:
    """Trapezoid integrals of current (A -> Ah) and power (W -> Wh) over consecutive samples at
    ``t_s`` (s). Same rule as the per-sample path: a step back in time adds nothing."""
    # Runs per poll on the instrument threads, sharing the GIL with the storage writer: over
    # columns (no attribute reads), with the 0.5 / 3600 factor applied once and each power
    # computed once, it takes about two thirds of the time of a loop over samples (ADR 0013).
    if len(t_s) < 2:
        return 0.0, 0.0  # one poll, one sample: the usual case at 1 Hz recording
    charge = energy = 0.0
    last_t, last_i, last_p = t_s[0], current_a[0], current_a[0] * voltage_v[0]
    for t, v, i in zip(t_s, voltage_v, current_a, strict=True):
        p = i * v
        if t > last_t:
            dt = t - last_t
            charge += (i + last_i) * dt
            energy += (p + last_p) * dt
        last_t, last_i, last_p = t, i, p
    return charge * (0.5 / 3600.0), energy * (0.5 / 3600.0)


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


@dataclass(frozen=True, eq=False)
class SampleBlock:
    """Consecutive samples of one run as columns: what one poll of a channel brought.

    The engine hands storage one block per channel and poll instead of one :class:`Sample` per
    row, so the database writer inserts straight from the columns. Sample ``k`` of the block has
    ``seq = first_seq + k``; a missing temperature is ``None``. ``charge_ah`` and ``energy_wh``
    are the trapezoid integrals of current (A -> Ah) and power (W -> Wh) over the block's own
    samples (none across its first sample's gap to the previous block), computed by whoever
    builds the block so the writer thread does not loop over rows.
    """

    run_id: str
    channel_id: str
    first_seq: int
    t_s: tuple[float, ...]
    step_index: tuple[int, ...]
    voltage_v: tuple[float, ...]
    current_a: tuple[float, ...]
    temperature_c: tuple[float | None, ...]
    charge_ah: float = 0.0
    energy_wh: float = 0.0

    def __len__(self) -> int:
        return len(self.t_s)

    @classmethod
    def of(cls, samples: Sequence[Sample]) -> SampleBlock:
        """The block of ``samples`` (non-empty, one run, consecutive ``seq``)."""
        first = samples[0]
        t_s = tuple(s.t_s for s in samples)
        voltage_v = tuple(s.voltage_v for s in samples)
        current_a = tuple(s.current_a for s in samples)
        charge_ah, energy_wh = _trapezoids(t_s, voltage_v, current_a)
        return cls(
            first.run_id,
            first.channel_id,
            first.seq,
            t_s,
            tuple(s.step_index for s in samples),
            voltage_v,
            current_a,
            tuple(s.temperature_c for s in samples),
            charge_ah,
            energy_wh,
        )

    def samples(self) -> list[Sample]:
        """The block as :class:`Sample` events."""
        return [
            Sample(self.run_id, self.channel_id, self.first_seq + k, *row)
            for k, row in enumerate(
                zip(
                    self.t_s,
                    self.step_index,
                    self.voltage_v,
                    self.current_a,
                    self.temperature_c,
                    strict=True,
                )
            )
        ]
