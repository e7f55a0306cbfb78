"""A crashed run continues its interrupted step with what is left of it, not from the start.

Sequencer on the test cycler (manual clock): the checkpoint says 240 s of a 600 s rest, or
0.6 Ah of a 1.5 Ah discharge, were done; the resumed step must do the remaining 360 s or 0.9 Ah.
References: the recipe's own numbers minus the carried part, against the times the fake channel
logged and the charge its cell model moved (independent of the sequencer's bookkeeping);
tolerance one record interval (10 s) and 1 % of the capacity (the last record before the end).
Then through the engine: the carried part is computed from the committed samples.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from station.clock import ManualClock, ScaledClock
from station.config import load_preset
from station.engine import Engine
from station.events import Event, RunEnded, RunOutcome, RunStarted, Sample, StepEnded, StepStarted
from station.recipes import RunContext, expand_step, loads_recipe
from station.sequencer import ResumePoint
from station.storage import RunRecord, Storage

from .conftest import T0, make_cell
from .fakes import CellModel, FakeConnector, bench_models
from .test_sequencer import build, of

REST = loads_recipe(
    '[recipe]\nname = "long-rest"\nversion = 1\n[[steps]]\ntype = "rest"\n'
    "duration_s = 600\nrecord_interval_s = 10\n"
)
DISCHARGE = loads_recipe(
    '[recipe]\nname = "part-discharge"\nversion = 1\n[[steps]]\ntype = "discharge_cc"\n'
    'current = "1C"\nend_capacity_ah = 1.5\nrecord_interval_s = 10\n'
)


def token_of(recipe: object) -> str:
    ctx = RunContext(make_cell())
    return json.dumps({"top": 0, "op": 0, "ctx": ctx.to_json()}, sort_keys=True)


def resumed_step(events: list[Event]) -> tuple[StepStarted, StepEnded]:
    started = next(e for e in of(events, StepStarted) if e.step_kind != "probe")
    ended = next(e for e in of(events, StepEnded) if e.step_index == started.step_index)
    return started, ended


def test_a_resumed_rest_runs_only_its_remaining_time() -> None:
    clock = ManualClock(T0)
    point = ResumePoint(token_of(REST), last_seq=24, step_index=1, elapsed_s=240.0)
    seq, channel, events = build(REST, clock=clock, resume=point)
    assert seq.run_to_end() is RunOutcome.COMPLETED
    started, ended = resumed_step(events)
    assert ended.t_s - started.t_s == pytest.approx(600.0 - 240.0, abs=10.0)
    assert [s.seq for s in of(events, Sample)][0] == 25  # seq continues after the checkpoint
    assert json.loads(started.resume_token)["done"][0] == 240.0  # kept for a second crash


def test_a_resumed_discharge_moves_only_its_remaining_capacity() -> None:
    clock = ManualClock(T0)
    model = CellModel(soc=0.9)
    point = ResumePoint(token_of(DISCHARGE), 10, 1, elapsed_s=720.0, moved_ah=-0.6)
    seq, channel, events = build(DISCHARGE, clock=clock, model=model, resume=point)
    assert seq.run_to_end() is RunOutcome.COMPLETED
    moved_by_cell = (0.9 - model.soc) * model.capacity_ah
    assert moved_by_cell == pytest.approx(1.5 - 0.6, rel=0.01)
    _, ended = resumed_step(events)
    assert ended.capacity_ah == pytest.approx(-1.5, rel=0.01)  # the whole step's charge


def test_continue_run_carries_the_committed_part_of_the_step(tmp_path: Path) -> None:
    clock = ScaledClock(t0_s=T0, w0_s=time.time(), speed=600.0)
    db = tmp_path / "crash.db"
    first = Storage(db, clock)
    first.add_cells([make_cell("A")], who="t")
    t0 = clock.now()
    first.begin_run(
        RunRecord(
            "r1",
            "ch01",
            "A",
            REST.name,
            1,
            REST.content_hash,
            REST.source_text,
            "cabinet",
            "CAB-0001",
            "2099-12-31",
            False,
            False,
            "t",
            t0,
        )  # fmt: skip
    )
    first.handle_event(RunStarted("r1", "ch01", "A", REST.name, t0))
    kind = expand_step(REST.steps[0], RunContext(make_cell()))[0].kind
    first.handle_event(StepStarted("r1", "ch01", 1, kind, "rest", t0, token_of(REST)))
    for k in range(25):  # 240 s of the 600 s rest committed, then the "crash"
        first.handle_event(Sample("r1", "ch01", k, t0 + 10.0 * k, 1, 3.6, 0.0, 25.0))
    first.close()

    storage = Storage(db, clock)
    engine = Engine(
        load_preset("sim-demo"), storage, clock, connector=FakeConnector(clock, bench_models())
    )
    events: list[Event] = []
    engine.subscribe(events.append)
    try:
        engine.connect()
        engine.resume_after_crash()
        engine.continue_run("r1")
        assert engine.wait_idle(timeout_s=60)
    finally:
        engine.shutdown()
        storage.close()
    assert of(events, RunEnded)[-1].outcome is RunOutcome.COMPLETED
    started, ended = resumed_step(events)
    assert json.loads(started.resume_token)["done"][0] == pytest.approx(240.0)
    assert ended.t_s - started.t_s == pytest.approx(360.0, abs=10.0 + 2.0)
