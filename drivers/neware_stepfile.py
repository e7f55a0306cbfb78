"""Write a Neware BTS 8 step file for one station step (the station's side of the format).

The Neware API starts a *step file* on a channel; set-points, cut-offs and protection live in that
file, not in the API (see ``../shared/reference/instruments.md`` section 2.5). The station writes
one file per started step: the working step, then an End step. The simulator's reader
(``hardware_sim/devices/neware_stepfile.py``) is an independent implementation of this page.

Format (modelled on BTS 8 exports; element names as in BTS, scaling as listed)::

    <?xml version="1.0" encoding="UTF-8"?>
    <root>
      <config type="Step File" version="17" client_version="cell-grading-station">
        <Head_Info>
          <Operate Value="66" /> <Scale Value="1" /> <Start_Step Value="1" Hide_Ctrl_Step="0" />
          <Creator Value="cell-grading-station" /> <Remark Value="<step label>" />
        </Head_Info>
        <Whole_Prt>
          <Protect>
            <Main>
              <Volt><Upper Value="<0.1 mV>" /><Lower Value="<0.1 mV>" /></Volt>
              <Curr><Upper Value="<mA>" /><Lower Value="<-mA>" /></Curr>
              <Cap><Upper Value="<mA*s>" /></Cap>                 (optional)
            </Main>
            <Aux><Temp><Upper Value="<0.1 degC>" /></Temp></Aux>  (optional)
          </Protect>
          <Record>
            <Main><Time Value="<ms>" /><Volt Value="<0.1 mV>" /></Main>  (Volt = record on dV)
          </Record>
        </Whole_Prt>
        <Step_Info Num="2">
          <Step1 Step_ID="1" Step_Type="<code>">
            <Limit><Main> ...set-points and cut-offs... </Main></Limit>
          </Step1>
          <Step2 Step_ID="2" Step_Type="6" />
        </Step_Info>
      </config>
    </root>

Step_Type codes (BTS numbering): 1 CC charge, 2 CC discharge, 3 CV charge, 4 rest, 6 end,
7 CCCV charge, 19 CV discharge, 20 CCCV discharge.

``Limit/Main`` children (all optional, only those used are written):

==============  ========  ====================================================================
element         unit      meaning
==============  ========  ====================================================================
``Curr``        mA        current magnitude (CC/CCCV set-point; CV current limit)
``Volt``        0.1 mV    CV / CCCV hold voltage; for CC the clamp voltage
``Stop_Volt``   0.1 mV    voltage cut-off in the step's direction (charge: rising above,
                          discharge: falling below)
``Stop_Curr``   mA        end when the current magnitude falls below (CV, CCCV)
``Time``        ms        step duration limit
``Cap``         mA*s      end when the step's capacity magnitude reaches this
``Stop_dVdt``   uV/s      rest only: end when the voltage drift magnitude falls below
==============  ========  ====================================================================

Whole-programme protection trips put the channel in ``protect``; record settings apply to every
step of the file. Values are written as integers where BTS uses integers (0.1 mV, ms) and as
decimals (mA, mA*s) otherwise. The capacity unit (mA*s, as BTS ``MultCap``) and ``Stop_dVdt``
are this project's choices pending a check against a real BTS export (the real-device test).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

from drivers.errors import SettingError
from drivers.readings import CyclerStep, ProtectionLimits, StepMode

STEP_TYPE_CC_CHARGE = 1
STEP_TYPE_CC_DISCHARGE = 2
STEP_TYPE_CV_CHARGE = 3
STEP_TYPE_REST = 4
STEP_TYPE_END = 6
STEP_TYPE_CCCV_CHARGE = 7
STEP_TYPE_CV_DISCHARGE = 19
STEP_TYPE_CCCV_DISCHARGE = 20

CREATOR = "cell-grading-station"


def _tenth_mv(voltage_v: float) -> str:
    return str(round(voltage_v * 10_000))


def _decimal(value: float) -> str:
    # Six decimals keep nA (in mA) resolution, far below any cycler's current resolution.
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return text or "0"


def _milli(value: float) -> str:
    return _decimal(value * 1000.0)


def _ms(seconds: float) -> str:
    return str(round(seconds * 1000.0))


def _step_type(step: CyclerStep) -> int:
    if step.mode is StepMode.REST:
        return STEP_TYPE_REST
    charging = step.current_a > 0
    if step.mode is StepMode.CC:
        return STEP_TYPE_CC_CHARGE if charging else STEP_TYPE_CC_DISCHARGE
    if step.mode is StepMode.CCCV:
        return STEP_TYPE_CCCV_CHARGE if charging else STEP_TYPE_CCCV_DISCHARGE
    return STEP_TYPE_CV_CHARGE if charging else STEP_TYPE_CV_DISCHARGE


def _positive(name: str, value: float | None) -> None:
    if value is not None and (not math.isfinite(value) or value <= 0):
        raise SettingError(f"step field {name} must be a positive finite number, got {value!r}")


def validate_step(step: CyclerStep) -> None:
    """Raise :class:`SettingError` naming the field a BTS step file cannot express."""
    end = step.end
    for name in ("time_s", "current_below_a", "capacity_ah", "dvdt_below_v_per_s"):
        _positive(f"end.{name}", getattr(end, name))
    for name in ("voltage_above_v", "voltage_below_v"):
        _positive(f"end.{name}", getattr(end, name))
    _positive("voltage_v", step.voltage_v)
    _positive("record_interval_s", step.record_interval_s)
    _positive("record_delta_v", step.record_delta_v)
    if not math.isfinite(step.current_a):
        raise SettingError(f"step field current_a must be finite, got {step.current_a!r}")
    if step.mode is StepMode.REST:
        if step.current_a != 0:
            raise SettingError(f"a REST step carries no current, got current_a={step.current_a}")
        for name in ("voltage_above_v", "voltage_below_v", "current_below_a", "capacity_ah"):
            if getattr(end, name) is not None:
                raise SettingError(f"a BTS rest step cannot end on end.{name}")
        if end.time_s is None and end.dvdt_below_v_per_s is None:
            raise SettingError("a REST step needs end.time_s or end.dvdt_below_v_per_s")
        return
    if step.current_a == 0:
        raise SettingError(f"a {step.mode.name} step needs a non-zero current_a (sign = direction)")
    if end.dvdt_below_v_per_s is not None:
        raise SettingError("end.dvdt_below_v_per_s is only written for REST steps")
    charging = step.current_a > 0
    against = "voltage_below_v" if charging else "voltage_above_v"
    if getattr(end, against) is not None:
        direction = "charge" if charging else "discharge"
        raise SettingError(f"a BTS {direction} step cannot end on end.{against}")
    if step.mode in (StepMode.CCCV, StepMode.CV):
        if step.voltage_v is None:
            raise SettingError(f"a {step.mode.name} step needs voltage_v (the hold voltage)")
        along = "voltage_above_v" if charging else "voltage_below_v"
        if getattr(end, along) is not None:
            raise SettingError(f"a {step.mode.name} step holds voltage_v; end.{along} is not used")
    if step.mode is StepMode.CC and end.current_below_a is not None:
        raise SettingError("a CC step cannot end on end.current_below_a")
    if all(
        getattr(end, name) is None
        for name in (
            "time_s",
            "voltage_above_v",
            "voltage_below_v",
            "current_below_a",
            "capacity_ah",
        )
    ):
        raise SettingError(f"a {step.mode.name} step needs at least one end condition")


def validate_protection(limits: ProtectionLimits) -> None:
    """Raise :class:`SettingError` naming the field when the limits are not usable."""
    for name in ("voltage_min_v", "voltage_max_v", "current_max_a"):
        value = getattr(limits, name)
        if not math.isfinite(value) or value < 0:
            raise SettingError(f"protection {name} must be finite and >= 0, got {value!r}")
    if limits.voltage_max_v <= limits.voltage_min_v:
        raise SettingError(
            f"protection voltage_max_v ({limits.voltage_max_v}) must exceed "
            f"voltage_min_v ({limits.voltage_min_v})"
        )
    if limits.current_max_a <= 0:
        raise SettingError("protection current_max_a must be > 0")
    _positive("protection temperature_max_c", limits.temperature_max_c)
    _positive("protection capacity_max_ah", limits.capacity_max_ah)


def _value(parent: ET.Element, tag: str, value: str) -> ET.Element:
    return ET.SubElement(parent, tag, Value=value)


def build_step_file(step: CyclerStep, protection: ProtectionLimits) -> bytes:
    """Return the step file (UTF-8 XML bytes) for ``step`` under whole-programme ``protection``."""
    validate_step(step)
    validate_protection(protection)
    root = ET.Element("root")
    config = ET.SubElement(root, "config", type="Step File", version="17", client_version=CREATOR)
    head = ET.SubElement(config, "Head_Info")
    _value(head, "Operate", "66")
    _value(head, "Scale", "1")
    ET.SubElement(head, "Start_Step", Value="1", Hide_Ctrl_Step="0")
    _value(head, "Creator", CREATOR)
    _value(head, "Remark", step.label)

    whole = ET.SubElement(config, "Whole_Prt")
    protect = ET.SubElement(whole, "Protect")
    main = ET.SubElement(protect, "Main")
    volt = ET.SubElement(main, "Volt")
    _value(volt, "Upper", _tenth_mv(protection.voltage_max_v))
    _value(volt, "Lower", _tenth_mv(protection.voltage_min_v))
    curr = ET.SubElement(main, "Curr")
    _value(curr, "Upper", _milli(protection.current_max_a))
    _value(curr, "Lower", "-" + _milli(protection.current_max_a))
    if protection.capacity_max_ah is not None:
        cap = ET.SubElement(main, "Cap")
        _value(cap, "Upper", _milli(protection.capacity_max_ah * 3600.0))
    if protection.temperature_max_c is not None:
        aux = ET.SubElement(protect, "Aux")
        temp = ET.SubElement(aux, "Temp")
        _value(temp, "Upper", str(round(protection.temperature_max_c * 10)))
    record = ET.SubElement(ET.SubElement(whole, "Record"), "Main")
    _value(record, "Time", _ms(step.record_interval_s))
    if step.record_delta_v is not None:
        _value(record, "Volt", _tenth_mv(step.record_delta_v))

    info = ET.SubElement(config, "Step_Info", Num="2")
    work = ET.SubElement(info, "Step1", Step_ID="1", Step_Type=str(_step_type(step)))
    limit = ET.SubElement(ET.SubElement(work, "Limit"), "Main")
    end = step.end
    if step.mode is not StepMode.REST:
        _value(limit, "Curr", _milli(abs(step.current_a)))
    if step.voltage_v is not None:
        _value(limit, "Volt", _tenth_mv(step.voltage_v))
    stop_volt = end.voltage_above_v if end.voltage_above_v is not None else end.voltage_below_v
    if stop_volt is not None:
        _value(limit, "Stop_Volt", _tenth_mv(stop_volt))
    if end.current_below_a is not None:
        _value(limit, "Stop_Curr", _milli(end.current_below_a))
    if end.time_s is not None:
        _value(limit, "Time", _ms(end.time_s))
    if end.capacity_ah is not None:
        _value(limit, "Cap", _milli(end.capacity_ah * 3600.0))
    if end.dvdt_below_v_per_s is not None:
        _value(limit, "Stop_dVdt", _decimal(end.dvdt_below_v_per_s * 1e6))
    ET.SubElement(info, "Step2", Step_ID="2", Step_Type=str(STEP_TYPE_END))

    ET.indent(root, space="  ")
    body = ET.tostring(root, encoding="unicode")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n").encode("utf-8")


def write_step_file(path: Path, step: CyclerStep, protection: ProtectionLimits) -> Path:
    """Write the file atomically (temp + rename) so the cabinet never reads half a file."""
    data = build_step_file(step, protection)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path
