from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from station.cli.main import main
from station.config import preset_text

LOT_HEADER = (
    "cell_id,chemistry,format,rated_capacity_ah,voltage_min_v,voltage_max_v,"
    "max_charge_current_a,max_discharge_current_a"
)


def lot_csv(ids: list[str]) -> str:
    rows = [f"{cid},NMC,cylindrical,3.0,2.5,4.2,3.0,6.0" for cid in ids]
    return "\n".join([LOT_HEADER, *rows]) + "\n"


@pytest.fixture
def bench_file(tmp_path: Path) -> Path:
    path = tmp_path / "bench.toml"
    path.write_text(preset_text("sim-demo"), encoding="utf-8")
    return path


@pytest.fixture
def lot_file(tmp_path: Path) -> Path:
    path = tmp_path / "lot.csv"
    path.write_text(lot_csv(["C1", "C2", "C3"]), encoding="utf-8")
    return path


def station(*args: str | Path, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``python -m station ...`` in a child process, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "station", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run ``station ...`` in this process (fast; for commands that need no signals)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as stop:  # argparse usage errors
            code = stop.code if isinstance(stop.code, int) else 2
    return subprocess.CompletedProcess(list(map(str, args)), code, out.getvalue(), err.getvalue())
