# ruff: noqa: E501  (step literals are kept on one line)
"""Real-cabinet checks, skipped unless a cabinet is named (run with ``-m hardware``):

    NEWARE_BTS_ADDRESS=tcp://10.0.0.7:502 pytest -m hardware tests/neware/test_hardware.py

Optional: ``NEWARE_BTS_CHANNEL=27-1-1`` plus ``NEWARE_BTS_STEP_DIR`` (a folder the BTS PC reads,
with ``NEWARE_BTS_STEP_DIR_REMOTE`` naming it as the BTS PC does) runs a 60 s rest (no current);
``NEWARE_BTS_EXPORT=/path/to/step.xml`` checks a step file saved by BTS against the format the
station writes (element names, Step_Type codes and scaling of ``drivers/neware_stepfile.py``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from drivers.neware_bts import open_neware_bts
from drivers.readings import ChannelState, CyclerStep, EndConditions, ProtectionLimits, StepMode
from hardware_sim.devices.neware_stepfile import read_step_file

ADDRESS = os.environ.get("NEWARE_BTS_ADDRESS", "")
pytestmark = pytest.mark.hardware
needs_cabinet = pytest.mark.skipif(not ADDRESS, reason="set NEWARE_BTS_ADDRESS to test a cabinet")


@needs_cabinet
def test_real_cabinet_identity_channels_and_status(tmp_path: Path) -> None:
    cab = open_neware_bts(ADDRESS, step_dir=tmp_path, timeout_s=10.0)
    try:
        ids = cab.pipeline_ids()
        assert ids and all(len(pid.split("-")) == 3 for pid in ids)
        assert not cab.identity.simulated
        records = cab.inquire([cab.pipeline(pid) for pid in ids])
        assert len(records) == len(ids)
        assert {r.workstatus for r in records} <= {"working", "finish", "stop", "protect", "pause"}
    finally:
        cab.close()


@needs_cabinet
def test_real_cabinet_runs_a_rest_step(tmp_path: Path) -> None:
    channel_id = os.environ.get("NEWARE_BTS_CHANNEL")
    step_dir = os.environ.get("NEWARE_BTS_STEP_DIR")
    if not channel_id or not step_dir:
        pytest.skip("set NEWARE_BTS_CHANNEL and NEWARE_BTS_STEP_DIR to run a rest step")
    cab = open_neware_bts(
        ADDRESS,
        step_dir=Path(step_dir),
        step_dir_remote=os.environ.get("NEWARE_BTS_STEP_DIR_REMOTE"),
        timeout_s=10.0,
    )
    try:
        channel = cab.channel(channel_id)
        channel.arm_protection(
            ProtectionLimits(voltage_min_v=0.5, voltage_max_v=4.8, current_max_a=1.0)
        )
        channel.start_step(
            CyclerStep(StepMode.REST, end=EndConditions(time_s=60.0), record_interval_s=5.0)
        )
        times: list[float] = []
        deadline = time.monotonic() + 180.0
        while time.monotonic() < deadline:
            status = channel.poll()
            times += [s.step_time_s for s in status.samples]
            if status.state is not ChannelState.RUNNING:
                break
            time.sleep(2.0)
        assert status.state is ChannelState.FINISHED
        assert times == sorted(times) and times[-1] == pytest.approx(60.0, abs=1.0)
    finally:
        cab.close()


def test_bts_export_matches_the_documented_step_format() -> None:
    export = os.environ.get("NEWARE_BTS_EXPORT")
    if not export:
        pytest.skip("set NEWARE_BTS_EXPORT to a step file saved by BTS")
    programme = read_step_file(Path(export))
    assert programme.steps
    for step in programme.steps:
        for volt in (step.hold_voltage_v, step.stop_voltage_v):
            assert volt is None or 0.0 < volt < 6.0, "Volt values are 0.1 mV units"
        assert abs(step.current_a) < 1000.0, "Curr values are mA"
        assert step.time_s is None or step.time_s > 0.0, "Time values are ms"
