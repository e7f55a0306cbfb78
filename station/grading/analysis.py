"""One call from a time series to its step, cycle and pulse figures (what ``station analyze``
prints and the engine stores)."""

from __future__ import annotations

from dataclasses import dataclass

from station.grading.pulses import Pulse, analyze_pulses
from station.grading.timeseries import (
    CycleTable,
    SegmentationOptions,
    StepTable,
    TimeSeries,
    TimestampReport,
    check_timestamps,
    cycle_table,
    step_table,
)

PULSE_COLUMNS = ("0.1", "1", "10", "end")


@dataclass(frozen=True)
class SeriesAnalysis:
    steps: StepTable
    cycles: CycleTable
    pulses: list[Pulse]
    timestamps: TimestampReport

    def to_dict(self) -> dict[str, object]:
        return {
            "rows": int(self.steps.end_row[-1]),
            "steps": len(self.steps),
            "median_sample_interval_s": self.timestamps.median_interval_s,
            "repeated_timestamps": len(self.timestamps.repeated_rows),
            "cycles": self.cycles.rows(),
            "pulses": [
                {
                    "start_s": p.start_s,
                    "current_a": p.current_a,
                    "duration_s": p.duration_s,
                    "soc": None if p.soc != p.soc else p.soc,
                    **{
                        f"dcir_{label}_ohm" if label != "end" else "dcir_end_ohm": (
                            None if not p.dcir_ohm[label].ok else p.dcir_ohm[label].value
                        )
                        for label in PULSE_COLUMNS
                    },
                    "flags": {
                        label: sorted(f.value for f in p.dcir_ohm[label].flags)
                        for label in PULSE_COLUMNS
                        if p.dcir_ohm[label].flags
                    },
                }
                for p in self.pulses
            ],
        }


def analyze_series(
    ts: TimeSeries, capacity_ah: float | None = None, opts: SegmentationOptions | None = None
) -> SeriesAnalysis:
    steps = step_table(ts, opts)
    return SeriesAnalysis(
        steps=steps,
        cycles=cycle_table(steps),
        pulses=analyze_pulses(ts, steps, capacity_ah=capacity_ah),
        timestamps=check_timestamps(ts.t_s),
    )
