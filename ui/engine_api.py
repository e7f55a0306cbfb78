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

from station.events import Event, Sample


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

    ``margin`` is how far ``value`` lies inside (positive) or outside (negative) ``threshold``,
    in ``unit``.
    """

    rule: str
    value: float
    threshold: float
    unit: str
    margin: float
    passed: bool

    def plain(self) -> str:
        verdict = "pass" if self.passed else "FAIL"
        side = "inside" if self.margin >= 0 else "outside"
        return (
            f"{self.rule}: {self.value:g} {self.unit} against limit {self.threshold:g} {self.unit}"
            f" ({abs(self.margin):g} {self.unit} {side}) - {verdict}"
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
    estimated_duration_s: float
    profile: str = ""
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class GateResult:
    """The quick intake screen (OCV / 1 kHz ACIR) of a scanned cell."""

    passed: bool
    summary: str
    """Plain words, e.g. "OCV 3.62 V, ACIR 18.4 mOhm: pass"."""


Screener = Callable[[str], GateResult]
"""Given a scanned cell ID, find or create the cell and run the quick screen (blocking)."""
