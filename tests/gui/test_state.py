"""Folding engine events into channel views (pure Python, no window)."""

from __future__ import annotations

from station.events import (
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
from ui.engine_api import GradeView, Reason
from ui.state import BenchState, ChannelState, format_duration


def started(run_id: str = "r1", channel: str = "CH01", t_s: float = 100.0) -> RunStarted:
    return RunStarted(run_id, channel, "CELL-1", "cccv", t_s)


def test_run_lifecycle_states_and_values() -> None:
    bench = BenchState(["CH01", "CH02"])
    bench.apply(started())
    bench.apply(StepStarted("r1", "CH01", 0, "charge_cc", "CC 1 A", 100.0))
    view = bench.apply(Sample("r1", "CH01", 0, 130.0, 0, 3.7, 1.0, 26.5))
    assert view.state is ChannelState.RUNNING
    assert (view.voltage_v, view.current_a, view.temperature_c) == (3.7, 1.0, 26.5)
    assert view.elapsed_s == 30.0
    view.estimated_duration_s = 3630.0
    assert view.remaining_s == 3600.0
    assert format_duration(view.remaining_s) == "1:00:00"
    assert bench.active_channels() == ["CH01"]
    assert bench.free_channels() == ["CH02"]
    bench.apply(RunEnded("r1", "CH01", RunOutcome.COMPLETED, "done", 200.0))
    assert view.state is ChannelState.DONE
    assert bench.free_channels() == ["CH01", "CH02"]


def test_trip_sets_alarm_with_reason_value_and_threshold() -> None:
    bench = BenchState()
    bench.apply(started())
    view = bench.apply(LimitTripped("r1", "CH01", "voltage_max", 4.31, 4.25, "V", 150.0))
    assert view.state is ChannelState.TRIPPED
    assert view.alarm == (
        "CH01: limit 'voltage_max' tripped at 4.31 V (limit 4.25 V); output turned off"
    )
    bench.apply(RunEnded("r1", "CH01", RunOutcome.TRIPPED, "voltage_max", 150.0))
    assert view.state is ChannelState.TRIPPED
    assert bench.alarms == [view.alarm], "the RunEnded of a trip does not raise a second alarm"


def test_ascii_units_are_shown_as_symbols() -> None:
    bench = BenchState()
    bench.apply(started())
    view = bench.apply(LimitTripped("r1", "CH01", "temperature_max", 55.2, 55.0, "degC", 150.0))
    assert view.alarm == (
        "CH01: limit 'temperature_max' tripped at 55.2 °C (limit 55 °C); output turned off"
    )


def test_fault_without_trip_and_run_ended_faulted() -> None:
    bench = BenchState()
    bench.apply(started())
    view = bench.apply(Fault("r1", "CH01", "stuck", "no reply for 3 polls", 120.0))
    assert view.state is ChannelState.FAULT
    assert view.alarm == "CH01: stuck fault - no reply for 3 polls"
    bench.apply(started("r2", t_s=300.0))
    view = bench.apply(RunEnded("r2", "CH01", RunOutcome.FAULTED, "link down", 310.0))
    assert view.alarm == "CH01: fault - link down"
    assert len(bench.alarms) == 2


def test_late_event_of_an_earlier_run_is_ignored() -> None:
    bench = BenchState()
    bench.apply(started("r1"))
    bench.apply(started("r2", t_s=500.0))
    view = bench.apply(RunEnded("r1", "CH01", RunOutcome.ABORTED, "old", 400.0))
    assert view.run_id == "r2" and view.state is ChannelState.RUNNING


def test_grade_attaches_to_the_run_and_pause_toggles() -> None:
    bench = BenchState()
    bench.apply(started())
    bench.set_paused("CH01", True)
    assert bench.channel("CH01").state is ChannelState.PAUSED
    bench.set_paused("CH01", False)
    assert bench.channel("CH01").state is ChannelState.RUNNING
    grade = GradeView(
        "CELL-1", "r1", "B", "B2", (Reason("dcir_max", 31.0, 30.0, "mΩ", -1.0, False),)
    )
    assert bench.set_grade(grade) is bench.channel("CH01")
    assert bench.set_grade(GradeView("X", "unknown-run", "A", "A1")) is None


def test_reason_in_plain_words() -> None:
    fail = Reason("dcir_max", 31.5, 30.0, "mΩ", -1.5, False)
    assert fail.plain() == "dcir_max: 31.5 mΩ against limit 30 mΩ (1.5 mΩ outside) - FAIL"


def test_duration_format() -> None:
    assert format_duration(None) == "–"
    assert format_duration(59.6) == "0:01:00"
    assert format_duration(9 * 3600 + 61) == "9:01:01"


def test_measurements_and_step_charge_go_to_the_run_log() -> None:
    bench = BenchState()
    bench.apply(started())
    bench.apply(
        MeasurementTaken(
            "r1", "CH01", 1, "acir", '{"acir_ohm": 0.0184, "freq_hz": 1000.0}', "", 110.0
        )
    )
    bench.apply(MeasurementTaken("r1", "CH01", 2, "eis", '{"points": [[1, 2]]}', "", 111.0))
    view = bench.apply(StepEnded("r1", "CH01", 0, "discharge_cc", "voltage", 120.0, -2.91234, 10.5))
    assert list(view.log)[1:] == [
        "110.0 s  acir: acir_ohm=0.0184, freq_hz=1000",
        '111.0 s  eis: {"points": [[1, 2]]}',
        "120.0 s  step 0 ended: voltage, -2.9123 Ah",
    ]
