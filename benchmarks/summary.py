"""Summarise every ``benchmarks/results/*.json`` into ``benchmarks/results/summary.md``.

Run: ``.venv/bin/python -m benchmarks.summary [--results DIR]``. One row per case: the station's
and the peer's medians in the case's unit, the ratio (bigger is better for the station), the
target (a ratio, or a goal in the case's own unit) and whether it was met.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS_DIR


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    magnitude = abs(float(value))
    if magnitude == 0 or 0.01 <= magnitude < 1e5:
        return f"{float(value):.3g}" if magnitude < 100 else f"{float(value):,.0f}"
    return f"{float(value):.3g}"


def _target(case: dict[str, Any]) -> str:
    parts = []
    if case.get("target") is not None:
        parts.append(f"ratio >= {_number(case['target'])}")
    if case.get("goal") is not None:
        sign = ">=" if case.get("higher_is_better", True) else "<="
        parts.append(f"{sign} {_number(case['goal'])} {case['metric']}")
    return "; ".join(parts) or "-"


def table(documents: list[dict[str, Any]]) -> str:
    """The markdown table of all cases of ``documents`` (benchmark JSON documents)."""
    lines = [
        "| benchmark | case | unit | station | peer | ratio | target | met |",
        "|---|---|---|---:|---:|---:|---|---|",
    ]
    for doc in documents:
        for case in doc["cases"]:
            peer = f"{_number(case['peer'])} ({case['peer_name']})" if case["peer_name"] else "-"
            lines.append(
                f"| {doc['benchmark']} | {case['case']} | {case['metric']} | "
                f"{_number(case['station'])} | {peer} | {_number(case.get('ratio'))} | "
                f"{_target(case)} | {_number(case.get('met'))} |"
            )
    return "\n".join(lines)


def write_summary(results: Path = RESULTS_DIR) -> Path:
    """Write ``summary.md`` next to the JSON files and return its path."""
    documents = [json.loads(path.read_text()) for path in sorted(results.glob("*.json"))]
    machines = {json.dumps(d["machine"], sort_keys=True) for d in documents}
    started = sorted(d["started_utc"] for d in documents)
    header = ["# Benchmark summary", ""]
    if started:
        header.append(f"Runs from {started[0]} to {started[-1]} (UTC).")
    for machine in sorted(machines):
        info = json.loads(machine)
        header.append(
            f"Machine: {info['cpus']} CPUs, {info['processor']}, {info['platform']}, "
            f"Python {info['python']}."
        )
    header += [
        "",
        "Station and peer are medians measured in the same run on the same data; ratio is "
        "oriented so bigger means the station does better. Per-case notes are in the JSON files.",
        "",
    ]
    path = results / "summary.md"
    path.write_text("\n".join(header) + table(documents) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS_DIR)
    args = parser.parse_args()
    path = write_summary(args.results)
    print(path.read_text())


if __name__ == "__main__":
    main()
