"""Sequencer on the deterministic test cycler: full runs, capacity against the cell model,
protection before output, pre-start refusals, stuck/garbage faults, pause/resume/abort, crash
resume, shutdown on exceptions."""

from __future__ import annotations

import datetime as dt
import json
import math
import random
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.identity import InstrumentIdentity
from station.cells import Cell
from station.clock import ManualClock
from station.config import load_preset
from station.events import (
    Event,
    Fault,
    MeasurementTaken,
    RunEnded,
    RunOutcome,
    Sample,
    StepEnded,
    StepStarted,
)
from station.recipes import Recipe, loads_recipe, shipped_recipe
from station.sequencer import (
    DirectMeters,
    ResumePoint,
    RunLimits,
    Sequencer,
    check_limits,
    derive_limits,
    prestart_checks,
)

from .conftest import T0, make_cell
from .fakes import OCV0_V, OCV_SLOPE_V, CellModel, FakeAcirMeter, FakeChannel, FakeEisMeter, Faults

ENVELOPE = load_preset("sim-demo").envelope
POLL_S = 1.0


def build(
    recipe: Recipe,
    *,
    cell: Cell | None = None,
    model: CellModel | None = None,
    faults: Faults | None = None,
    clock: ManualClock | None = None,
    resume: ResumePoint | None = None,
    channel: FakeChannel | None = None,
    poll_s: float = POLL_S,
) -> tuple[Sequencer, FakeChannel, list[Event]]:
    clock = clock or ManualClock(T0)
    cell = cell or make_cell()
    channel = channel or FakeChannel(clock, cell=model or CellModel(), faults=faults or Faults())
    events: list[Event] = []
    seq = Sequencer(
        run_id="run-1",
        channel_id="ch01",
        channel=channel,
        cell=cell,
        recipe=recipe,
        limits=derive_limits(cell, recipe.limits, ENVELOPE),
        envelope=ENVELOPE,
        clock=clock,
        emit=events.append,
        poll_period_s=poll_s,
        meters=DirectMeters(FakeAcirMeter(channel, clock), FakeEisMeter(channel, clock)),
        resume=resume,
    )
    return seq, channel, events


def of(events: list[Event], kind: type) -> list:
    return [e for e in events if isinstance(e, kind)]


def output_starts(channel: FakeChannel) -> list[float]:
    return [t for what, t in channel.log if what.startswith("start:") and what != "start:rest"]


def test_second_life_run_measures_the_model_capacity() -> None:
    seq, channel, events = build(shipped_recipe("second-life-full"))
    assert seq.run_to_end() is RunOutcome.COMPLETED, seq.end_reason
    capacity_end = next(
        e for e in of(events, StepEnded) if e.step_kind == "discharge_cc" and e.reason != "paused"
    )
    # Analytic reference: CCCV to 4.2 V ends when (4.2 - OCV) / R < C/20 -> OCV = 4.1925 V;
    # the C/3 (1 A) discharge ends at OCV - 1 A x 0.05 ohm = 2.5 V. SOC = (OCV - 2.45) / 1.7.
    soc_full = (4.2 - 0.15 * 0.05 - OCV0_V) / OCV_SLOPE_V
    soc_empty = (2.5 + 1.0 * 0.05 - OCV0_V) / OCV_SLOPE_V
    expected_ah = (soc_full - soc_empty) * 3.0
    # Tolerance: one 1 s record interval at 1 A (0.28 mAh) on each end, plus Euler error.
    assert capacity_end.capacity_ah == pytest.approx(-expected_ah, abs=2e-3)
    assert seq.ctx.measured_capacity_ah == pytest.approx(expected_ah, abs=2e-3)
    kinds = {m.kind for m in of(events, MeasurementTaken)}
    assert {"ocv_probe", "acir", "ocv", "eis"} <= kinds
    eis = next(m for m in of(events, MeasurementTaken) if m.kind == "eis")
    assert len(json.loads(eis.values_json)["points"]) == 13
    # HPPC walked to 20 % SOC of the measured capacity, then to the 50 % storage SOC.
    assert channel.cell.soc == pytest.approx(soc_empty + 0.5 * (soc_full - soc_empty), abs=0.01)
    samples = of(events, Sample)
    assert [s.seq for s in samples] == list(range(len(samples)))
    assert all(b.t_s >= a.t_s for a, b in zip(samples, samples[1:], strict=False))
    assert not channel.output_on


def test_protection_is_armed_before_any_output() -> None:
    for name in ("second-life-full", "fast-triage", "incoming-inspection"):
        seq, channel, _ = build(shipped_recipe(name))
        seq.run_to_end()
        arm = [t for what, t in channel.log if what == "arm"]
        assert arm and output_starts(channel) and min(output_starts(channel)) >= arm[0]
        assert channel.log[0][0] == "arm"
        assert channel.protection == seq.limits.protection()


def test_looser_protection_read_back_refuses() -> None:
    seq, channel, events = build(shipped_recipe("fast-triage"), faults=Faults(protection_slack=0.1))
    assert seq.run_to_end() is RunOutcome.ABORTED
    assert "read-back is looser" in seq.end_reason
    assert output_starts(channel) == []


@pytest.mark.parametrize(
    ("model", "faults", "cause"),
    [
        (CellModel(), Faults(reversed=True), "reversed polarity"),
        (CellModel(soc=1.3), Faults(), "outside the station envelope"),
        (CellModel(soc=-0.2), Faults(), "over-discharged"),
        (CellModel(), Faults(no_temperature=True), "temperature sensor is missing"),
    ],
)
def test_probe_refusals_name_the_cause_and_never_turn_output_on(
    model: CellModel, faults: Faults, cause: str
) -> None:
    seq, channel, events = build(shipped_recipe("fast-triage"), model=model, faults=faults)
    assert seq.run_to_end() is RunOutcome.ABORTED
    assert cause in seq.end_reason and seq.end_reason.startswith("refused")
    assert output_starts(channel) == []
    assert of(events, RunEnded)[-1].reason == seq.end_reason


IDENT = InstrumentIdentity("NEWARE", "BTS", "NW-1", "8.0")
SIM_IDENT = InstrumentIdentity("NEWARE", "BTS", "SIMULATED-7", "8.0")
TODAY = dt.date(2027, 1, 15)


def checks(**overrides: object) -> list[str]:
    cell = make_cell()
    base: dict[str, object] = {
        "cell": cell,
        "limits": derive_limits(cell, shipped_recipe("fast-triage").limits, ENVELOPE),
        "envelope": ENVELOPE,
        "identity": IDENT,
        "expected_serial": "NW-1",
        "calibration_due": dt.date(2027, 6, 1),
        "today": TODAY,
        "has_temperature_sensor": True,
        "production": True,
    }
    base.update(overrides)
    return prestart_checks(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"identity": SIM_IDENT, "expected_serial": None}, "is simulated"),
        ({"expected_serial": "NW-2"}, "identity mismatch"),
        ({"calibration_due": dt.date(2027, 1, 14)}, "calibration overdue"),
        ({"calibration_due": None}, "no calibration due date"),
        ({"has_temperature_sensor": False}, "no temperature sensor"),
        ({"limits": None}, "limits are missing"),
        ({"cell": Cell("X", chemistry="NMC")}, "cell data"),
        (
            {"meters": [("acir", IDENT, None, dt.date(2026, 1, 1))]},
            "acir NW-1 calibration overdue",
        ),
    ],
)
def test_prestart_matrix_refuses_naming_each_cause(overrides: dict, needle: str) -> None:
    assert checks() == []
    causes = checks(**overrides)
    assert any(needle in c for c in causes), causes


finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False)
anything = st.one_of(finite, st.just(math.nan), st.just(math.inf), st.just(-math.inf))


@settings(max_examples=300, deadline=None)
@given(values=st.lists(anything, min_size=9, max_size=9))
def test_no_invalid_limit_set_is_accepted(values: list[float]) -> None:
    limits = RunLimits(*values)
    causes = check_limits(limits, ENVELOPE)
    valid = (
        all(math.isfinite(v) for v in values)
        and ENVELOPE.voltage_min_v <= limits.voltage_min_v < limits.voltage_max_v
        and limits.voltage_max_v <= ENVELOPE.voltage_max_v
        and 0 < limits.current_max_a <= ENVELOPE.current_max_a
        and ENVELOPE.temperature_min_c <= limits.temperature_min_c < limits.temperature_max_c
        and limits.temperature_max_c <= ENVELOPE.temperature_max_c
        and 0 < limits.dtdt_max_c_per_min <= ENVELOPE.dtdt_max_c_per_min
        and limits.step_capacity_max_ah > 0
        and limits.step_time_factor >= 1
        and limits.run_time_max_s > 0
    )
    assert (causes == []) == valid, causes


def test_stuck_instrument_faults_within_three_poll_periods() -> None:
    rng = random.Random(5)
    for _ in range(20):
        stuck_at = T0 + rng.uniform(200, 3000)
        seq, channel, events = build(
            shipped_recipe("incoming-inspection"), faults=Faults(stuck_from_t_s=stuck_at)
        )
        assert seq.run_to_end() is RunOutcome.FAULTED
        (fault,) = of(events, Fault)
        assert fault.kind == "stuck_instrument"
        last_fresh = max(s.t_s for s in of(events, Sample))
        assert seq.stop_t_s is not None
        # Detection: more than 3 watch periods without data, checked once per poll period.
        assert seq.stop_t_s - last_fresh <= 3 * POLL_S + POLL_S + 1e-6
        assert not channel.output_on


def test_garbage_reading_is_a_fault_never_a_sample() -> None:
    seq, channel, events = build(
        shipped_recipe("fast-triage"), faults=Faults(garbage_at_t_s=T0 + 70.5)
    )
    assert seq.run_to_end() is RunOutcome.FAULTED
    assert of(events, Fault)[0].kind == "garbage_reading"
    assert all(math.isfinite(s.voltage_v) for s in of(events, Sample))
    assert not channel.output_on


def test_pause_turns_output_off_and_resume_keeps_the_step_capacity() -> None:
    recipe = loads_recipe(
        '[recipe]\nname = "p"\nversion = 1\n[[steps]]\ntype = "discharge_cc"\ncurrent = "C/3"\n'
        "end_capacity_ah = 1.5\n"
    )
    seq, channel, events = build(recipe, model=CellModel(soc=0.9))
    seq.start()
    clock = seq.clock
    for _ in range(1200):
        seq.tick()
        clock.sleep(POLL_S)
    assert channel.output_on
    seq.pause()
    assert not channel.output_on
    soc_paused = channel.cell.soc
    for _ in range(600):
        assert seq.tick()
        clock.sleep(POLL_S)
    assert channel.cell.soc == soc_paused  # nothing flowed while paused
    seq.resume()
    while seq.tick():
        clock.sleep(POLL_S)
    assert seq.outcome is RunOutcome.COMPLETED
    moved = 0.9 - channel.cell.soc
    # The whole step moved 1.5 Ah across the pause (1 A: one 1 s sample = 0.28 mAh).
    assert moved * 3.0 == pytest.approx(1.5, abs=1e-3)
    ends = [e.reason for e in of(events, StepEnded) if e.step_kind == "discharge_cc"]
    assert ends == ["paused", "capacity"]


def test_abort_and_exceptions_always_end_with_output_off() -> None:
    rng = random.Random(11)
    for trial in range(60):
        seq, channel, events = build(shipped_recipe("fast-triage"))
        seq.start()
        clock = seq.clock
        when = rng.randrange(1, 250)
        original_poll = channel.poll
        count = {"n": 0}

        def poll(original=original_poll, when=when, count=count):  # type: ignore[no-untyped-def]
            count["n"] += 1
            if count["n"] == when:
                raise RuntimeError("injected")
            return original()

        if trial % 2:
            channel.poll = poll  # type: ignore[method-assign]
        for _ in range(when + 5):
            if not seq.tick():
                break
            clock.sleep(POLL_S)
        if trial % 2 == 0:
            seq.abort()
        assert not seq.active
        assert not channel.output_on
        assert channel.log[-1][0] == "stop"
        assert seq.outcome in (RunOutcome.ABORTED, RunOutcome.FAULTED, RunOutcome.COMPLETED)


def test_crash_resume_continues_at_the_checkpoint_step() -> None:
    recipe = shipped_recipe("second-life-full")
    clock = ManualClock(T0)
    seq, channel, events = build(recipe, clock=clock)
    seq.start()
    while seq.tick() and clock.now() < T0 + 30_000:
        clock.sleep(POLL_S)
    # "Crash": the committed checkpoint is the last StepStarted token and the last sample seq.
    started = of(events, StepStarted)[-1]
    last_seq = of(events, Sample)[-1].seq
    channel.stop()
    point = ResumePoint(started.resume_token, last_seq, started.step_index)
    seq2, _, events2 = build(recipe, clock=clock, resume=point, channel=channel)
    assert seq2.run_to_end() is RunOutcome.COMPLETED, seq2.end_reason
    first_real = next(e for e in of(events2, StepStarted) if e.step_kind != "probe")
    assert first_real.step_kind == started.step_kind and first_real.label == started.label
    assert first_real.resume_token == started.resume_token
    seqs = [s.seq for s in of(events2, Sample)]
    assert seqs[0] == last_seq + 1 and seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert not of(events2, type(events[0]))  # no second RunStarted on resume


def test_missing_meter_is_a_fault() -> None:
    clock = ManualClock(T0)
    channel = FakeChannel(clock)
    cell = make_cell()
    recipe = shipped_recipe("fast-triage")
    events: list[Event] = []
    seq = Sequencer(
        run_id="r",
        channel_id="c",
        channel=channel,
        cell=cell,
        recipe=recipe,
        limits=derive_limits(cell, recipe.limits, ENVELOPE),
        envelope=ENVELOPE,
        clock=clock,
        emit=events.append,
        poll_period_s=1.0,
        meters=DirectMeters(),
    )
    assert seq.run_to_end() is RunOutcome.FAULTED
    assert of(events, Fault)[0].kind == "missing_meter"


def test_limits_derive_from_cell_and_rules() -> None:
    cell = replace(make_cell(), max_discharge_current_a=6.0, max_charge_current_a=3.0)
    limits = derive_limits(cell, shipped_recipe("second-life-full").limits, ENVELOPE)
    assert limits.voltage_max_v == pytest.approx(4.25)
    assert limits.voltage_min_v == pytest.approx(2.45)
    assert limits.current_max_a == pytest.approx(6.6)
    assert limits.step_capacity_max_ah == pytest.approx(3.9)
    assert check_limits(limits, ENVELOPE) == []
