"""A 16-channel simulated Neware cabinet runs an 8-hour programme: wall time of the whole stack.

Run: ``.venv/bin/python -m benchmarks.bench_neware_cabinet [--channels N] [--hours H]``.
Issue 3 target: a 16-channel bench runs a full 8-hour test programme in under 30 s of wall time.

The station side is the real driver (``drivers.neware_bts``): step files, start, inquire and
download through the XML protocol, every row parsed into samples. The link is in process (the
bytes the driver would put on TCP go straight into the cabinet), so the figure is the cost of
the protocol, the cabinet and the cell physics, not of the loopback socket. Each channel runs a
C/3 discharge to 2.5 V, a 30 min rest and a C/2 CCCV charge to 4.2 V / C/20, recording every
``--record-s`` seconds (default 1); the driver polls every channel once per simulated minute.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.common import Case, write_result
from drivers.neware_bts import TERMINATOR, NewareBtsCabinet
from drivers.readings import ChannelState, CyclerStep, EndConditions, ProtectionLimits, StepMode
from hardware_sim.cell import Cell
from hardware_sim.chemistry import NMC
from hardware_sim.clock import SimClock
from hardware_sim.devices.neware_bts import NewareCabinet

CAPACITY_AH = 3.0


def programme(record_s: float) -> list[CyclerStep]:
    return [
        CyclerStep(
            StepMode.CC,
            current_a=-CAPACITY_AH / 3,
            end=EndConditions(voltage_below_v=2.5, time_s=4 * 3600.0),
            record_interval_s=record_s,
        ),
        CyclerStep(StepMode.REST, end=EndConditions(time_s=1800.0), record_interval_s=record_s),
        CyclerStep(
            StepMode.CCCV,
            current_a=CAPACITY_AH / 2,
            voltage_v=4.2,
            end=EndConditions(current_below_a=CAPACITY_AH / 20, time_s=4 * 3600.0),
            record_interval_s=record_s,
        ),
    ]


class InProcessLink:
    """The driver's transport shape, handing frames straight to the cabinet."""

    def __init__(self, cabinet: NewareCabinet, clock: SimClock) -> None:
        self.cabinet, self.clock = cabinet, clock
        self.lock = threading.RLock()
        self._replies: list[bytes] = []
        cabinet.on_connect()

    def write(self, text: str) -> None:
        data = (text + TERMINATOR).encode("utf-8")
        self._replies += self.cabinet.feed_bytes(data, self.clock.now())

    def read(self, *, timeout_s: float | None = None) -> str:
        return self._replies.pop(0)[: -len(TERMINATOR)].decode("utf-8")

    def reopen(self) -> None:
        self.cabinet.on_connect()

    def close(self) -> None:
        self._replies.clear()


def run(channels: int, hours: float, record_s: float, step_dir: Path) -> dict[str, float]:
    steps = programme(record_s)
    clock = SimClock(1_800_000_000.0, manual=True)
    cells = [Cell(NMC.params(CAPACITY_AH), soc=0.9, t_s=clock.now()) for _ in range(channels)]
    sim = NewareCabinet(clock, cells, seed=1)
    cab = NewareBtsCabinet(InProcessLink(sim, clock), step_dir=step_dir, run_id="bench").connect()
    chans = cab.channels()
    limits = ProtectionLimits(voltage_min_v=2.4, voltage_max_v=4.3, current_max_a=5.0)
    next_step = [0] * channels
    samples = 0
    start = time.perf_counter()
    end_s = clock.now() + hours * 3600.0
    for i, ch in enumerate(chans):
        ch.arm_protection(limits)
        ch.start_step(steps[0])
        next_step[i] = 1
    while clock.now() < end_s:
        clock.advance(60.0)
        for i, ch in enumerate(chans):
            status = ch.poll()
            samples += len(status.samples)
            if status.state is not ChannelState.RUNNING and next_step[i] < len(steps):
                ch.start_step(steps[next_step[i]])
                next_step[i] += 1
    wall_s = time.perf_counter() - start
    return {
        "channels": channels,
        "simulated_h": hours,
        "record_s": record_s,
        "wall_s": round(wall_s, 2),
        "samples": samples,
        "steps_started": sum(next_step),
        "speedup": round(hours * 3600.0 / wall_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--hours", type=float, default=8.0)
    parser.add_argument("--record-s", type=float, default=1.0, help="record interval (s)")
    parser.add_argument("--out", type=Path, default=None, help="JSON path")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        figures = run(args.channels, args.hours, args.record_s, Path(tmp))
    print(figures)
    case = Case(
        case=f"{args.channels}-channel Neware cabinet, {args.hours:g} h programme, XML protocol",
        metric="wall s",
        station=figures["wall_s"],
        peer=None,
        peer_name="",
        higher_is_better=False,
        goal=30.0,
        notes=(
            f"{figures['samples']} samples parsed, {figures['steps_started']} steps started, "
            f"{figures['speedup']}x real time; issue 3 goal: under 30 s wall; no peer runs the "
            "Neware XML protocol"
        ),
    )
    write_result("neware_cabinet", [case], args.out)


if __name__ == "__main__":
    main()
