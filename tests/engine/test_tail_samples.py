"""Rows a cycler records after a step's end condition (its tail) are stored once, never dropped.

A cabinet like the Neware keeps recording until the station starts the next step or stops the
channel, and a late reply brings several rows in one poll, so a step often ends on a row that
has later rows behind it in the same poll, and the rows recorded between the end and the next
command arrive with the next poll under the old instrument step. The reference is the channel's
own list of every row it recorded; each must be stored exactly once (a multiset comparison of
voltage, current and step time, which identify a row exactly: both sides carry the same floats).
"""

from __future__ import annotations

from collections import Counter

from drivers.readings import CyclerSample
from station.clock import ManualClock
from station.config import load_preset
from station.events import Event, Sample, StepEnded, StepStarted
from station.recipes import shipped_recipe
from station.sequencer import DirectMeters, Sequencer, derive_limits

from .conftest import T0, make_cell
from .fakes import CellModel, FakeAcirMeter, FakeChannel, FakeEisMeter

ENVELOPE = load_preset("sim-demo").envelope


class RecordingCabinet(FakeChannel):
    """Records rows until told otherwise (never ends a step by itself), logging every row."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.recorded: list[CyclerSample] = []

    def _check_end(self) -> bool:
        return False

    def _record(self) -> None:
        super()._record()
        self.recorded.append(self._pending[-1])


def key(v: float, i: float, step_time_s: float) -> tuple[float, float, float]:
    return (v, i, round(step_time_s, 9))


def test_every_recorded_row_is_stored_once_when_steps_end_mid_poll() -> None:
    clock = ManualClock(T0)
    channel = RecordingCabinet(clock, cell=CellModel())
    cell = make_cell()
    recipe = shipped_recipe("fast-triage")
    events: list[Event] = []
    seq = Sequencer(
        run_id="r",
        channel_id="ch01",
        channel=channel,
        cell=cell,
        recipe=recipe,
        limits=derive_limits(cell, recipe.limits, ENVELOPE),
        envelope=ENVELOPE,
        clock=clock,
        emit=events.append,
        # A poll every 3.5 s with rows every second or faster: several rows per poll.
        poll_period_s=3.5,
        meters=DirectMeters(FakeAcirMeter(channel, clock), FakeEisMeter(channel, clock)),
    )
    seq.run_to_end()
    assert seq.end_reason == "recipe completed"
    samples = [e for e in events if isinstance(e, Sample)]
    assert [s.seq for s in samples] == list(range(len(samples)))
    # Each step's samples in the order they were recorded.
    by_step: dict[int, list[float]] = {}
    for s in samples:
        by_step.setdefault(s.step_index, []).append(s.t_s)
    assert all(ts == sorted(ts) for ts in by_step.values())
    ends = {e.step_index: e.t_s for e in events if isinstance(e, StepEnded)}
    tails = sum(1 for s in samples if s.step_index in ends and s.t_s > ends[s.step_index] + 1e-9)
    assert tails > 0  # the case under test happened
    stored = Counter(
        key(s.voltage_v, s.current_a, s.t_s - step_start(events, s.step_index)) for s in samples
    )
    recorded = Counter(key(r.voltage_v, r.current_a, r.step_time_s) for r in channel.recorded)
    assert stored == recorded


def step_start(events: list[Event], step_index: int) -> float:
    return next(e.t_s for e in events if isinstance(e, StepStarted) and e.step_index == step_index)
