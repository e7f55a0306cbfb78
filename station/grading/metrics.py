"""From one cell's time series to its :class:`CellMetrics`, with data-quality flags.

This is the glue the engine calls after a grading run: capacity and energy of the reference
discharge, RTE and CE of that cycle, SoH/fade figures, DCIR (10 s) referred to 25 C, resistance
increase, pulse power at 20/50/80 % SOC with its fade against BOL, and the final rest OCV.
Flags (grading.md section 7 row 28): sample interval, cell temperature outside the window, CV
cut-off not reached before the reference discharge, rest too short or not relaxed, no
temperature recorded, no reference value.

Uncertainties: charge and energy carry the cycler's current accuracy (``current_accuracy_rel``,
relative standard uncertainty; the time base is far better and is neglected); DCIR carries
the voltage accuracy of its two readings (``voltage_accuracy_v``, standard uncertainty) over
the pulse current, combined with the spread of the pulses it is the median of.

Pulse power (grading.md section 7 row 15, USABC HPPC): the power the cell can give (discharge)
or take (regen) at its voltage limit, from the 10 s DCIR of the HPPC pulse nearest each SOC
point: P_dis = V_min (OCV - V_min) / R_dis, P_regen = V_max (V_max - OCV) / R_chg, with OCV the
rest voltage before that pulse. Not V_end x |I|: that is the power of the test pulse, which
says nothing about what the cell could deliver at its limit.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import cache

import numpy as np

from station.grading.compensation import activation_energy_for, compensate_to_25c
from station.grading.ocv import rest_ocv
from station.grading.profiles import CHEMISTRY_FILE, PROFILE_DIR
from station.grading.pulses import Pulse, analyze_pulses, pulse_power_w
from station.grading.results import CellMetrics, Figure, Quality
from station.grading.soh import Reference, fade_pct, health_figures
from station.grading.timeseries import StepKind, StepTable, TimeSeries, step_table

NAN = float("nan")


@dataclass(frozen=True)
class MeasurementConditions:
    """What a figure must have been measured under to count without a flag."""

    temperature_window_c: tuple[float, float] = (20.0, 30.0)
    cv_cutoff_a: float | None = None
    max_sample_interval_s: float = 30.0
    min_rest_s: float = 1800.0
    current_accuracy_rel: float = 0.001
    voltage_accuracy_v: float = 1e-4
    activation_energy_j_per_mol: float | None = None
    v_min_v: float | None = None
    v_max_v: float | None = None
    pulse_soc_window: float = 0.05


#: SOC points (percent) of the pulse-power figures, as DIN DKE SPEC 99100 asks for 20 and 80 %.
PULSE_POWER_SOC_PCT: tuple[int, ...] = (20, 50, 80)


def pulse_power_key(direction: str, soc_pct: int) -> str:
    """Metric name of a pulse-power figure, e.g. ``pulse_power_discharge_soc20_w``."""
    return f"pulse_power_{direction}_soc{soc_pct}_w"


@cache
def _chemistry_presets() -> dict[str, dict[str, object]]:
    with (PROFILE_DIR / CHEMISTRY_FILE).open("rb") as handle:
        return tomllib.load(handle)


def _voltage_limits(
    chemistry: str, cond: MeasurementConditions
) -> tuple[float | None, float | None]:
    """(V_min, V_max) in V: the conditions' (datasheet) values, else the chemistry preset's."""
    preset = _chemistry_presets().get(chemistry.lower(), {})
    low, high = preset.get("min_voltage_v"), preset.get("max_voltage_v")
    v_min = cond.v_min_v if cond.v_min_v is not None else low
    v_max = cond.v_max_v if cond.v_max_v is not None else high
    return (
        float(v_min) if isinstance(v_min, int | float) else None,
        float(v_max) if isinstance(v_max, int | float) else None,
    )


@dataclass(frozen=True)
class CellInputs:
    """Intake facts about a cell (identity, chemistry, datasheet/BOL references, checklist)."""

    cell_id: str
    chemistry: str
    reference: Reference
    facts: dict[str, bool] = field(default_factory=dict)


def _last_full_cycle(steps: StepTable) -> tuple[int, int] | None:
    """(charge step, discharge step) of the last non-pulse charge followed by a non-pulse
    discharge."""
    charge = None
    found = None
    for k, kind in enumerate(steps.kind):
        if kind.is_pulse or kind is StepKind.REST:
            continue
        if kind.is_charge:
            charge = k
        elif kind.is_discharge and charge is not None:
            found = (charge, k)
            charge = None
    return found


def _flags_for(ts: TimeSeries, start: int, end: int, cond: MeasurementConditions) -> set[Quality]:
    flags: set[Quality] = set()
    dt = np.diff(ts.t_s[start:end])
    if len(dt) and float(np.median(dt)) > cond.max_sample_interval_s:
        flags.add(Quality.SAMPLING_TOO_COARSE)
    if ts.temperature_c is None:
        flags.add(Quality.NO_TEMPERATURE)
    else:
        temp = float(np.nanmean(ts.temperature_c[start:end]))
        low, high = cond.temperature_window_c
        if not low <= temp <= high:
            flags.add(Quality.TEMPERATURE_OUT_OF_WINDOW)
    return flags


def _nearest_pulse(pulses: list[Pulse], soc: float, discharge: bool, window: float) -> Pulse | None:
    """The pulse of that direction whose start SOC is nearest ``soc``, within ``window``."""
    near = [
        p
        for p in pulses
        if p.is_discharge == discharge and abs(p.soc - soc) <= window and p.dcir_ohm["10"].ok
    ]
    return min(near, key=lambda p: abs(p.soc - soc)) if near else None


def pulse_power_figures(
    pulses: list[Pulse],
    v_min_v: float | None,
    v_max_v: float | None,
    cond: MeasurementConditions,
) -> dict[str, Figure]:
    """Discharge and regen pulse power (W) at each SOC of ``PULSE_POWER_SOC_PCT``.

    The standard uncertainty follows that of R(10 s) (two voltage readings over the pulse
    current); the limits and the rest voltage enter as exact, being a datasheet value and a
    reading taken at rest. Flagged when the pulse's cell temperature is unknown or outside
    ``cond.temperature_window_c``.
    """
    out: dict[str, Figure] = {}
    low_c, high_c = cond.temperature_window_c
    for soc_pct in PULSE_POWER_SOC_PCT:
        for direction, discharge, limit in (
            ("discharge", True, v_min_v),
            ("regen", False, v_max_v),
        ):
            key = pulse_power_key(direction, soc_pct)
            if limit is None:
                out[key] = Figure(
                    NAN,
                    "W",
                    flags=frozenset({Quality.MISSING_REFERENCE}),
                    note="no voltage limit for this chemistry",
                )
                continue
            pulse = _nearest_pulse(pulses, soc_pct / 100.0, discharge, cond.pulse_soc_window)
            if pulse is None:
                out[key] = Figure(
                    NAN,
                    "W",
                    note=f"no usable 10 s {direction} pulse within "
                    f"{cond.pulse_soc_window * 100:g} % of {soc_pct} % SOC",
                )
                continue
            r = pulse.dcir_ohm["10"].value
            power = pulse_power_w(pulse.rest_voltage_v, r, limit, discharge)
            sigma_r = np.sqrt(2.0) * cond.voltage_accuracy_v / abs(pulse.current_a)
            # Power is reported at the temperature it was measured at: flag it when that is
            # unknown or outside the window, since resistance, and so power, depends on it.
            flags: set[Quality] = set()
            if pulse.temperature_c != pulse.temperature_c:
                flags.add(Quality.NO_TEMPERATURE)
            elif not low_c <= pulse.temperature_c <= high_c:
                flags.add(Quality.TEMPERATURE_OUT_OF_WINDOW)
            out[key] = Figure(
                power,
                "W",
                abs(power) * sigma_r / r,
                frozenset(flags),
                note=f"R(10 s) {r * 1e3:.3f} mOhm, OCV {pulse.rest_voltage_v:.4f} V at "
                f"{pulse.soc * 100:.1f} % SOC, limit {limit:g} V",
            )
    return out


def power_fade_key(direction: str, soc_pct: int) -> str:
    """Metric name of a power-fade figure, e.g. ``power_fade_discharge_soc20_pct``."""
    return f"power_fade_{direction}_soc{soc_pct}_pct"


def power_fade_figures(power: dict[str, Figure], bol_w: dict[str, float]) -> dict[str, Figure]:
    """Power fade (1 - P / P_BOL) * 100 per pulse-power figure with a BOL value, and
    ``power_fade_pct``: the largest of them, the SOC point the cell has lost most at."""
    out: dict[str, Figure] = {}
    known = set()
    for soc_pct in PULSE_POWER_SOC_PCT:
        for direction in ("discharge", "regen"):
            key = pulse_power_key(direction, soc_pct)
            known.add(key)
            if key in bol_w and key in power:
                out[power_fade_key(direction, soc_pct)] = fade_pct(power[key], bol_w[key])
    unknown = sorted(set(bol_w) - known)
    if unknown:
        raise ValueError(f"BOL pulse power {unknown[0]!r} names no pulse-power figure")
    usable = {k: f for k, f in out.items() if f.value == f.value}
    if usable:
        worst = max(usable, key=lambda k: usable[k].value)
        figure = usable[worst]
        out["power_fade_pct"] = Figure(
            figure.value, "%", figure.uncertainty, figure.flags, note=f"largest fade: {worst}"
        )
    elif out:
        out["power_fade_pct"] = Figure(NAN, "%", note="no pulse power at a SOC with a BOL value")
    return out


def _to_25c(
    dcir: Figure, temp: float | None, chemistry: str, cond: MeasurementConditions
) -> Figure:
    """DCIR referred to 25 C with the calibrated Ea of the conditions, else the chemistry's
    default from ``activation-energies.toml`` (with its uncertainty), else refused far from 25 C."""
    if cond.activation_energy_j_per_mol is not None:
        return compensate_to_25c(
            dcir, temp, cond.activation_energy_j_per_mol, ea_source="calibrated for the cell type"
        )
    preset = activation_energy_for(chemistry)
    if preset is None:
        return compensate_to_25c(dcir, temp, None)
    if preset.value is None:
        return compensate_to_25c(dcir, temp, None, ea_source=preset.source)
    return compensate_to_25c(
        dcir,
        temp,
        preset.value,
        ea_uncertainty_j_per_mol=preset.uncertainty,
        ea_source=f"{preset.chemistry} default, activation-energies.toml",
    )


def _soc_capacity_ah(extra: dict[str, Figure] | None, cell: CellInputs) -> float | None:
    """Capacity (Ah) that pulse SOCs are counted against: the caller's measured reference
    capacity when given (the station's recipes position HPPC points with it, and an aged cell's
    SOC is a fraction of what it holds), else the rated capacity, as the HPPC manuals step it
    (10 % DOD of rated each). The series' own last charge/discharge pair is not used: in an
    HPPC series it is a partial SOC move."""
    measured = (extra or {}).get("capacity_ah")
    if measured is not None and measured.value == measured.value and measured.value > 0:
        return measured.value
    return cell.reference.rated_capacity_ah


def cell_metrics(
    cell: CellInputs,
    ts: TimeSeries,
    conditions: MeasurementConditions | None = None,
    extra: dict[str, Figure] | None = None,
) -> CellMetrics:
    """Every figure the grading profiles use that a time series can give; ``extra`` adds
    figures measured elsewhere (ACIR, K-value, hold days) and overrides computed ones."""
    cond = conditions or MeasurementConditions()
    steps = step_table(ts)
    figures: dict[str, Figure] = {}
    pair = _last_full_cycle(steps)
    capacity = Figure(
        NAN,
        "Ah",
        flags=frozenset({Quality.MISSING_REFERENCE}),
        note="no charge followed by a discharge",
    )
    energy = Figure(NAN, "Wh", flags=capacity.flags)
    rte = Figure(NAN, "1", flags=capacity.flags)
    if pair is not None:
        ch, dis = pair
        flags = _flags_for(ts, int(steps.start_row[dis]), int(steps.end_row[dis]), cond)
        charge_flags = set(flags)
        if cond.cv_cutoff_a is not None and abs(float(steps.i_end_a[ch])) > 1.05 * cond.cv_cutoff_a:
            charge_flags.add(Quality.CV_CUTOFF_NOT_REACHED)
        q_dis = float(steps.discharge_ah[dis])
        e_dis = float(steps.discharge_wh[dis])
        # The charge may be split into CC and CV steps: sum the charge steps before dis.
        first = ch
        while first > 0 and steps.kind[first - 1].is_charge and not steps.kind[first - 1].is_pulse:
            first -= 1
        q_ch = float(np.sum(steps.charge_ah[first : ch + 1]))
        e_ch = float(np.sum(steps.charge_wh[first : ch + 1]))
        rel = cond.current_accuracy_rel
        all_flags = frozenset(flags | charge_flags)
        capacity = Figure(q_dis, "Ah", q_dis * rel, frozenset(charge_flags))
        energy = Figure(e_dis, "Wh", e_dis * rel, frozenset(charge_flags))
        rte_value = e_dis / e_ch if e_ch > 0 else NAN
        rte = Figure(rte_value, "1", rte_value * rel * np.sqrt(2), all_flags)
        ce = q_dis / q_ch if q_ch > 0 else NAN
        figures["coulombic_efficiency"] = Figure(ce, "1", ce * rel * np.sqrt(2), all_flags)
    figures["capacity_ah"] = capacity
    figures["energy_wh"] = energy
    figures["rte"] = rte
    pulses = analyze_pulses(ts, steps, capacity_ah=_soc_capacity_ah(extra, cell))
    used = [p for p in pulses if p.is_discharge and p.dcir_ohm["10"].ok]
    r10 = [p.dcir_ohm["10"] for p in used]
    temps = [p.temperature_c for p in used]
    if r10:
        values = np.array([f.value for f in r10])
        # Two voltage readings per value: sqrt(2) * accuracy / |I|, combined with the spread of
        # the pulses when there are several.
        reading = float(
            np.sqrt(2.0) * cond.voltage_accuracy_v / min(abs(p.current_a) for p in used)
        )
        spread = float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0
        sigma = float(np.hypot(reading, spread))
        dcir = Figure(
            float(np.median(values)),
            "ohm",
            sigma,
            note=f"median of {len(values)} discharge pulse(s) at 10 s",
        )
        temp = float(np.nanmean(temps)) if temps and not np.all(np.isnan(temps)) else None
        figures["dcir_10s_ohm"] = dcir
        figures["dcir_10s_25c_ohm"] = _to_25c(dcir, temp, cell.chemistry, cond)
    else:
        figures["dcir_10s_ohm"] = Figure(NAN, "ohm", note="no usable 10 s discharge pulse")
        figures["dcir_10s_25c_ohm"] = figures["dcir_10s_ohm"]
    last = len(steps) - 1
    if steps.kind[last] is StepKind.REST:
        s, e = int(steps.start_row[last]), int(steps.end_row[last])
        if e - s >= 2:
            figures["ocv_v"] = rest_ocv(ts.t_s[s:e], ts.voltage_v[s:e], min_rest_s=cond.min_rest_s)
    v_min, v_max = _voltage_limits(cell.chemistry, cond)
    power = pulse_power_figures(pulses, v_min, v_max, cond)
    figures.update(power)
    figures.update(power_fade_figures(power, cell.reference.bol_pulse_power_w))
    figures.update(extra or {})
    figures.update(
        health_figures(
            cell.reference,
            capacity=figures["capacity_ah"],
            energy=figures["energy_wh"],
            rte=figures["rte"],
            resistance_25c=figures["dcir_10s_25c_ohm"],
        )
    )
    return CellMetrics(cell.cell_id, cell.chemistry, figures, dict(cell.facts))
