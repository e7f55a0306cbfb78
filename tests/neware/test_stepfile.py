"""Step files: the station's writer read back by the simulator's independent reader."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from drivers.errors import SettingError
from drivers.neware_stepfile import build_step_file, write_step_file
from drivers.readings import CyclerStep, EndConditions, ProtectionLimits, StepMode
from hardware_sim.devices.neware_stepfile import (
    SimStepKind,
    StepFileError,
    parse_step_file,
    read_step_file,
)

LIMITS = ProtectionLimits(
    voltage_min_v=2.5,
    voltage_max_v=4.25,
    current_max_a=3.3,
    temperature_max_c=55.0,
    capacity_max_ah=3.6,
)

# Scaling resolution of the format: 0.1 mV, 1 ms; mA/mA*s are written with 6 decimals.
V_TOL = 0.5e-4
T_TOL = 0.5e-3
I_TOL = 1e-9
AH_TOL = 1e-9

STEPS = [
    CyclerStep(StepMode.REST, end=EndConditions(time_s=1800.0), record_interval_s=10.0),
    CyclerStep(
        StepMode.REST,
        end=EndConditions(time_s=3600.0, dvdt_below_v_per_s=2.5e-6),
        record_interval_s=5.0,
        record_delta_v=0.005,
        label="relax",
    ),
    CyclerStep(
        StepMode.CC,
        current_a=1.234567,
        end=EndConditions(voltage_above_v=4.2, time_s=7200.5, capacity_ah=2.75),
        record_interval_s=1.0,
    ),
    CyclerStep(
        StepMode.CC,
        current_a=-0.6,
        voltage_v=2.75,
        end=EndConditions(voltage_below_v=2.75, time_s=36000.0),
        record_interval_s=2.0,
        record_delta_v=0.01,
        label="C/5 discharge",
    ),
    CyclerStep(
        StepMode.CCCV,
        current_a=1.5,
        voltage_v=4.2,
        end=EndConditions(current_below_a=0.05, time_s=10800.0),
        label="CCCV <&> charge",
    ),
    CyclerStep(
        StepMode.CCCV,
        current_a=-1.0,
        voltage_v=2.8,
        end=EndConditions(current_below_a=0.02, capacity_ah=3.0),
    ),
    CyclerStep(StepMode.CV, current_a=0.8, voltage_v=4.1, end=EndConditions(current_below_a=0.01)),
    CyclerStep(StepMode.CV, current_a=-0.8, voltage_v=3.0, end=EndConditions(time_s=60.0)),
]


def _approx(actual: float | None, expected: float | None, tol: float) -> bool:
    if expected is None:
        return actual is None
    return actual is not None and abs(actual - expected) <= tol


@pytest.mark.parametrize("step", STEPS, ids=[f"{s.mode.name}{s.current_a:+g}" for s in STEPS])
def test_round_trip_writer_to_simulator_reader(step: CyclerStep, tmp_path: Path) -> None:
    path = write_step_file(tmp_path / "step.xml", step, LIMITS)
    programme = read_step_file(path)

    assert len(programme.steps) == 1, "one working step, then the End step"
    sim = programme.steps[0]
    kind = {
        StepMode.REST: SimStepKind.REST,
        StepMode.CC: SimStepKind.CC,
        StepMode.CCCV: SimStepKind.CCCV,
        StepMode.CV: SimStepKind.CV,
    }[step.mode]
    assert sim.kind is kind
    assert abs(sim.current_a - step.current_a) <= I_TOL
    assert _approx(sim.hold_voltage_v, step.voltage_v, V_TOL)
    end = step.end
    stop_v = end.voltage_above_v if end.voltage_above_v is not None else end.voltage_below_v
    assert _approx(sim.stop_voltage_v, stop_v, V_TOL)
    assert _approx(sim.stop_current_a, end.current_below_a, I_TOL)
    assert _approx(sim.time_s, end.time_s, T_TOL)
    assert _approx(sim.capacity_ah, end.capacity_ah, AH_TOL)
    assert _approx(sim.dvdt_v_per_s, end.dvdt_below_v_per_s, 1e-12)
    assert _approx(programme.record_interval_s, step.record_interval_s, T_TOL)
    assert _approx(programme.record_delta_v, step.record_delta_v, V_TOL)
    assert programme.remark == step.label

    prot = programme.protection
    assert _approx(prot.voltage_upper_v, LIMITS.voltage_max_v, V_TOL)
    assert _approx(prot.voltage_lower_v, LIMITS.voltage_min_v, V_TOL)
    assert _approx(prot.current_upper_a, LIMITS.current_max_a, I_TOL)
    assert _approx(prot.current_lower_a, -LIMITS.current_max_a, I_TOL)
    assert _approx(prot.temperature_upper_c, LIMITS.temperature_max_c, 0.05)
    assert _approx(prot.capacity_upper_ah, LIMITS.capacity_max_ah, AH_TOL)


def test_file_layout_uses_bts_names_codes_and_units() -> None:
    step = CyclerStep(
        StepMode.CCCV, current_a=1.5, voltage_v=4.2, end=EndConditions(current_below_a=0.05)
    )
    root = ET.fromstring(build_step_file(step, LIMITS))
    config = root.find("config")
    assert config is not None and config.get("type") == "Step File"
    step1 = root.find("config/Step_Info/Step1")
    assert step1 is not None and step1.get("Step_Type") == "7"
    values = {e.tag: e.get("Value") for e in root.findall("config/Step_Info/Step1/Limit/Main/*")}
    assert values == {"Curr": "1500", "Volt": "42000", "Stop_Curr": "50"}
    assert root.find("config/Step_Info/Step2").get("Step_Type") == "6"  # type: ignore[union-attr]
    upper = root.find("config/Whole_Prt/Protect/Main/Volt/Upper")
    assert upper is not None and upper.get("Value") == "42500"
    assert root.find("config/Whole_Prt/Record/Main/Time").get("Value") == "1000"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("step", "field"),
    [
        (CyclerStep(StepMode.REST, end=EndConditions()), "end.time_s"),
        (CyclerStep(StepMode.CC, current_a=0.0, end=EndConditions(time_s=1)), "current_a"),
        (CyclerStep(StepMode.CCCV, current_a=1.0, end=EndConditions(time_s=1)), "voltage_v"),
        (
            CyclerStep(StepMode.CC, current_a=1.0, end=EndConditions(voltage_below_v=3.0)),
            "end.voltage_below_v",
        ),
        (CyclerStep(StepMode.CC, current_a=1.0, end=EndConditions(time_s=-5)), "end.time_s"),
        (CyclerStep(StepMode.CC, current_a=1.0), "end condition"),
        (
            CyclerStep(
                StepMode.CC, current_a=1.0, end=EndConditions(time_s=1), record_interval_s=0
            ),
            "record_interval_s",
        ),
    ],
)
def test_writer_refuses_steps_the_format_cannot_express(step: CyclerStep, field: str) -> None:
    with pytest.raises(SettingError, match=field.replace(".", r"\.")):
        build_step_file(step, LIMITS)


def test_writer_refuses_inverted_protection(tmp_path: Path) -> None:
    bad = ProtectionLimits(voltage_min_v=4.2, voltage_max_v=2.5, current_max_a=1.0)
    step = CyclerStep(StepMode.REST, end=EndConditions(time_s=1.0))
    with pytest.raises(SettingError, match="voltage_max_v"):
        write_step_file(tmp_path / "x.xml", step, bad)
    assert not (tmp_path / "x.xml").exists(), "nothing half-written"


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"<root><config", "not well-formed"),
        (b"<root><other/></root>", "Step File"),
        (b'<root><config type="Step File"><Step_Info/></config></root>', "no steps"),
        (
            b'<root><config type="Step File"><Step_Info><Step1 Step_ID="1" Step_Type="99"/>'
            b"</Step_Info></config></root>",
            "Step_Type=99",
        ),
        (
            b'<root><config type="Step File"><Step_Info><Step1 Step_ID="1" Step_Type="1">'
            b'<Limit><Main><Curr Value="abc"/></Main></Limit></Step1></Step_Info></config></root>',
            "Curr",
        ),
        (
            b'<root><config type="Step File"><Step_Info><Step1 Step_ID="1" Step_Type="4">'
            b'<Limit><Main><Time Value="1000"/></Main></Limit></Step1></Step_Info></config></root>',
            "End step",
        ),
    ],
)
def test_reader_names_the_problem(data: bytes, problem: str) -> None:
    with pytest.raises(StepFileError, match=problem):
        parse_step_file(data)
