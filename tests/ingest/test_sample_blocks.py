"""Sample blocks (one poll of a channel as columns) through the storage writer.

References are independent of the writer: the rows and integrals a test computes itself
(numpy's trapezoid over the same arrays, tolerance 1e-9 relative: the same float sums in a
different order), and the per-sample path fed the same data into a second database."""

from __future__ import annotations

import math
import random
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from station.clock import ManualClock, ScaledClock
from station.config import load_preset
from station.engine import Engine
from station.events import RunStarted, Sample, SampleBlock
from station.storage import RunRecord, Storage
from tests.engine.fakes import T0, FakeConnector, bench_models, make_cell


def _run_record(run_id: str, channel_id: str) -> RunRecord:
    """A fast-triage run of CELL-1 starting at T0."""
    return RunRecord(
        run_id,
        channel_id,
        "CELL-1",
        "fast-triage",
        1,
        "abc",
        "[recipe]",
        "cabinet",
        "SN1",
        "2099-01-01",
        True,
        False,
        "tester",
        T0,
    )  # fmt: skip


def _open(path: Path) -> Storage:
    storage = Storage(path, ManualClock(T0), batch_interval_s=0.05)
    storage.add_cells([make_cell()], who="tester")
    storage.begin_run(_run_record("run-1", "ch01"))
    storage.handle_event(RunStarted("run-1", "ch01", "CELL-1", "fast-triage", T0, True))
    return storage


def _samples(n: int, seed: int) -> list[Sample]:
    rng = random.Random(seed)
    out = []
    t = T0
    for seq in range(n):
        t += rng.choice((0.5, 1.0, 2.0))
        temperature = None if rng.random() < 0.1 else rng.uniform(20, 30)
        out.append(
            Sample(
                "run-1",
                "ch01",
                seq,
                t,
                seq // 50,
                rng.uniform(3, 4.2),
                rng.uniform(-5, 5),
                temperature,
            )  # fmt: skip
        )
    return out


def _blocks(samples: list[Sample], seed: int) -> list[SampleBlock]:
    rng = random.Random(seed)
    blocks, i = [], 0
    while i < len(samples):
        size = rng.randint(1, 40)
        blocks.append(SampleBlock.of(samples[i : i + size]))
        i += size
    return blocks


def test_blocks_store_every_sample_once_with_the_right_integrals(tmp_path: Path) -> None:
    samples = _samples(2000, seed=1)
    storage = _open(tmp_path / "blocks.db")
    for block in _blocks(samples, seed=2):
        storage.handle_event(block)
    storage.flush()
    rows = storage.samples("run-1")
    progress = storage.run_progress("run-1")
    storage.close()
    assert [r[0] for r in rows] == list(range(len(samples)))
    for row, sample in zip(rows, samples, strict=True):
        assert row[1:5] == (sample.t_s, sample.step_index, sample.voltage_v, sample.current_a)
        assert row[5] == sample.temperature_c
    t = np.array([s.t_s for s in samples])
    i = np.array([s.current_a for s in samples])
    p = i * np.array([s.voltage_v for s in samples])
    assert progress is not None
    assert progress.last_seq == len(samples) - 1
    assert progress.cum_ah == pytest.approx(np.trapezoid(i, t) / 3600, rel=1e-9)
    assert progress.cum_wh == pytest.approx(np.trapezoid(p, t) / 3600, rel=1e-9)


def test_blocks_and_single_samples_store_the_same(tmp_path: Path) -> None:
    samples = _samples(500, seed=3)
    one = _open(tmp_path / "one.db")
    for sample in samples:
        one.handle_event(sample)
    one.flush()
    mixed = _open(tmp_path / "mixed.db")
    for k, block in enumerate(_blocks(samples, seed=4)):
        # Alternate the two paths: the run's progress carries across both.
        for event in block.samples() if k % 2 else [block]:
            mixed.handle_event(event)
    mixed.flush()
    assert mixed.samples("run-1") == one.samples("run-1")
    a, b = one.run_progress("run-1"), mixed.run_progress("run-1")
    assert a is not None and b is not None
    assert (a.last_seq, a.last_t_s) == (b.last_seq, b.last_t_s)
    assert math.isclose(a.cum_ah, b.cum_ah, rel_tol=1e-9)
    assert math.isclose(a.cum_wh, b.cum_wh, rel_tol=1e-9)
    one.close()
    mixed.close()


def test_block_integrals_skip_steps_back_in_time() -> None:
    # Reference: numpy over the same arrays, each interval's dt clamped at 0 (the rule of the
    # per-sample path), rel 1e-12 (the same products summed in a different order).
    t = [0.0, 1.0, 1.0, 0.5, 2.5, 4.0, 3.0, 6.0]
    v = [3.0, 3.1, 3.2, 3.3, 3.4, 3.5, 3.6, 3.7]
    i = [1.0, -2.0, 0.5, 4.0, 3.0, -1.0, 2.0, 0.25]
    block = SampleBlock.of([Sample("run-1", "ch01", k, t[k], 0, v[k], i[k]) for k in range(len(t))])
    dt_h = np.maximum(np.diff(t), 0.0) / 3600
    ia, pa = np.array(i), np.array(i) * np.array(v)
    assert block.charge_ah == pytest.approx(float(((ia[1:] + ia[:-1]) / 2) @ dt_h), rel=1e-12)
    assert block.energy_wh == pytest.approx(float(((pa[1:] + pa[:-1]) / 2) @ dt_h), rel=1e-12)
    one = SampleBlock.of([Sample("run-1", "ch01", 7, 9.0, 0, 3.0, 1.0)])
    assert (one.charge_ah, one.energy_wh) == (0.0, 0.0)


def test_interleaved_runs_in_one_batch_each_store_their_own_samples(tmp_path: Path) -> None:
    # The writer inserts a batch's rows in key order, not arrival order: every run must still get
    # exactly its samples and its own integrals (numpy reference as above, rel 1e-9).
    run_ids = ["run-1", "run-2", "run-3", "run-4"]
    commits: list[dict[str, int]] = []
    storage = Storage(
        tmp_path / "runs.db", ManualClock(T0), batch_interval_s=5.0, on_commit=commits.append
    )
    storage.add_cells([make_cell()], who="tester")
    feeds = {}
    for k, run_id in enumerate(run_ids):
        storage.begin_run(_run_record(run_id, f"ch0{k + 1}"))
        samples = [replace(s, run_id=run_id) for s in _samples(600, seed=10 + k)]
        # Run 4 sends one Sample per row, the others blocks: one batch holds both kinds.
        feeds[run_id] = [[s] for s in samples] if k == 3 else _blocks(samples, seed=20 + k)
    rounds = max(len(f) for f in feeds.values())
    for r in range(rounds):
        for run_id in run_ids:
            if r < len(feeds[run_id]):
                for event in feeds[run_id][r] if run_id == "run-4" else [feeds[run_id][r]]:
                    storage.handle_event(event)
    storage.flush()
    stored = {run_id: storage.samples(run_id) for run_id in run_ids}
    progress = {run_id: storage.run_progress(run_id) for run_id in run_ids}
    storage.close()
    assert len(commits) == 1  # one batch: the order inside it is what this test is about
    for k, run_id in enumerate(run_ids):
        samples = _samples(600, seed=10 + k)
        assert stored[run_id] == [
            (s.seq, s.t_s, s.step_index, s.voltage_v, s.current_a, s.temperature_c) for s in samples
        ]
        t = np.array([s.t_s for s in samples])
        i = np.array([s.current_a for s in samples])
        p = i * np.array([s.voltage_v for s in samples])
        got = progress[run_id]
        assert got is not None and got.last_seq == 599
        assert got.cum_ah == pytest.approx(np.trapezoid(i, t) / 3600, rel=1e-9)
        assert got.cum_wh == pytest.approx(np.trapezoid(p, t) / 3600, rel=1e-9)


def test_a_replayed_block_is_not_stored_twice(tmp_path: Path) -> None:
    samples = _samples(30, seed=5)
    storage = _open(tmp_path / "replay.db")
    storage.handle_event(SampleBlock.of(samples[:20]))
    storage.handle_event(SampleBlock.of(samples[10:30]))  # seq 10..19 again, then 20..29
    storage.handle_event(SampleBlock.of(samples[:5]))  # entirely old
    storage.flush()
    rows = storage.samples("run-1")
    with storage.reader() as conn:
        faults = [r[0] for r in conn.execute("SELECT kind FROM faults")]
    storage.close()
    assert [r[0] for r in rows] == list(range(30))
    assert [r[3] for r in rows] == [s.voltage_v for s in samples]
    assert faults == ["duplicate_sample", "duplicate_sample"]


def test_engine_hands_storage_one_block_per_poll_and_subscribers_every_sample(
    tmp_path: Path,
) -> None:
    bench = load_preset("sim-demo")
    clock = ScaledClock(t0_s=T0, w0_s=time.time(), speed=3600.0)
    storage = Storage(tmp_path / "engine.db", clock, batch_interval_s=0.05)
    engine = Engine(bench, storage, clock, connector=FakeConnector(clock, bench_models()))
    blocks: list[SampleBlock] = []
    samples: list[Sample] = []
    engine.subscribe_blocks(blocks.append)
    engine.subscribe(lambda e: samples.append(e) if isinstance(e, Sample) else None)
    try:
        engine.connect()
        storage.add_cells([make_cell("A")], who="t")
        run_id = engine.start_run("ch01", "A", "fast-triage")
        assert engine.wait_idle(timeout_s=120)
        storage.flush()
        stored = storage.samples(run_id)
    finally:
        engine.shutdown()
        storage.close()
    from_blocks = [s for b in blocks for s in b.samples()]
    assert from_blocks == samples
    assert [s.seq for s in samples] == list(range(len(samples)))
    assert [(r[0], r[1], r[3]) for r in stored] == [(s.seq, s.t_s, s.voltage_v) for s in samples]
    assert len(blocks) < len(samples)  # several samples a poll at this speed
