"""``python -m hardware_sim --bench demo`` serves the 16-channel cabinet; the station reaches it
through the driver registry, as ``station demo`` does."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from drivers import registry
from drivers.readings import ChannelState, CyclerStep, EndConditions, ProtectionLimits, StepMode
from station.clock import SystemClock

ROOT = Path(__file__).resolve().parents[2]


def test_demo_bench_cabinet_through_the_registry(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "hardware_sim", "--bench", "demo", "--speed", "1000", "--seed", "5"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        doc = json.loads(proc.stdout.readline())
        (cabinet_doc,) = [d for d in doc["devices"] if d["kind"] == "neware-bts"]
        assert cabinet_doc["serial"] == "SIMULATED-5"
        cab = registry.open_instrument(
            "neware-bts",
            f"tcp://127.0.0.1:{cabinet_doc['tcp_port']}",
            {"step_dir": str(tmp_path), "timeout_s": 5.0},
            clock=SystemClock(),
        )
        try:
            assert cab.pipeline_ids() == cabinet_doc["channels"]
            assert len(cab.pipeline_ids()) == 16
            assert cab.identity.simulated
            channel = cab.channel("27-2-8")
            channel.arm_protection(
                ProtectionLimits(voltage_min_v=0.0, voltage_max_v=5.0, current_max_a=5.0)
            )
            channel.start_step(
                CyclerStep(StepMode.REST, end=EndConditions(time_s=120.0), record_interval_s=10.0)
            )
            times: list[float] = []
            deadline = time.monotonic() + 30.0
            while time.monotonic() < deadline:
                status = channel.poll()
                times += [s.step_time_s for s in status.samples]
                if status.state is not ChannelState.RUNNING:
                    break
                time.sleep(0.02)
            assert status.state is ChannelState.FINISHED
            assert times == [10.0 * i for i in range(13)]
        finally:
            cab.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
    assert proc.returncode == 0
