"""S1: seeded limit trips. Each trial injects a fault whose crossing time is known analytically
from the fault parameters (not from the station's samples); the output must be commanded off
within one poll period + 200 ms of clock time after the crossing, and the trip recorded with its
limit, value and threshold. The bound holds because records come every poll/5 (<= 200 ms) and
the sequencer checks every sample of a poll before doing anything else."""

from __future__ import annotations

import random

import pytest

from station.clock import ManualClock
from station.events import LimitTripped, RunEnded, RunOutcome
from station.recipes import loads_recipe

from .conftest import T0, make_cell
from .fakes import CellModel, FakeChannel, Faults, ocv_v
from .test_sequencer import ENVELOPE, build, of

KINDS = ("voltage_max", "temperature_max", "current_max", "step_capacity")


def recipe_for(kind: str, poll_s: float):  # type: ignore[no-untyped-def]
    record = poll_s / 5
    if kind in ("voltage_max", "temperature_max"):
        body = f'type = "rest"\nduration_s = 20000\nrecord_interval_s = {record}\n'
    else:
        body = f'type = "discharge_cc"\ncurrent = "2C"\nrecord_interval_s = {record}\n'
    return loads_recipe(f'[recipe]\nname = "trip"\nversion = 1\n[[steps]]\n{body}')


def one_trip(rng: random.Random, poll_s: float) -> tuple[str, float, list]:
    # A step-capacity trip needs 0.65 h of 2C discharge: only at 1 Hz polling, to stay quick.
    kind = rng.choice(KINDS if poll_s >= 1.0 else KINDS[:3])
    clock = ManualClock(T0)
    model = CellModel(soc=rng.uniform(0.3, 0.8), joule_heating=False)
    faults = Faults()
    recipe = recipe_for(kind, poll_s)
    cell = make_cell()
    # The run starts with a 1-record open-circuit probe; faults begin later than that.
    t_fault = T0 + rng.uniform(5, 60)
    if kind == "voltage_max":
        model.soc = rng.uniform(0.5, 0.8)
        rate = rng.uniform(0.01, 0.05)
        faults.voltage_drift_v_per_s = rate
        faults.fault_from_t_s = t_fault
        t_cross = t_fault + (4.2 + 0.05 - ocv_v(model.soc)) / rate
    elif kind == "temperature_max":
        rate = rng.uniform(0.008, 0.015)  # below the 1 degC/min dT/dt limit
        model.temperature_c = model.ambient_c = 53.0  # a warm cell, 2 degC under the limit
        faults.heater_c_per_s = rate
        faults.fault_from_t_s = t_fault
        t_cross = t_fault + (55.0 - 53.0) / rate
    elif kind == "current_max":
        faults.current_gain = rng.uniform(1.2, 2.0)  # 6 A x gain > 6.6 A
        faults.fault_from_t_s = t_fault
        t_cross = t_fault
    else:
        model.capacity_ah = 10.0  # a cell holding more than 1.3 x its rated 3 Ah
        model.soc = 0.9
        t_cross = None  # set once the step start is known
    seq, channel, events = build(
        recipe, cell=cell, model=model, faults=faults, clock=clock, poll_s=poll_s
    )
    seq.run_to_end(max_ticks=200_000)
    if kind == "step_capacity":
        step_start = next(t for what, t in channel.log if what == "start:cc")
        t_cross = step_start + 3.9 / 6.0 * 3600.0
    assert t_cross is not None
    assert seq.outcome is RunOutcome.TRIPPED, (kind, seq.end_reason)
    (trip,) = of(events, LimitTripped)
    assert trip.limit == kind
    assert trip.value > trip.threshold
    assert of(events, RunEnded)[-1].reason.startswith(kind)
    assert seq.stop_t_s is not None
    latency = seq.stop_t_s - t_cross
    assert not channel.output_on and channel.log[-1][0] == "stop"
    return kind, latency, events


def run_trips(count: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    seen: dict[str, int] = {}
    for trial in range(count):
        poll_s = 1.0 if trial % 2 else 0.1
        kind, latency, _ = one_trip(rng, poll_s)
        assert -1e-9 <= latency <= poll_s + 0.2, (trial, kind, latency)
        seen[kind] = seen.get(kind, 0) + 1
    return seen


def test_seeded_limit_trips_short() -> None:
    seen = run_trips(60, seed=2026)
    assert set(seen) == set(KINDS)


@pytest.mark.slow
def test_seeded_limit_trips_1000() -> None:
    seen = run_trips(1000, seed=1)
    assert sum(seen.values()) == 1000


def test_dtdt_trip_is_recorded() -> None:
    clock = ManualClock(T0)
    model = CellModel(joule_heating=False)
    faults = Faults(heater_c_per_s=0.05, fault_from_t_s=T0 + 30)  # 3 degC/min > 1 degC/min
    seq, channel, events = build(
        recipe_for("temperature_max", 1.0), model=model, faults=faults, clock=clock
    )
    assert seq.run_to_end() is RunOutcome.TRIPPED
    (trip,) = of(events, LimitTripped)
    assert trip.limit == "dtdt_max" and trip.threshold == 1.0 and trip.value > 1.0
    # The 10 s minimum span means detection within about 10-20 s of the heater starting.
    assert seq.stop_t_s is not None and seq.stop_t_s - (T0 + 30) <= 25
    assert isinstance(channel, FakeChannel) and not channel.output_on
    assert ENVELOPE.dtdt_max_c_per_min >= 1.0
