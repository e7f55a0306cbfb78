"""Speed goal of issue 3: a 16-channel simulated bench runs an 8-hour programme in < 30 s wall.

Runs the cell physics the way a cycler channel does (lazily, advanced to "now" at every poll of
the host) for 16 cells of a retired-EV lot, on a manual clock, with the host polling every
``--poll`` simulated seconds. Programme per channel: CCCV charge 1C to 4.2 V until C/20, rest
30 min, C/3 discharge to 2.5 V, rest 30 min, then 10 s 1C pulses every 5 min until 8 h.

    python -m benchmarks.bench_sim_cells [--poll 10] [--channels 16]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from benchmarks.common import Case, write_result
from hardware_sim.clock import SimClock
from hardware_sim.population import generate_lot

PROGRAMME_S = 8 * 3600.0


def run(channels: int, poll_s: float) -> tuple[float, float, int]:
    lot = generate_lot("retired-ev", channels, seed=1, defect_share=0.0)
    cells = [lc.cell for lc in lot]
    clock = SimClock(manual=True)
    phase = ["charge"] * channels
    phase_start = [0.0] * channels
    start_ah = [0.0] * channels
    for cell in cells:
        cap = cell.params.capacity_ah
        cell.set_current(cap, voltage_limit_v=4.2)
    polls = 0
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    while clock.now() < PROGRAMME_S:
        clock.advance(poll_s)
        now = clock.now()
        polls += 1
        for i, cell in enumerate(cells):
            cell.advance_to(now)
            cap = cell.params.capacity_ah
            p = phase[i]
            if p == "charge" and cell.current_a < cap / 20:
                cell.set_open_circuit()
                phase[i], phase_start[i] = "rest1", now
            elif p == "rest1" and now - phase_start[i] >= 1800:
                start_ah[i] = cell.charge_ah
                cell.set_current(-cap / 3, voltage_limit_v=2.5)
                phase[i] = "discharge"
            elif p == "discharge" and cell.current_a > -cap / 3 * 0.999:
                cell.set_open_circuit()
                phase[i], phase_start[i] = "rest2", now
            elif p == "rest2" and now - phase_start[i] >= 1800:
                cell.set_current(-cap)
                phase[i], phase_start[i] = "pulse", now
            elif p == "pulse" and now - phase_start[i] >= 10:
                cell.set_open_circuit()
                phase[i], phase_start[i] = "between", now
            elif p == "between" and now - phase_start[i] >= 290:
                cell.set_current(-cap)
                phase[i], phase_start[i] = "pulse", now
    return time.perf_counter() - t0, time.process_time() - cpu0, polls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--poll", type=float, default=10.0, help="host poll interval (sim s)")
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--out", type=Path, default=None, help="JSON path")
    args = parser.parse_args()
    wall_s, cpu_s, polls = run(args.channels, args.poll)
    verdict = "PASS" if wall_s < 30.0 else "FAIL"
    print(
        f"{args.channels} channels x 8 h, poll {args.poll:g} s ({polls} polls): "
        f"{wall_s:.2f} s wall, {cpu_s:.2f} s CPU (goal < 30 s wall) {verdict}"
    )
    case = Case(
        case=f"{args.channels} simulated cells x 8 h programme, host poll {args.poll:g} s",
        metric="wall s",
        station=round(wall_s, 2),
        peer=None,
        peer_name="",
        higher_is_better=False,
        goal=30.0,
        notes=f"{polls} polls, {cpu_s:.2f} s CPU; issue 3 goal: under 30 s wall; cell physics only",
    )
    write_result("sim_cells", [case], args.out)


if __name__ == "__main__":
    main()
