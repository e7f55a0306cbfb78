"""Stuck-instrument detection counts wall-clock time, not simulated time.

At speed 3600 one wall second is an hour of simulated time: a single slow reply (a driver
retrying after a timeout) used to look like thousands of silent poll periods. Now a channel is
stuck only after 3 poll periods of wall time without a fresh reading. Test cycler
(tests/engine/fakes.py) on a scaled clock; poll period 0.2 s so the stuck case ends quickly.
"""

from __future__ import annotations

import time

from drivers.errors import TransportTimeout
from drivers.readings import ChannelStatus
from station.clock import ManualClock, ScaledClock, SystemClock
from station.config import load_preset
from station.events import Event, Fault, RunEnded, RunOutcome, Sample
from station.recipes import shipped_recipe
from station.sequencer import DirectMeters, Sequencer, derive_limits, stall_timer

from .conftest import T0, make_cell
from .fakes import CellModel, FakeAcirMeter, FakeChannel, FakeEisMeter, Faults

ENVELOPE = load_preset("sim-demo").envelope
POLL_S = 0.2  # station clock s; also the wall-time watch unit
SPEED = 3600.0


class SlowOnce(FakeChannel):
    """One poll times out after ``delay_wall_s`` wall seconds (a late reply the driver gave up
    on); the polls after it answer normally."""

    delay_wall_s = 0.0
    slow_polls = 0

    def poll(self) -> ChannelStatus:
        if self.slow_polls == 0 and self._step_index >= 3:
            self.slow_polls += 1
            time.sleep(self.delay_wall_s)
            raise TransportTimeout(f"no reply within {self.delay_wall_s} s")
        return super().poll()


def run(channel: FakeChannel, clock: ScaledClock) -> tuple[Sequencer, list[Event]]:
    cell = make_cell()
    recipe = shipped_recipe("fast-triage")
    events: list[Event] = []
    seq = Sequencer(
        run_id="r",
        channel_id="ch01",
        channel=channel,
        cell=cell,
        recipe=recipe,
        limits=derive_limits(cell, recipe.limits, ENVELOPE),
        envelope=ENVELOPE,
        clock=clock,
        emit=events.append,
        poll_period_s=POLL_S,
        meters=DirectMeters(FakeAcirMeter(channel, clock), FakeEisMeter(channel, clock)),
    )
    seq.run_to_end()
    return seq, events


def test_a_slow_reply_at_high_speed_is_not_a_stall() -> None:
    # A timed-out poll of 0.3 wall s is 1,080 simulated s (5,400 poll periods of simulated
    # time) but only 1.5 wall poll periods: fresh data follows, so the run completes.
    clock = ScaledClock(t0_s=T0, w0_s=time.time(), speed=SPEED)
    channel = SlowOnce(clock, cell=CellModel())
    channel.delay_wall_s = 1.5 * POLL_S
    seq, events = run(channel, clock)
    assert channel.slow_polls == 1
    assert seq.outcome is RunOutcome.COMPLETED, seq.end_reason
    assert not [e for e in events if isinstance(e, Fault)]


def test_no_fresh_reading_for_three_wall_poll_periods_is_a_fault() -> None:
    # Reference: the wall time from the last fresh sample's arrival to the fault, measured here
    # with time.monotonic; detection is due after 3 poll periods and is checked once per tick,
    # so it must land within 3 + 1 poll periods (plus 0.2 s of scheduling slack on a loaded
    # 2-core machine) and not before 3.
    clock = ScaledClock(t0_s=T0, w0_s=time.time(), speed=SPEED)
    channel = FakeChannel(clock, cell=CellModel(), faults=Faults(stuck_from_t_s=T0 + 300.0))
    arrivals: list[float] = []
    ended_at: list[float] = []

    def watch(event: Event) -> None:
        if isinstance(event, Sample):
            arrivals.append(time.monotonic())
        elif isinstance(event, RunEnded):
            ended_at.append(time.monotonic())

    cell = make_cell()
    recipe = shipped_recipe("second-life-full")
    seq = Sequencer(
        run_id="r",
        channel_id="ch01",
        channel=channel,
        cell=cell,
        recipe=recipe,
        limits=derive_limits(cell, recipe.limits, ENVELOPE),
        envelope=ENVELOPE,
        clock=clock,
        emit=watch,
        poll_period_s=POLL_S,
        meters=DirectMeters(FakeAcirMeter(channel, clock), FakeEisMeter(channel, clock)),
    )
    assert seq.run_to_end() is RunOutcome.FAULTED
    assert "stuck_instrument" in seq.end_reason
    silent_wall_s = ended_at[0] - arrivals[-1]
    assert 3 * POLL_S <= silent_wall_s <= 4 * POLL_S + 0.2
    assert not channel.output_on


def test_timers() -> None:
    manual = ManualClock(T0)
    timer, scale = stall_timer(manual)
    assert (timer(), scale) == (T0, 1.0)
    assert stall_timer(SystemClock()) == (time.monotonic, 1.0)
    assert stall_timer(ScaledClock(t0_s=0.0, w0_s=0.0, speed=SPEED)) == (time.monotonic, 1 / SPEED)
