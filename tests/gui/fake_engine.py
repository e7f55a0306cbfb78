"""A test double at the EngineLike boundary: threads that emit real station.events.

It behaves like the engine as the GUI sees it: callbacks on worker threads, start/pause/abort/
stop_all that block briefly, a limit trip when a channel's temperature crosses its threshold.
The cell is a straight line (V rises ``dv_per_sample_v`` per sample at constant current), so
tests know exactly what the GUI must show.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from station.events import (
    Event,
    LimitTripped,
    RunEnded,
    RunOutcome,
    RunStarted,
    Sample,
    StepEnded,
    StepStarted,
)
from ui.engine_api import GradeView, Reason


@dataclass
class FakeRun:
    run_id: str
    channel_id: str
    cell_id: str
    stop: threading.Event = field(default_factory=threading.Event)
    finish: threading.Event = field(default_factory=threading.Event)
    running: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    samples: list[Sample] = field(default_factory=list)


class FakeEngine:
    def __init__(
        self,
        *,
        samples_per_run: int = 40,
        period_s: float = 0.01,
        dt_s: float = 1.0,
        current_a: float = 1.0,
        v0_v: float = 3.0,
        dv_per_sample_v: float = 0.01,
        t0_c: float = 25.0,
        dt_per_sample_c: float = 0.5,
        temperature_limit_c: float = 45.0,
        trip_cells: tuple[str, ...] = (),
        capacity_min_ah: float = 0.005,
        sample_fn: Callable[[str, int], tuple[float, float, float]] | None = None,
    ) -> None:
        self.samples_per_run = samples_per_run
        self.period_s = period_s
        self.dt_s = dt_s
        self.current_a = current_a
        self.v0_v = v0_v
        self.dv_per_sample_v = dv_per_sample_v
        self.t0_c = t0_c
        self.dt_per_sample_c = dt_per_sample_c
        self.temperature_limit_c = temperature_limit_c
        self.trip_cells = trip_cells
        self.sample_fn = sample_fn
        self.capacity_min_ah = capacity_min_ah
        """Optional (cell_id, k) -> (V, A, °C) replacing the straight line (screenshots)."""
        self.runs: dict[str, FakeRun] = {}
        self.outputs_on: set[str] = set()
        self.calls: list[tuple[str, str]] = []
        """(method, thread name) of every command: the GUI thread must never be the caller."""
        self.shutdown_called = False
        self._subscribers: list[Callable[[Event], None]] = []
        self._lock = threading.Lock()
        self._counter = 0

    def _record(self, name: str) -> None:
        with self._lock:
            self.calls.append((name, threading.current_thread().name))

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def _emit(self, event: Event) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            callback(event)

    def start_run(self, channel_id: str, cell_id: str, recipe: object) -> str:
        self._record("start_run")
        with self._lock:
            self._counter += 1
            run = FakeRun(f"run-{self._counter:04d}", channel_id, cell_id)
            self.runs[channel_id] = run
            self.outputs_on.add(channel_id)
        run.running.set()
        run.thread = threading.Thread(target=self._run, args=(run,), name=f"fake-{channel_id}")
        run.thread.start()
        return run.run_id

    def _run(self, run: FakeRun) -> None:
        rid, ch = run.run_id, run.channel_id
        self._emit(RunStarted(rid, ch, run.cell_id, "fake-cccv", 0.0, simulated=True))
        self._emit(StepStarted(rid, ch, 0, "charge_cc", "CC charge 1 A", 0.0))
        outcome, reason = RunOutcome.COMPLETED, "recipe finished"
        t_s = 0.0
        for k in range(self.samples_per_run):
            run.running.wait()
            if run.finish.is_set():
                break
            if run.stop.is_set():
                outcome, reason = RunOutcome.ABORTED, "stopped by operator"
                break
            t_s = k * self.dt_s
            if self.sample_fn is not None:
                voltage_v, current_a, temperature_c = self.sample_fn(run.cell_id, k)
            else:
                voltage_v = self.v0_v + self.dv_per_sample_v * k
                current_a = self.current_a
                temperature_c = self.t0_c + self.dt_per_sample_c * k
            sample = Sample(rid, ch, k, t_s, 0, voltage_v, current_a, temperature_c)
            run.samples.append(sample)
            self._emit(sample)
            if run.cell_id in self.trip_cells and temperature_c >= self.temperature_limit_c:
                self.outputs_on.discard(ch)
                self._emit(
                    LimitTripped(
                        rid,
                        ch,
                        "temperature_max",
                        temperature_c,
                        self.temperature_limit_c,
                        "°C",
                        t_s,
                    )
                )
                outcome, reason = RunOutcome.TRIPPED, "temperature_max"
                break
            run.stop.wait(self.period_s)
        self._emit(StepEnded(rid, ch, 0, "charge_cc", reason, t_s))
        self.outputs_on.discard(ch)
        self._emit(RunEnded(rid, ch, outcome, reason, t_s))

    def finish(self, channel_id: str) -> None:
        """End a run early as completed (as if its recipe had finished)."""
        run = self.runs[channel_id]
        run.finish.set()
        run.stop.set()
        if run.thread is not None:
            run.thread.join(timeout=5)

    def pause(self, channel_id: str) -> None:
        self._record("pause")
        self.runs[channel_id].running.clear()

    def resume(self, channel_id: str) -> None:
        self._record("resume")
        self.runs[channel_id].running.set()

    def abort(self, channel_id: str) -> None:
        self._record("abort")
        self._stop([self.runs[channel_id]])

    def stop_all(self) -> None:
        self._record("stop_all")
        self._stop(list(self.runs.values()))

    def _stop(self, runs: list[FakeRun]) -> None:
        for run in runs:
            run.stop.set()
            run.running.set()
        for run in runs:
            if run.thread is not None:
                run.thread.join(timeout=5)
            self.outputs_on.discard(run.channel_id)

    def shutdown(self, timeout_s: float) -> None:
        self._record("shutdown")
        self.shutdown_called = True
        self._stop(list(self.runs.values()))

    def alive_threads(self) -> list[str]:
        return [r.channel_id for r in self.runs.values() if r.thread and r.thread.is_alive()]

    def grade(self, run_id: str) -> GradeView:
        """The double's grading: capacity = integral of current (trapezoids) over the run."""
        run = next(r for r in self.runs.values() if r.run_id == run_id)
        capacity_ah = 0.0
        for before, after in zip(run.samples, run.samples[1:], strict=False):
            capacity_ah += (after.t_s - before.t_s) * (before.current_a + after.current_a) / 2
        capacity_ah = abs(capacity_ah) / 3600.0
        threshold_ah = self.capacity_min_ah
        time.sleep(0.01)  # grading takes a moment; the GUI must not wait for it
        temperatures = [s.temperature_c for s in run.samples if s.temperature_c is not None]
        t_max_c = max(temperatures)
        mean_v = sum(s.voltage_v for s in run.samples) / len(run.samples)
        reasons = (
            Reason(
                "capacity_min",
                capacity_ah,
                threshold_ah,
                "Ah",
                capacity_ah - threshold_ah,
                capacity_ah >= threshold_ah,
            ),
            Reason(
                "temperature_max",
                t_max_c,
                self.temperature_limit_c,
                "°C",
                self.temperature_limit_c - t_max_c,
                t_max_c <= self.temperature_limit_c,
            ),
        )
        passed = all(reason.passed for reason in reasons)
        return GradeView(
            cell_id=run.cell_id,
            run_id=run_id,
            grade="A" if passed else "REJECT",
            bin="A1" if passed else "Q",
            reasons=reasons,
            figures=(
                ("capacity", capacity_ah, "Ah"),
                ("max temperature", t_max_c, "°C"),
                ("mean voltage", mean_v, "V"),
                ("samples", float(len(run.samples)), ""),
            ),
        )

    def history(self, run_id: str, channel_id: str) -> list[Sample]:
        self._record("history")
        run = next(r for r in self.runs.values() if r.run_id == run_id)
        return list(run.samples)
