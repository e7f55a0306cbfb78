"""SimClock: the scaled-time formula and manual stepping."""

from __future__ import annotations

import time

import pytest

from hardware_sim.bench import build_bench, single_device
from hardware_sim.clock import SimClock


class FakeWall:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_scaled_time_follows_t0_plus_speed_times_wall_delta() -> None:
    wall = FakeWall(1000.0)
    clock = SimClock(t0_s=50.0, speed=3600.0, wall=wall)
    assert clock.w0_s == 1000.0
    wall.t = 1002.5
    # exact arithmetic reference: 50 + 3600 * 2.5
    assert clock.now() == pytest.approx(9050.0, abs=1e-9)
    assert clock.wall_seconds_until(9050.0 + 36.0) == pytest.approx(0.01, abs=1e-12)
    assert clock.wall_seconds_until(0.0) == 0.0


def test_speed_of_ten_thousand_and_more_is_accepted() -> None:
    wall = FakeWall(0.0)
    clock = SimClock(speed=20_000.0, wall=wall)
    wall.t = 1.0
    assert clock.now() == pytest.approx(20_000.0)


@pytest.mark.parametrize("speed", [0.0, -1.0, 1e9])
def test_bad_speed_is_refused(speed: float) -> None:
    with pytest.raises(ValueError, match="speed"):
        SimClock(speed=speed)


def test_manual_clock_moves_only_when_told() -> None:
    clock = SimClock(t0_s=10.0, manual=True)
    assert clock.now() == 10.0
    clock.advance(5.0)
    clock.sleep(2.5)
    assert clock.now() == 17.5
    # waiting for a later instant jumps there at once
    assert clock.wall_seconds_until(30.0) == 0.0
    assert clock.now() == 30.0
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1.0)


def test_advance_refused_on_a_running_clock() -> None:
    with pytest.raises(RuntimeError, match="manual"):
        SimClock().advance(1.0)


def test_skip_jumps_a_running_and_a_manual_clock_ahead() -> None:
    wall = FakeWall(1000.0)
    clock = SimClock(t0_s=50.0, speed=100.0, wall=wall)
    clock.skip(7 * 86400.0)
    wall.t = 1001.0
    # exact arithmetic reference: 50 + 7 days + 100 * 1 s
    assert clock.now() == pytest.approx(50.0 + 604800.0 + 100.0, abs=1e-9)
    manual = SimClock(t0_s=5.0, manual=True)
    manual.skip(10.0)
    assert manual.now() == 15.0
    with pytest.raises(ValueError, match="backwards"):
        clock.skip(-1.0)


def test_a_bench_clock_is_on_the_calendar_of_its_launch_unless_told_otherwise() -> None:
    """Reference: ``time.time()`` read around the build. A running bench publishes its clock in
    Unix time from the launch (records carry today's date, not 1970) while counting from 0
    inside; a manual bench stays at 0 and a given start is kept exactly (deterministic tests)."""
    before = time.time()
    running = single_device("bt3562", speed=60.0)
    after = time.time()
    assert before <= running.clock.epoch_s <= after
    assert running.clock.t0_s == 0.0
    published = running.clock.describe()["t0_s"]
    assert published == running.clock.epoch_s
    manual = single_device("bt3562", manual=True).clock
    assert manual.now() == 0.0 and manual.describe()["t0_s"] == 0.0
    description = {"bench": {"start_s": 1.8e9}, "device": [{"kind": "bt3562"}]}
    assert build_bench(description, cells=2).clock.describe()["t0_s"] == 1.8e9
    assert build_bench(description, cells=2, start_s=5.0).clock.describe()["t0_s"] == 5.0
