"""The bench as the GUI sees it: one view model per channel, folded from engine events.

Pure Python (no Qt) so the rules "which colour, which text, what the banner says" are tested
without a window. The GUI thread is the only writer.
"""

from __future__ import annotations

import enum
import json
from collections import deque
from dataclasses import dataclass, field

from station.events import (
    Event,
    Fault,
    LimitTripped,
    MeasurementTaken,
    RunEnded,
    RunOutcome,
    RunStarted,
    Sample,
    StepEnded,
    StepStarted,
)
from ui.engine_api import GradeView

LOG_LINES = 200
"""Run-log lines kept per channel; older lines live in storage."""


class ChannelState(enum.Enum):
    IDLE = "idle"
    RUNNING = "running"
    PAUSED = "paused"
    DONE = "done"
    STOPPED = "stopped"
    TRIPPED = "tripped"
    FAULT = "fault"


STATE_COLOURS: dict[ChannelState, tuple[str, str]] = {
    # (background, text): the state is also written on the tile in words, so colour-blind
    # technicians lose nothing; "done" is a neutral slate so the grade badge carries the colour.
    ChannelState.IDLE: ("#e6e6e6", "#202020"),
    ChannelState.RUNNING: ("#1f6fb2", "#ffffff"),
    ChannelState.PAUSED: ("#e0b000", "#202020"),
    ChannelState.DONE: ("#37474f", "#ffffff"),
    ChannelState.STOPPED: ("#757575", "#ffffff"),
    ChannelState.TRIPPED: ("#c62828", "#ffffff"),
    ChannelState.FAULT: ("#6a1b9a", "#ffffff"),
}

GRADE_COLOURS: dict[str, str] = {
    "A": "#2e7d32",
    "B": "#7cb342",
    "C": "#f9a825",
    "D": "#ef6c00",
    "REJECT": "#c62828",
    "QUARANTINE": "#6a1b9a",
    "RETEST": "#ef6c00",
}


def grade_colour(grade: str) -> str:
    return GRADE_COLOURS.get(grade.upper(), "#455a64")


UNIT_SYMBOLS = {"degC": "°C", "deg C": "°C", "ohm": "Ω", "Ohm": "Ω", "mohm": "mΩ", "mOhm": "mΩ"}
"""ASCII unit spellings in events and the symbols a technician reads."""


def unit_symbol(unit: str) -> str:
    return UNIT_SYMBOLS.get(unit, unit)


def trip_text(event: LimitTripped) -> str:
    """A trip in plain words, with its value and threshold."""
    unit = unit_symbol(event.unit)
    return (
        f"{event.channel_id}: limit '{event.limit}' tripped at {event.value:g} {unit}"
        f" (limit {event.threshold:g} {unit}); output turned off"
    )


def fault_text(event: Fault) -> str:
    return f"{event.channel_id}: {event.kind} fault - {event.message}"


def measurement_text(event: MeasurementTaken) -> str:
    """The measured values in words, e.g. ``acir_ohm=0.0184``; the raw JSON if it is not a flat
    object (the log is for people; storage keeps the original)."""
    try:
        values = json.loads(event.values_json)
    except ValueError:
        return event.values_json
    if not isinstance(values, dict):
        return event.values_json
    parts = [
        f"{key}={value:.6g}" if isinstance(value, float) else f"{key}={value}"
        for key, value in values.items()
        if not isinstance(value, list | dict)
    ]
    return ", ".join(parts) or event.values_json


@dataclass
class ChannelView:
    """Everything a channel tile and the cell detail show for one channel."""

    channel_id: str
    state: ChannelState = ChannelState.IDLE
    cell_id: str = ""
    run_id: str = ""
    recipe_name: str = ""
    step_index: int = -1
    step_label: str = ""
    voltage_v: float | None = None
    current_a: float | None = None
    temperature_c: float | None = None
    started_t_s: float | None = None
    last_t_s: float | None = None
    estimated_duration_s: float | None = None
    simulated: bool = False
    alarm: str = ""
    end_reason: str = ""
    """Why the last run ended (e.g. "refused: OCV ... outside the station envelope")."""
    grade: GradeView | None = None
    samples_seen: int = 0
    log: deque[str] = field(default_factory=lambda: deque(maxlen=LOG_LINES))

    @property
    def elapsed_s(self) -> float | None:
        if self.started_t_s is None or self.last_t_s is None:
            return None
        return max(self.last_t_s - self.started_t_s, 0.0)

    @property
    def remaining_s(self) -> float | None:
        elapsed = self.elapsed_s
        if elapsed is None or self.estimated_duration_s is None:
            return None
        return max(self.estimated_duration_s - elapsed, 0.0)


def format_duration(seconds: float | None) -> str:
    """``h:mm:ss`` for tiles; an en dash when unknown."""
    if seconds is None:
        return "–"
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


class BenchState:
    """All channels of the bench plus the active alarms, updated by :meth:`apply`."""

    def __init__(self, channel_ids: list[str] | None = None) -> None:
        self.channels: dict[str, ChannelView] = {}
        self.alarms: list[str] = []
        for channel_id in channel_ids or []:
            self.channel(channel_id)

    def channel(self, channel_id: str) -> ChannelView:
        view = self.channels.get(channel_id)
        if view is None:
            view = self.channels[channel_id] = ChannelView(channel_id)
        return view

    def channel_for_run(self, run_id: str) -> ChannelView | None:
        for view in self.channels.values():
            if view.run_id == run_id:
                return view
        return None

    def apply(self, event: Event) -> ChannelView:
        """Fold one event into its channel and return the channel it changed."""
        view = self.channel(event.channel_id)
        if isinstance(event, RunStarted):
            view.state = ChannelState.RUNNING
            view.cell_id = event.cell_id
            view.run_id = event.run_id
            view.recipe_name = event.recipe_name
            view.started_t_s = view.last_t_s = event.t_s
            view.simulated = event.simulated
            view.alarm = view.end_reason = ""
            view.grade = None
            view.samples_seen = 0
            view.step_index, view.step_label = -1, ""
            view.voltage_v = view.current_a = view.temperature_c = None
            view.log.append(f"{event.t_s:.1f} s  run {event.run_id} started: {event.recipe_name}")
            return view
        if event.run_id != view.run_id:
            # A late event of an earlier run on this channel must not overwrite the current one.
            return view
        view.last_t_s = max(view.last_t_s or event.t_s, event.t_s)
        if isinstance(event, Sample):
            view.voltage_v = event.voltage_v
            view.current_a = event.current_a
            view.temperature_c = event.temperature_c
            view.samples_seen += 1
        elif isinstance(event, StepStarted):
            view.step_index = event.step_index
            view.step_label = event.label or event.step_kind
            view.log.append(f"{event.t_s:.1f} s  step {event.step_index}: {view.step_label}")
        elif isinstance(event, StepEnded):
            moved = "" if event.capacity_ah is None else f", {event.capacity_ah:+.4f} Ah"
            view.log.append(
                f"{event.t_s:.1f} s  step {event.step_index} ended: {event.reason}{moved}"
            )
        elif isinstance(event, MeasurementTaken):
            view.log.append(f"{event.t_s:.1f} s  {event.kind}: {measurement_text(event)}")
        elif isinstance(event, LimitTripped):
            view.state = ChannelState.TRIPPED
            view.alarm = trip_text(event)
            self.alarms.append(view.alarm)
            view.log.append(f"{event.t_s:.1f} s  TRIP {view.alarm}")
        elif isinstance(event, Fault):
            view.state = ChannelState.FAULT
            view.alarm = fault_text(event)
            self.alarms.append(view.alarm)
            view.log.append(f"{event.t_s:.1f} s  FAULT {view.alarm}")
        elif isinstance(event, RunEnded):
            view.log.append(f"{event.t_s:.1f} s  run ended: {event.outcome.value} ({event.reason})")
            view.state = _END_STATES[event.outcome]
            view.end_reason = event.reason
            if event.outcome is RunOutcome.TRIPPED and not view.alarm:
                view.alarm = f"{event.channel_id}: tripped - {event.reason}"
                self.alarms.append(view.alarm)
            if event.outcome is RunOutcome.FAULTED and not view.alarm:
                view.alarm = f"{event.channel_id}: fault - {event.reason}"
                self.alarms.append(view.alarm)
        return view

    def set_paused(self, channel_id: str, paused: bool) -> None:
        view = self.channel(channel_id)
        if paused and view.state is ChannelState.RUNNING:
            view.state = ChannelState.PAUSED
        elif not paused and view.state is ChannelState.PAUSED:
            view.state = ChannelState.RUNNING

    def set_grade(self, grade: GradeView) -> ChannelView | None:
        view = self.channel_for_run(grade.run_id)
        if view is not None:
            view.grade = grade
            shown_bin = f" (bin {grade.bin})" if grade.bin and grade.bin != grade.grade else ""
            view.log.append(f"graded {grade.grade}{shown_bin}")
        return view

    def active_channels(self) -> list[str]:
        return [
            view.channel_id
            for view in self.channels.values()
            if view.state in (ChannelState.RUNNING, ChannelState.PAUSED)
        ]

    def free_channels(self) -> list[str]:
        busy = (ChannelState.RUNNING, ChannelState.PAUSED, ChannelState.TRIPPED, ChannelState.FAULT)
        return [view.channel_id for view in self.channels.values() if view.state not in busy]


_END_STATES = {
    RunOutcome.COMPLETED: ChannelState.DONE,
    RunOutcome.ABORTED: ChannelState.STOPPED,
    RunOutcome.TRIPPED: ChannelState.TRIPPED,
    RunOutcome.FAULTED: ChannelState.FAULT,
}
