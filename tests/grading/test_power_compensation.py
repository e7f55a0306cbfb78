"""Pulse power at 20/50/80 % SOC against an analytic RC cell; Arrhenius defaults per chemistry."""

from __future__ import annotations

import math
import tomllib

import numpy as np
import pytest

from station.grading.compensation import (
    GAS_CONSTANT_J_PER_MOL_K,
    activation_energies,
    compensate_to_25c,
    parse_activation_energies,
)
from station.grading.metrics import (
    CellInputs,
    MeasurementConditions,
    cell_metrics,
    pulse_power_key,
)
from station.grading.profiles import CHEMISTRY_FILE, PROFILE_DIR
from station.grading.results import METRIC_UNITS, Figure, Quality
from station.grading.soh import Reference
from station.grading.timeseries import TimeSeries
from tests.grading.cellmodel import RcCell

R0, R1, TAU, CAP = 0.03, 0.02, 20.0, 2.0
I_DIS, I_REGEN = -2.0, 1.5  # regen at 75 % of the discharge current, as the HPPC manuals do
V_MIN, V_MAX = 2.5, 4.2  # the nmc preset's limits


def hppc_run(temperature_c: float = 25.0) -> tuple[TimeSeries, list[dict[str, float]]]:
    """CC-CV to full, then nine 10 %-of-rated DOD steps, each followed by a 10 s discharge and a
    10 s regen pulse after long rests. Returns the series and, per pulse, what the model knows:
    direction, SOC at the pulse start, rest voltage, and the exact R(10 s) = dV/dI of the
    model (R0 + R1 (1 - e^(-10/tau)) plus the OCV change over the charge the pulse moved)."""
    cell = RcCell(capacity_ah=CAP, r0_ohm=R0, r1_ohm=R1, tau1_s=TAU, soc=0.3)
    cell.cc_until(1.0, 4.1, 1.0)
    cell.cv_hold(4.1, 0.01, 1.0)
    truth: list[dict[str, float]] = []
    # The station counts SOC from the end of the CV charge; so does this record.
    full_soc = cell.soc
    for _ in range(9):
        cell.hold(0.0, 600.0, 10.0)
        cell.hold(-1.0, 0.1 * CAP * 3600 / 1.0, 5.0)
        for current in (I_DIS, I_REGEN):
            cell.hold(0.0, 600.0, 10.0)  # 30 tau: the RC voltage is gone (e^-30)
            soc0 = cell.soc
            rest_v = cell.v[-1]
            cell.hold(current, 10.0, 0.1)
            d_ocv = cell.ocv(cell.soc) - cell.ocv(soc0)
            r10 = R0 + R1 * (1 - math.exp(-10.0 / TAU)) + d_ocv / current
            truth.append(
                {
                    "discharge": float(current < 0),
                    "soc": 1.0 + (soc0 - full_soc),
                    "rest_v": rest_v,
                    "r10": r10,
                }
            )
    cell.hold(0.0, 600.0, 10.0)
    t, v, i, step = cell.arrays()
    temps = np.full(len(t), temperature_c)
    return TimeSeries.from_arrays(t, v, i, temperature_c=temps, step_count=step), truth


def test_pulse_power_at_20_50_80_soc_matches_the_rc_cell() -> None:
    ts, truth = hppc_run()
    reference = Reference(rated_capacity_ah=CAP)
    metrics = cell_metrics(CellInputs("hppc", "nmc", reference), ts)
    for soc_pct in (20, 50, 80):
        for direction, discharge, limit in (("discharge", 1.0, V_MIN), ("regen", 0.0, V_MAX)):
            pick = min(
                (p for p in truth if p["discharge"] == discharge),
                key=lambda p: abs(p["soc"] - soc_pct / 100),
            )
            if discharge:
                expected = limit * (pick["rest_v"] - limit) / pick["r10"]
            else:
                expected = limit * (limit - pick["rest_v"]) / pick["r10"]
            figure = metrics.figures[pulse_power_key(direction, soc_pct)]
            assert figure.ok, (direction, soc_pct, figure)
            assert METRIC_UNITS[pulse_power_key(direction, soc_pct)] == figure.unit == "W"
            # Samples fall on t0 + 10 s and the OCV is piecewise linear: only float rounding
            # separates the two (1e-9 relative).
            assert figure.value == pytest.approx(expected, rel=1e-9), (direction, soc_pct)
            # sigma(P)/P = sigma(R)/R with sigma(R) = sqrt(2) * 0.1 mV / |I|.
            current = abs(I_DIS if discharge else I_REGEN)
            sigma_r = math.sqrt(2) * 1e-4 / current
            assert figure.uncertainty == pytest.approx(expected * sigma_r / pick["r10"], rel=1e-6)
    # The capability at the limit is far above the test pulse's own power (V_end x |I|).
    assert metrics.figures[pulse_power_key("discharge", 50)].value > 5 * 3.7 * abs(I_DIS)


def test_an_aged_cells_pulse_soc_counts_against_its_measured_capacity() -> None:
    """A cell rated twice what it holds (SoH 50 %): with the measured capacity given, each pulse
    keeps its SOC of what the cell holds, so the figures equal those of a cell rated at its
    capacity (exact: the same arrays). Counted against the rated capacity instead, the pulses sit
    at 55-95 % of rated and no pulse is near 20 %, so the figure is missing."""
    ts, _ = hppc_run()
    as_rated = cell_metrics(CellInputs("hppc", "nmc", Reference(rated_capacity_ah=CAP)), ts)
    aged = CellInputs("hppc", "nmc", Reference(rated_capacity_ah=2 * CAP))
    measured = {"capacity_ah": Figure(CAP, "Ah", CAP * 1e-3)}
    with_capacity = cell_metrics(aged, ts, extra=measured)
    by_rated = cell_metrics(aged, ts)
    key = pulse_power_key("discharge", 20)
    assert with_capacity.figures[key].value == as_rated.figures[key].value
    assert with_capacity.figures[key].ok
    assert not by_rated.figures[key].ok


def test_power_fade_against_bol_names_the_worst_soc() -> None:
    ts, _ = hppc_run()
    plain = cell_metrics(CellInputs("hppc", "nmc", Reference(rated_capacity_ah=CAP)), ts)
    p20 = plain.figures[pulse_power_key("discharge", 20)].value
    p80 = plain.figures[pulse_power_key("regen", 80)].value
    bol = {
        pulse_power_key("discharge", 20): p20 / 0.8,  # 20 % fade by construction
        pulse_power_key("regen", 80): p80 / 0.9,  # 10 % fade
    }
    metrics = cell_metrics(
        CellInputs("hppc", "nmc", Reference(rated_capacity_ah=CAP, bol_pulse_power_w=bol)), ts
    )
    assert metrics.figures["power_fade_discharge_soc20_pct"].value == pytest.approx(20.0, rel=1e-9)
    assert metrics.figures["power_fade_regen_soc80_pct"].value == pytest.approx(10.0, rel=1e-9)
    worst = metrics.figures["power_fade_pct"]
    assert worst.value == pytest.approx(20.0, rel=1e-9)
    assert "discharge_soc20" in worst.note
    assert "power_fade_pct" not in plain.figures  # no BOL value, no fade figure
    with pytest.raises(ValueError, match="names no pulse-power figure"):
        cell_metrics(
            CellInputs("x", "nmc", Reference(rated_capacity_ah=CAP, bol_pulse_power_w={"p": 1.0})),
            ts,
        )


def test_no_pulse_near_a_soc_point_gives_nan_not_a_neighbour() -> None:
    ts, _ = hppc_run()
    cond = MeasurementConditions(pulse_soc_window=0.001)  # pulses sit ~0.5 % off the points
    metrics = cell_metrics(CellInputs("hppc", "nmc", Reference(rated_capacity_ah=CAP)), ts, cond)
    figure = metrics.figures[pulse_power_key("discharge", 50)]
    assert math.isnan(figure.value) and "0.1 % of 50 % SOC" in figure.note


@pytest.mark.parametrize("chemistry", ["nmc", "nca", "lfp"])
@pytest.mark.parametrize("temperature_c", [0.0, 15.0, 24.0, 35.0, 45.0])
def test_default_activation_energy_compensates_back_to_r25(
    chemistry: str, temperature_c: float
) -> None:
    ea = activation_energies()[chemistry]
    assert ea.value is not None
    r25 = 0.0213
    t_k = temperature_c + 273.15
    # R(T) generated independently with the known Ea: R = R25 exp[(Ea/R_g)(1/T - 1/298.15)].
    r_t = r25 * math.exp(ea.value / GAS_CONSTANT_J_PER_MOL_K * (1 / t_k - 1 / 298.15))
    back = compensate_to_25c(
        Figure(r_t, "ohm", 1e-5), temperature_c, ea.value, ea_uncertainty_j_per_mol=ea.uncertainty
    )
    assert back.value == pytest.approx(r25, rel=1e-9)
    # sigma combines the reading (scaled) and sigma(Ea) through |1/298.15 - 1/T| / R_g.
    sens = abs(1 / 298.15 - 1 / t_k) / GAS_CONSTANT_J_PER_MOL_K
    expected = math.hypot(1e-5 * r25 / r_t, r25 * sens * ea.uncertainty)
    assert back.uncertainty == pytest.approx(expected, rel=1e-9)


def test_cell_metrics_use_the_chemistry_default_and_refuse_without_one() -> None:
    ts, truth = hppc_run(temperature_c=35.0)
    dcir = {}
    for chemistry in ("nmc", "lfp", "sodium-ion", "lto"):
        metrics = cell_metrics(CellInputs("c", chemistry, Reference(rated_capacity_ah=CAP)), ts)
        dcir[chemistry] = (metrics.figures["dcir_10s_ohm"], metrics.figures["dcir_10s_25c_ohm"])
        power = metrics.figures[pulse_power_key("discharge", 50)]
        if chemistry == "lto":  # no voltage limits in the chemistry presets
            assert Quality.MISSING_REFERENCE in power.flags and math.isnan(power.value)
        else:  # reported at the measured temperature, flagged outside the 20-30 C window
            assert Quality.TEMPERATURE_OUT_OF_WINDOW in power.flags and power.value > 0
    for chemistry in ("nmc", "lfp"):
        raw, r25 = dcir[chemistry]
        ea = activation_energies()[chemistry].value
        assert ea is not None
        factor = math.exp(ea / GAS_CONSTANT_J_PER_MOL_K * (1 / 298.15 - 1 / 308.15))
        assert r25.value == pytest.approx(raw.value * factor, rel=1e-12)
        assert f"{chemistry} default" in r25.note
    for chemistry in ("sodium-ion", "lto"):  # no Ea and 10 K from 25 C: refused, with why
        _, r25 = dcir[chemistry]
        assert math.isnan(r25.value)
        assert Quality.NOT_TEMPERATURE_COMPENSATED in r25.flags
        assert "no activation energy" in r25.note
        assert activation_energies()[chemistry].source in r25.note  # says why there is none
    # A calibrated Ea for the cell type overrides the chemistry default.
    cond = MeasurementConditions(activation_energy_j_per_mol=20e3)
    calibrated = cell_metrics(
        CellInputs("c", "sodium-ion", Reference(rated_capacity_ah=CAP)), ts, cond
    ).figures["dcir_10s_25c_ohm"]
    assert calibrated.ok and "calibrated" in calibrated.note


def test_every_chemistry_preset_has_a_sourced_activation_energy_entry() -> None:
    presets = tomllib.loads((PROFILE_DIR / CHEMISTRY_FILE).read_text())
    table = activation_energies()
    assert set(presets) <= set(table)
    assert table["lto"].value is None  # explicitly none
    for entry in table.values():
        assert entry.source.strip()
        if entry.value is not None:
            assert 10e3 <= entry.value <= 100e3 and 0 < entry.uncertainty < entry.value


def test_activation_energy_table_is_validated() -> None:
    with pytest.raises(ValueError, match="source"):
        parse_activation_energies("[x]\nactivation_energy_j_per_mol = 1e4\n")
    with pytest.raises(ValueError, match="reason"):
        parse_activation_energies('[x]\nsource = "s"\n')
    with pytest.raises(ValueError, match="positive"):
        parse_activation_energies(
            '[x]\nactivation_energy_j_per_mol = -1.0\nuncertainty_j_per_mol = 0\nsource = "s"\n'
        )
