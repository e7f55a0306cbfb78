"""Grading-core benchmarks: per-cycle summary vs a single pass, EIS batch fit vs impedance.py.

Run: ``.venv/bin/python -m benchmarks.bench_grading [--out FILE] [--spectra N] [--peer N]``.
Each timing is the best of several interleaved repeats (the machine may be shared), and every
comparison first checks that both sides give equal results. Writes one JSON document.

(a) Per-cycle summary of a 2.6-million-row, 200-cycle series (issue 6 target: at least 50 % of
    the floor's rows/s). The floor is one pass that integrates the whole series: trapezoid
    charge and energy totals over the same arrays, i.e. the least work any per-cycle summary
    must also do.
(c) Fitting many spectra with ``fit_many`` against impedance.py's ``CustomCircuit.fit`` on the
    same circuit (target: at least 50x). impedance.py fits a subset and its per-fit time is
    scaled to the batch size.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from station.grading.eis import CIRCUITS, fit_many, initial_guess
from station.grading.timeseries import TimeSeries, cycle_summary


def best_of(functions: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    best = {name: float("inf") for name in functions}
    for _ in range(repeats):
        for name, fn in functions.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def synthetic_series(cycles: int = 200, rows_per_cycle: int = 13_000) -> TimeSeries:
    rng = np.random.default_rng(0)
    lengths = (1000, 4000, 2000, 1000, 5000)
    current = np.concatenate(
        [
            np.zeros(1000),
            np.full(4000, 1.0),
            np.exp(-np.arange(2000) / 500.0),
            np.zeros(1000),
            np.full(5000, -1.0),
        ]
    )
    voltage = np.concatenate(
        [
            np.full(1000, 3.4),
            np.linspace(3.5, 4.2, 4000),
            np.full(2000, 4.2),
            np.full(1000, 4.1),
            np.linspace(4.0, 3.0, 5000),
        ]
    )
    assert sum(lengths) == rows_per_cycle
    n = cycles * rows_per_cycle
    i = np.tile(current, cycles)
    v = np.tile(voltage, cycles) + rng.normal(0.0, 1e-4, n)
    t = np.cumsum(rng.uniform(0.5, 1.5, n))
    step = np.repeat(np.arange(len(lengths) * cycles), np.tile(lengths, cycles))
    cycle = np.repeat(np.arange(1, cycles + 1), rows_per_cycle)
    return TimeSeries.from_arrays(t, v, i, step_count=step, cycle_count=cycle)


def bench_cycle_summary(repeats: int) -> dict[str, object]:
    ts = synthetic_series()
    t, v, i = ts.t_s, ts.voltage_v, ts.current_a

    def floor() -> tuple[float, float]:
        dt = np.diff(t)
        q = float(np.dot(i[1:] + i[:-1], dt)) / 7200.0
        p = v * i
        return q, float(np.dot(p[1:] + p[:-1], dt)) / 7200.0

    detected = TimeSeries.from_arrays(t, v, i)
    q_floor, e_floor = floor()
    summaries = {"cycler indices": cycle_summary(ts), "detected steps": cycle_summary(detected)}
    for summary in summaries.values():
        assert len(summary) == 200
        net_q = float(np.sum(summary.charge_ah - summary.discharge_ah))
        net_e = float(np.sum(summary.charge_wh - summary.discharge_wh))
        # Equal results: the cycle sums add up to the floor's totals (float rounding only).
        assert abs(net_q - q_floor) <= 1e-9 * abs(q_floor) + 1e-9, (net_q, q_floor)
        assert abs(net_e - e_floor) <= 1e-9 * abs(e_floor) + 1e-9, (net_e, e_floor)
    times = best_of(
        {
            "floor": floor,
            "cycler indices": lambda: cycle_summary(ts),
            "detected steps": lambda: cycle_summary(detected),
        },
        repeats,
    )
    rows = len(ts)
    floor_rate = rows / times["floor"]
    return {
        "rows": rows,
        "cycles": 200,
        "floor_s": times["floor"],
        "floor_rows_per_s": floor_rate,
        "summary": {
            name: {
                "seconds": times[name],
                "rows_per_s": rows / times[name],
                "fraction_of_floor": rows / times[name] / floor_rate,
            }
            for name in summaries
        },
        "target_fraction": 0.5,
    }


def bench_eis(spectra: int, peer_spectra: int, circuit_name: str) -> dict[str, object]:
    from impedance.models.circuits import CustomCircuit

    c = CIRCUITS[circuit_name]
    f = np.geomspace(1e4, 1e-2, 61)
    truth = {
        "full": np.array([2e-7, 0.010, 0.004, 2.0, 0.85, 0.008, 50.0, 0.75, 0.005, 20.0]),
        "randles": np.array([0.012, 0.006, 1.5, 0.8, 0.004, 10.0]),
    }[circuit_name]
    rng = np.random.default_rng(1)
    params = truth * rng.uniform(0.85, 1.15, (spectra, truth.size))
    for k in c.exponents:
        params[:, k] = np.minimum(params[:, k], 0.97)
    z = c.impedance(params, f)
    z = z + 0.001 * np.abs(z) * (rng.standard_normal(z.shape) + 1j * rng.standard_normal(z.shape))
    start = time.perf_counter()
    ours = fit_many(f, z, circuit_name)
    ours_s = time.perf_counter() - start
    peer_values = []
    start = time.perf_counter()
    for k in range(peer_spectra):
        # impedance.py starts from the same automatic guess our batch fit started from.
        guess = initial_guess(c, f, z[k])
        peer = CustomCircuit(c.impedance_py, initial_guess=[float(x) for x in guess])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            peer.fit(f, z[k], weight_by_modulus=True)
        peer_values.append(peer.parameters_)
    peer_s = (time.perf_counter() - start) / peer_spectra * spectra
    agree = [
        bool(np.allclose(ours[k].values, peer_values[k], rtol=0.01)) for k in range(peer_spectra)
    ]
    return {
        "circuit": c.impedance_py,
        "frequencies": int(f.size),
        "spectra": spectra,
        "ours_s": ours_s,
        "ours_ms_per_fit": ours_s / spectra * 1e3,
        "converged_fraction": float(np.mean([r.converged for r in ours])),
        "impedance_py_spectra_timed": peer_spectra,
        "impedance_py_s_scaled": peer_s,
        "impedance_py_ms_per_fit": peer_s / spectra * 1e3,
        "speedup": peer_s / ours_s,
        "agree_within_1pct_fraction": float(np.mean(agree)),
        "target_speedup": 50.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results.json", help="JSON output file")
    parser.add_argument("--repeats", type=int, default=7, help="interleaved timing repeats")
    parser.add_argument("--spectra", type=int, default=1000, help="spectra in the EIS batch")
    parser.add_argument("--peer", type=int, default=20, help="spectra timed with impedance.py")
    parser.add_argument(
        "--circuit", default="full", choices=tuple(CIRCUITS), help="circuit for the EIS bench"
    )
    args = parser.parse_args()
    result = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "cycle_summary": bench_cycle_summary(args.repeats),
        "eis_batch_fit": bench_eis(args.spectra, args.peer, args.circuit),
    }
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
