"""What the GUI needs from the engine and the grading core, stated as small Protocols.

The GUI is written against these shapes, not against concrete classes, so the real engine, a
simulated bench and a test double all plug in the same way. Every method here may block (it talks
to instruments or storage), so the GUI only ever calls them from a worker thread
(:class:`ui.workers.Workers`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from station.cells import Cell
from station.events import Event, Sample
from station.storage import FollowUp


class EngineLike(Protocol):
    """The engine's public API as far as the GUI uses it.

    ``subscribe`` callbacks arrive on worker threads; the GUI hands them to
    :class:`ui.bridge.EventBridge`, which re-emits them in the GUI thread.
    """

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]: ...

    def start_run(self, channel_id: str, cell_id: str, recipe: Any) -> str: ...

    def pause(self, channel_id: str) -> None: ...

    def resume(self, channel_id: str) -> None: ...

    def abort(self, channel_id: str) -> None: ...

    def stop_all(self) -> None:
        """Stop every channel and turn every output off."""
        ...


@dataclass(frozen=True)
class Reason:
    """One grading rule's verdict, shown to the technician in plain words.

    ``margin`` is how far ``value`` lies on the passing side (positive) or the failing side
    (negative) of ``threshold``, in ``unit``; ``value`` and ``margin`` are None when the figure
    is missing. ``verdict`` is pass, fail, retest or missing; ``words`` is the grading core's own
    explanation and is shown as-is when given.
    """

    rule: str
    value: float | None
    threshold: float
    unit: str
    margin: float | None
    passed: bool
    verdict: str = ""
    words: str = ""

    @property
    def verdict_text(self) -> str:
        return self.verdict or ("pass" if self.passed else "fail")

    def plain(self) -> str:
        if self.words:
            return f"{self.rule}: {self.words}"
        verdict = self.verdict_text
        shown = verdict if verdict == "pass" else verdict.upper()
        if self.value is None or self.margin is None:
            return f"{self.rule}: not measured - {shown}"
        side = "inside" if self.margin >= 0 else "outside"
        return (
            f"{self.rule}: {self.value:g} {self.unit} against limit {self.threshold:g} {self.unit}"
            f" ({abs(self.margin):g} {self.unit} {side}) - {shown}"
        )


@dataclass(frozen=True)
class GradeView:
    """A cell's grade as the GUI shows it: grade letter, bin, figures with units and reasons."""

    cell_id: str
    run_id: str
    grade: str
    bin: str
    reasons: tuple[Reason, ...] = ()
    figures: tuple[tuple[str, float, str], ...] = ()
    """(name, value, unit) for every computed figure, e.g. ("capacity", 2.91, "Ah")."""
    summary: str = ""
    """One line from the grading core, e.g. "A under second-life v1: stationary storage"."""


GradeProvider = Callable[[str], GradeView | None]
"""Given a finished run's id, compute or load its grade (blocking; called off the GUI thread)."""

HistoryLoader = Callable[[str, str], Sequence[Sample]]
"""Given (run id, channel id), read all the run's stored samples (blocking; off the GUI thread)."""


@dataclass(frozen=True)
class InstrumentInfo:
    """One configured instrument for the instruments view."""

    name: str
    address: str
    identity: str = ""
    connected: bool = False
    calibration_due: str = ""
    """ISO date the calibration expires; empty when unknown."""


@dataclass(frozen=True)
class RecipeInfo:
    """A recipe as listed in the recipes view: its steps in words and its estimated duration."""

    name: str
    steps: tuple[str, ...]
    estimated_duration_s: float | None
    """None when no cell is known yet (the estimate depends on the cell's rated values)."""
    profile: str = ""
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class GateResult:
    """The quick intake screen (OCV / 1 kHz ACIR) of a scanned cell."""

    passed: bool
    summary: str
    """Plain words, e.g. "OCV 3.620 V, ACIR 18.40 mΩ: pass"."""
    reason: str = ""
    """Why the cell was quarantined (empty when it passed)."""
    ocv_v: float | None = None
    """Open-circuit voltage (V) the screen measured, when it measured one."""
    acir_ohm: float | None = None
    """1 kHz AC internal resistance (ohm) the screen measured, when it measured one."""
    cell: Cell | None = None
    """The cell as found in (or created in) storage, with its lot and rated values."""


Screener = Callable[[str, str], GateResult]
"""Given a scanned cell ID and the channel whose fixture holds it, find or create the cell and run
the quick screen there (blocking)."""

FollowUpsLoader = Callable[[], tuple[Sequence[FollowUp], float]]
"""Read the open follow-ups, earliest due first, and the station clock's now (s) they are due
against (blocking; called off the GUI thread)."""
