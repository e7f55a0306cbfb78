"""Engine on the test cycler: a 16-channel bench runs the second-life recipe on a 16-cell lot at
speed 3600, each capacity checked against its cell model (slow-marked; test_sim_bench.py runs the
lot over the real simulator in CI); start refusals; controls; subscribers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from station.cells import Cell
from station.clock import ScaledClock
from station.config import load_preset
from station.engine import Engine, EngineError
from station.events import Event, RunEnded, RunOutcome, Sample
from station.sequencer import PrestartRefused
from station.storage import Storage, integrity_check

from .conftest import make_cell
from .fakes import OCV0_V, OCV_SLOPE_V, CellModel, FakeConnector, bench_models, seeded_lot

BENCH = load_preset("sim-demo")


def scaled(speed: float) -> ScaledClock:
    # Start the simulated epoch at a fixed date so calibration checks are deterministic.
    return ScaledClock(t0_s=1_800_000_000.0, w0_s=time.time(), speed=speed)


@pytest.fixture
def lot_bench(tmp_path: Path) -> Iterator[tuple[Engine, Storage, list, FakeConnector]]:
    clock = scaled(3600.0)
    lot = seeded_lot(16, seed=7)
    models = {
        chan.hw_channel: CellModel(
            capacity_ah=c.capacity_ah, soc=c.soc, resistance_ohm=c.resistance_ohm
        )
        for chan, c in zip(BENCH.channels.values(), lot, strict=True)
    }
    storage = Storage(tmp_path / "bench.db", clock)
    connector = FakeConnector(clock, models)
    engine = Engine(BENCH, storage, clock, connector=connector, operator="ci")
    yield engine, storage, lot, connector
    engine.shutdown()
    storage.close()


@pytest.mark.slow  # the same lot over the real simulator runs in CI (test_sim_bench.py)
def test_sixteen_channels_run_second_life_on_a_lot(lot_bench, tmp_path: Path) -> None:
    engine, storage, lot, connector = lot_bench
    storage.add_cells([make_cell(c.cell_id) for c in lot], who="ci")
    engine.connect()
    events: list[Event] = []
    engine.subscribe(events.append)
    runs = {}
    for i, cell in enumerate(lot):
        runs[cell.cell_id] = engine.start_run(f"ch{i + 1:02d}", cell.cell_id, "second-life-full")
    assert engine.wait_idle(timeout_s=240)
    storage.flush()
    ended = {e.run_id: e for e in events if isinstance(e, RunEnded)}
    with storage.reader() as conn:
        for cell in lot:
            run_id = runs[cell.cell_id]
            assert ended[run_id].outcome is RunOutcome.COMPLETED, ended[run_id].reason
            outcome, pk = conn.execute(
                "SELECT outcome, run_pk FROM runs WHERE run_id = ?", (run_id,)
            ).fetchone()
            assert outcome == "completed"
            seqs = [
                r[0]
                for r in conn.execute(
                    "SELECT seq FROM samples WHERE run_pk = ? ORDER BY seq", (pk,)
                )
            ]
            emitted = [e for e in events if isinstance(e, Sample) and e.run_id == run_id]
            assert seqs == list(range(len(emitted)))  # every emitted sample stored, once
            last_seq = conn.execute(
                "SELECT last_seq FROM run_progress WHERE run_pk = ?", (pk,)
            ).fetchone()[0]
            assert last_seq == len(seqs) - 1
            kinds = {
                r[0] for r in conn.execute("SELECT kind FROM measurements WHERE run_pk = ?", (pk,))
            }
            assert {"ocv_probe", "acir", "ocv", "eis"} <= kinds
            started = conn.execute(
                "SELECT count(*) FROM step_events WHERE run_pk = ? AND event = 'started'", (pk,)
            ).fetchone()[0]
            ended_steps = conn.execute(
                "SELECT count(*) FROM step_events WHERE run_pk = ? AND event = 'ended'", (pk,)
            ).fetchone()[0]
            assert started == ended_steps >= 28
            capacity = conn.execute(
                "SELECT capacity_ah FROM step_events WHERE run_pk = ? AND event = 'ended'"
                " AND step_kind = 'discharge_cc'",
                (pk,),
            ).fetchone()[0]
            # Analytic reference for this cell (see test_sequencer): the CCCV ends at C/20 of the
            # rated 3 Ah, the C/3 (1 A) discharge at 2.5 V under load; 5 s records at 1 A.
            r = cell.resistance_ohm
            soc_full = (4.2 - 0.15 * r - OCV0_V) / OCV_SLOPE_V
            soc_empty = (2.5 + 1.0 * r - OCV0_V) / OCV_SLOPE_V
            assert -capacity == pytest.approx((soc_full - soc_empty) * cell.capacity_ah, abs=3e-3)
            assert json.loads(
                conn.execute(
                    "SELECT values_json FROM measurements WHERE run_pk = ? AND kind = 'eis'", (pk,)
                ).fetchone()[0]
            )["points"]
    assert integrity_check(tmp_path / "bench.db") == "ok"
    snap = engine.snapshot()
    assert all(s.state == "completed" for s in snap.values())
    cabinet = connector.opened["cabinet"]
    assert all(not ch.output_on for ch in cabinet.channels.values())  # type: ignore[attr-defined]


def test_start_refusals_name_the_cause(tmp_path: Path) -> None:
    clock = scaled(3600.0)
    storage = Storage(tmp_path / "r.db", clock)
    engine = Engine(
        BENCH,
        storage,
        clock,
        connector=FakeConnector(clock, bench_models()),
        production=True,
    )
    try:
        with pytest.raises(EngineError, match="not connected"):
            engine.start_run("ch01", "X", "fast-triage")
        engine.connect()
        storage.add_cells([make_cell("A"), Cell("NORATED", chemistry="NMC")], who="t")
        with pytest.raises(EngineError, match="unknown channel"):
            engine.start_run("ch99", "A", "fast-triage")
        with pytest.raises(EngineError, match="not stored"):
            engine.start_run("ch01", "nope", "fast-triage")
        with pytest.raises(PrestartRefused, match="rated value"):
            engine.start_run("ch01", "NORATED", "fast-triage")
        # The fakes carry no SIMULATED marker, but production needs calibration dates that are
        # present in the preset; so production passes on identity and the run starts.
        run_id = engine.start_run("ch01", "A", "fast-triage")
        with pytest.raises(EngineError, match="busy"):
            engine.start_run("ch01", "A", "fast-triage")
        engine.abort("ch01")
        assert engine.wait_idle(timeout_s=30)
        storage.flush()
        with storage.reader() as conn:
            assert (
                conn.execute("SELECT outcome FROM runs WHERE run_id = ?", (run_id,)).fetchone()[0]
                == "aborted"
            )
    finally:
        engine.shutdown()
        storage.close()


def test_start_runs_starts_many_and_returns_each_refusal_in_place(tmp_path: Path) -> None:
    clock = scaled(3600.0)
    storage = Storage(tmp_path / "many.db", clock)
    engine = Engine(BENCH, storage, clock, connector=FakeConnector(clock, bench_models()))
    try:
        engine.connect()
        storage.add_cells([make_cell("A"), make_cell("B"), make_cell("C")], who="t")
        results = engine.start_runs(
            [
                ("ch01", "A", "fast-triage"),
                ("ch02", "nope", "fast-triage"),
                ("ch99", "B", "fast-triage"),
                ("ch03", "B", "fast-triage"),
                ("ch01", "C", "fast-triage"),
            ]
        )
        started = [r for r in results if isinstance(r, str)]
        assert [type(r) for r in results] == [str, EngineError, EngineError, str, EngineError]
        assert "not stored" in str(results[1])
        assert "unknown channel" in str(results[2])
        assert "busy" in str(results[4]), "a channel takes one run even within one batch"
        snap = engine.snapshot()
        assert {snap["ch01"].run_id, snap["ch03"].run_id} == set(started)
        engine.stop_all("test over")
        assert engine.wait_idle(timeout_s=30)
        storage.flush()
        with storage.reader() as conn:
            stored = {r[0] for r in conn.execute("SELECT run_id FROM runs")}
        assert stored == set(started)
    finally:
        engine.shutdown()
        storage.close()


def test_pause_resume_and_a_failing_subscriber(tmp_path: Path) -> None:
    clock = scaled(600.0)
    storage = Storage(tmp_path / "p.db", clock)
    connector = FakeConnector(clock, bench_models())
    engine = Engine(BENCH, storage, clock, connector=connector)
    try:
        engine.connect()
        storage.add_cells([make_cell("A")], who="t")

        def broken(event: Event) -> None:
            raise ValueError("a buggy view")

        engine.subscribe(broken)
        seen: list[Event] = []
        unsubscribe = engine.subscribe(seen.append)
        engine.start_run("ch03", "A", "fast-triage")
        engine.pause("ch03")
        assert engine.snapshot()["ch03"].state == "paused"
        channel = connector.opened["cabinet"].channel(BENCH.channels["ch03"].hw_channel)  # type: ignore[attr-defined]
        assert not channel.output_on
        engine.resume("ch03")
        assert engine.snapshot()["ch03"].state == "running"
        assert engine.wait_idle(timeout_s=60)
        unsubscribe()
        count = len(seen)
        assert isinstance(seen[-1], RunEnded) and seen[-1].outcome is RunOutcome.COMPLETED
        assert len(seen) == count
    finally:
        engine.shutdown()
        storage.close()


def test_interrupted_run_is_held_until_an_operator_decides(tmp_path: Path) -> None:
    from station.events import RunStarted, StepStarted
    from station.recipes import shipped_recipe
    from station.storage import RunRecord

    clock = scaled(600.0)
    db = tmp_path / "crash.db"
    recipe = shipped_recipe("fast-triage")
    first = Storage(db, clock)
    first.add_cells([make_cell("A"), make_cell("B")], who="t")
    for run_id, cell_id, channel in (("r-continue", "A", "ch01"), ("r-close", "B", "ch02")):
        first.begin_run(
            RunRecord(
                run_id,
                channel,
                cell_id,
                recipe.name,
                1,
                recipe.content_hash,
                recipe.source_text,
                "cabinet",
                "CAB-0001",
                "2099-12-31",
                False,
                False,
                "t",
                clock.now(),
            )
        )
        first.handle_event(RunStarted(run_id, channel, cell_id, recipe.name, clock.now()))
        token = json.dumps(
            {"ctx": {"measured_capacity_ah": None, "soc": None}, "op": 0, "top": 2}, sort_keys=True
        )
        first.handle_event(StepStarted(run_id, channel, 3, "pulse", "pulse", clock.now(), token))
        for seq in range(5):
            first.handle_event(Sample(run_id, channel, seq, clock.now() + seq, 3, 3.6, -3.0, 25.0))
    first.close()  # the "crash": no RunEnded was ever stored

    storage = Storage(db, clock)
    connector = FakeConnector(clock, bench_models())
    engine = Engine(BENCH, storage, clock, connector=connector)
    events: list[Event] = []
    engine.subscribe(events.append)
    try:
        engine.connect()
        held = engine.resume_after_crash()
        assert {p.run_id for p in held} == {"r-continue", "r-close"}
        cabinet = connector.opened["cabinet"]
        assert all(not ch.output_on for ch in cabinet.channels.values())  # type: ignore[attr-defined]
        assert engine.snapshot()["ch01"].state == "held"
        with pytest.raises(EngineError, match="continue or close it first"):
            engine.start_run("ch01", "A", "fast-triage")
        assert not [e for e in events if isinstance(e, Sample)]  # nothing restarted by itself
        engine.close_run("r-close", "cell removed from the fixture")
        engine.continue_run("r-continue")
        assert engine.wait_idle(timeout_s=60)
        storage.flush()
        ends = {e.run_id: e for e in events if isinstance(e, RunEnded)}
        assert ends["r-close"].outcome is RunOutcome.ABORTED
        assert ends["r-continue"].outcome is RunOutcome.COMPLETED, ends["r-continue"].reason
        seqs = [s[0] for s in storage.samples("r-continue")]
        assert seqs == list(range(len(seqs))) and len(seqs) > 5
        kinds = [
            e.step_kind for e in events if isinstance(e, StepStarted) and e.run_id == "r-continue"
        ]
        assert kinds[:2] == ["probe", "pulse"]  # resumed at the interrupted pulse, not the top
        with storage.reader() as conn:
            actions = [r[0] for r in conn.execute("SELECT action FROM audit ORDER BY id")]
        assert actions.count("run held") == 2 and "close run" in actions
        assert "run running" in actions
    finally:
        engine.shutdown()
        storage.close()
