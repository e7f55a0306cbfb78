"""A representative graded batch built from synthetic raw data, for the passport tests.

Each cell gets a raw time series (CC-CV charge is not modelled; a rest, a C/3 discharge to Vmin, a
rest, a 10 s pulse and a C/3 recharge) generated from an OCV curve and a series resistance, and its
record values are computed from those arrays here, with numpy. The recomputation check in
``station.reports.recompute`` must reproduce them from the arrays with its own code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np

from station.passport.rawdata import RawSeries
from station.passport.record import (
    CLAUSES,
    BatteryStatus,
    CellIdentity,
    Conditions,
    GradeOutcome,
    GradingRecord,
    Instrument,
    PassportValue,
    RecordBuilder,
    Source,
    raw_data_sha256,
)

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
RATED_AH = 5.0
RATED_WH = 18.0


@dataclass(frozen=True)
class GradedCell:
    record: GradingRecord
    raw: RawSeries
    capacity_ah: float
    energy_wh: float
    dcir_ohm: float
    eis_frequency_hz: np.ndarray
    eis_z: np.ndarray
    eis_fit_z: np.ndarray


def ocv_v(soc: np.ndarray) -> np.ndarray:
    """A smooth NMC-like open-circuit voltage curve, 3.0 V empty to 4.18 V full."""
    return (
        3.0
        + 0.85 * soc
        + 0.23 * np.tanh(12.0 * (soc - 0.08))
        + 0.08 * np.tanh(20.0 * (soc - 0.6))
        - 0.05 * np.exp(-40 * soc)
    )


def synth_raw(capacity_ah: float, r_ohm: float, t0: datetime) -> RawSeries:
    """Rest 60 s, C/3 discharge to empty, rest 600 s, 10 s 1C pulse at rest, C/3 charge."""
    i_dis = -RATED_AH / 3.0
    dt = 10.0
    t_dis = capacity_ah / abs(i_dis) * 3600.0
    pieces_t: list[np.ndarray] = []
    pieces_i: list[np.ndarray] = []
    pieces_step: list[np.ndarray] = []
    t = 0.0
    for step, (duration, current, step_dt) in enumerate(
        ((60.0, 0.0, dt), (t_dis, i_dis, dt), (600.0, 0.0, dt), (10.0, -RATED_AH, 0.1))
    ):
        n = round(duration / step_dt)
        pieces_t.append(t + step_dt * np.arange(1, n + 1))
        pieces_i.append(np.full(n, current))
        pieces_step.append(np.full(n, step + 1))
        t += n * step_dt
    t_chg = capacity_ah / abs(i_dis) * 3600.0
    n = round(t_chg / dt)
    pieces_t.append(t + dt * np.arange(1, n + 1))
    pieces_i.append(np.full(n, -i_dis))
    pieces_step.append(np.full(n, 5))
    t_s = np.concatenate([np.array([0.0]), *pieces_t])
    current_a = np.concatenate([np.array([0.0]), *pieces_i])
    step_index = np.concatenate([np.array([1]), *pieces_step])
    charge_ah = np.concatenate([[0.0], np.cumsum(current_a[1:] * np.diff(t_s))]) / 3600.0
    soc = np.clip(1.0 + charge_ah / capacity_ah, 0.0, 1.0)
    voltage_v = ocv_v(soc) + r_ohm * current_a
    temperature_c = 25.0 + 0.4 * np.abs(current_a) / RATED_AH + 0.01 * np.sin(t_s / 500.0)
    return RawSeries(
        t_s=t_s,
        voltage_v=voltage_v,
        current_a=current_a,
        temperature_c=temperature_c,
        step_index=step_index.astype(float),
        unix_start_s=t0.timestamp(),
    )


def _trapz(y: np.ndarray, x: np.ndarray) -> float:
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2.0)


INSTRUMENTS = (
    Instrument(
        key="cycler",
        make="Neware",
        model="BTS-4000 5V6A",
        serial="NW-220914-07",
        firmware="7.6.0",
        calibration_certificate="CAL-2026-0412",
        calibration_due=date(2027, 4, 12),
    ),
    Instrument(
        key="acir",
        make="HIOKI",
        model="BT3562",
        serial="230511204",
        firmware="V1.07",
        calibration_certificate="CAL-2026-0388",
        calibration_due=date(2026, 10, 1),
    ),
)


def graded_cell(index: int, seed: int = 7) -> GradedCell:
    rng = np.random.default_rng(seed * 1000 + index)
    true_capacity = RATED_AH * rng.uniform(0.55, 0.97)
    r_ohm = rng.uniform(0.018, 0.045)
    start = T0 + timedelta(hours=12 * index)
    raw = synth_raw(true_capacity, r_ohm, start)
    discharge = raw.step_index == 2
    charge = raw.step_index == 5
    # The first sample of a step belongs to it; include the sample before it as the step start.
    dis_idx = np.flatnonzero(discharge)
    dis = np.concatenate([[dis_idx[0] - 1], dis_idx])
    chg_idx = np.flatnonzero(charge)
    chg = np.concatenate([[chg_idx[0] - 1], chg_idx])
    capacity_ah = -_trapz(raw.current_a[dis], raw.t_s[dis]) / 3600.0
    energy_wh = -_trapz(raw.current_a[dis] * raw.voltage_v[dis], raw.t_s[dis]) / 3600.0
    energy_in_wh = _trapz(raw.current_a[chg] * raw.voltage_v[chg], raw.t_s[chg]) / 3600.0
    pulse = np.flatnonzero(raw.step_index == 4)
    before = pulse[0] - 1
    dcir_ohm = (raw.voltage_v[before] - raw.voltage_v[pulse[-1]]) / (
        raw.current_a[before] - raw.current_a[pulse[-1]]
    )
    dcir_ohm = abs(float(dcir_ohm))
    soh = capacity_ah / RATED_AH * 100
    grade = "A" if soh >= 85 else "B" if soh >= 75 else "C" if soh >= 65 else "R"
    reasons = {
        "A": ("capacity at or above 85 % of rated",),
        "B": ("capacity between 75 % and 85 % of rated",),
        "C": ("capacity between 65 % and 75 % of rated",),
        "R": ("capacity below 65 % of rated", "rejected for second life"),
    }[grade]
    status = BatteryStatus.WASTE if grade == "R" else BatteryStatus.REPURPOSED
    serial = f"EVM-{seed:02d}-{index:04d}"
    cell = CellIdentity(
        passport_id=f"urn:uuid:00000000-0000-4000-8000-{index:012d}",
        serial_number=serial,
        manufacturer_name="Example Cells GmbH",
        manufacturer_identifier="BPNL000000000EXC",
        model="NMC-5Ah-21700",
        chemistry="NMC811/graphite",
        date_of_manufacture=date(2019, 3, 14),
        date_of_putting_into_service=date(2019, 6, 1),
        facility_identifier="urn:facility:example:plant-2",
        address_street="Industriestrasse 1",
        address_zip="70173",
        address_city="Stuttgart",
        address_country="DE",
        warranty_period="P8Y",
        markings=(("CE", "https://example.com/marking/ce.pdf"),),
        declarations_of_conformity=("DoC-NMC-5Ah-2019",),
        compliance_test_reports=("UN38.3-TR-4471",),
    )
    finished = start + timedelta(seconds=float(raw.t_s[-1]))
    builder = RecordBuilder(
        record_id=f"rec-{seed:02d}-{index:04d}",
        test_id=f"test-{seed:02d}-{index:04d}",
        cell=cell,
        grade=GradeOutcome(
            grade, grade if grade != "R" else "reject", reasons, "second-life", "1.2.0"
        ),
        operator="j.doe",
        station_id="bench-01",
        started_at=start,
        finished_at=finished,
        raw_data_sha256=raw_data_sha256(raw.columns()),
        status=status,
        original_passport_id=f"urn:uuid:11111111-0000-4000-8000-{index:012d}",
        software_version="0.1.0",
    )
    for instrument in INSTRUMENTS:
        builder.instrument(instrument)
    ref = Conditions(temperature_c=25.0, c_rate=1 / 3, rest_s=60.0)
    at = start + timedelta(seconds=float(raw.t_s[dis[-1]]))
    builder.datasheet("6.7.2.2", RATED_AH, origin="datasheet NMC-5Ah rev C", observed_at=T0)
    builder.datasheet("6.7.2.5", RATED_WH / 1000, origin="datasheet NMC-5Ah rev C", observed_at=T0)
    builder.datasheet("6.7.4.2", 97.5, origin="datasheet NMC-5Ah rev C", observed_at=T0)
    builder.datasheet("6.7.4.6", 2.0, origin="datasheet NMC-5Ah rev C", observed_at=T0)
    sheet = "datasheet NMC-5Ah rev C"
    for clause, number in (
        ("6.1.3.6", 0.069),
        ("6.7.2.9", 2.5),
        ("6.7.2.10", 4.2),
        ("6.7.2.11", 3.6),
        ("6.7.3.5", 72.0),
        ("6.7.3.6", 4.0),
        ("6.7.4.3", 95.0),
        ("6.7.6.2", 10.0),
        ("6.7.6.6", 0.5),
        ("6.7.6.9", 70.0),
        ("6.7.7.3", -20.0),
        ("6.7.7.4", 45.0),
    ):
        builder.datasheet(clause, number, origin=sheet, observed_at=T0)
    builder.add(
        PassportValue("6.7.6.3", 1000, "1", Source.DATASHEET, T0, origin=sheet),
    )
    builder.add(
        PassportValue(
            "6.7.6.5",
            ("IEC 62660-1 cycle life",),
            "document ids",
            Source.DATASHEET,
            T0,
            origin=sheet,
        ),
    )
    for soc in (20, 80):
        builder.datasheet(
            "6.7.3.2",
            60.0 if soc == 80 else 52.0,
            origin="datasheet NMC-5Ah rev C",
            observed_at=T0,
            qualifier=f"soc={soc}",
            conditions=Conditions(temperature_c=25.0, soc_pct=soc, pulse_length_s=10.0),
        )
    builder.datasheet(
        "6.7.5.2", 0.021, origin="datasheet NMC-5Ah rev C", observed_at=T0, qualifier="method=dcir"
    )
    builder.measured(
        "6.7.2.3",
        capacity_ah,
        instrument="cycler",
        method="CC discharge C/3 to 3.0 V, trapezoidal Ah integration",
        observed_at=at,
        uncertainty=0.01 * capacity_ah,
        conditions=ref,
    )
    builder.measured(
        "6.7.2.6",
        energy_wh / 1000,
        instrument="cycler",
        method="bench estimate: integral of V*I over the C/3 discharge (not UN GTR 22)",
        observed_at=at,
        uncertainty=0.012 * energy_wh / 1000,
        conditions=ref,
    )
    builder.derive(
        "6.7.2.7",
        energy_wh / RATED_WH * 100,
        method="bench-derived SOCE: measured energy / certified usable energy",
        observed_at=at,
    )
    builder.measured(
        "6.7.4.4",
        energy_wh / energy_in_wh * 100,
        instrument="cycler",
        method="Wh out / Wh in over C/3 discharge and recharge",
        observed_at=finished,
        uncertainty=0.5,
        conditions=ref,
    )
    for soc, p in ((20, 52.0 * soh / 100), (80, 60.0 * soh / 100)):
        builder.measured(
            "6.7.3.3",
            p,
            instrument="cycler",
            method="10 s discharge pulse, P = V_end * I",
            observed_at=at,
            uncertainty=0.02 * p,
            conditions=Conditions(temperature_c=25.0, soc_pct=soc, pulse_length_s=10.0),
            qualifier=f"soc={soc}",
        )
    builder.measured(
        "6.7.4.7",
        2.0 + 0.05 * index,
        instrument="cycler",
        method="estimate from OCV decay over 7 days",
        observed_at=finished,
        uncertainty=0.4,
        conditions=Conditions(temperature_c=25.0, soc_pct=50.0, rest_s=7 * 86400.0),
    )
    builder.measured(
        "6.7.5",
        dcir_ohm,
        instrument="cycler",
        method="dcir",
        observed_at=at,
        uncertainty=0.0005,
        conditions=Conditions(temperature_c=25.0, soc_pct=0.0, pulse_length_s=10.0, rest_s=600),
        qualifier="method=dcir",
    )
    builder.measured(
        "6.7.5",
        r_ohm * 0.8,
        instrument="acir",
        method="acir_1khz",
        observed_at=start,
        uncertainty=0.0002,
        conditions=Conditions(temperature_c=25.0),
        qualifier="method=acir_1khz",
    )
    builder.measured(
        "6.7.2.8",
        40.0,
        instrument="cycler",
        method="coulomb-counted storage SoC",
        observed_at=finished,
        uncertainty=1.0,
    )
    builder.measured(
        "6.7.7.2",
        float(np.max(raw.temperature_c)),
        instrument="cycler",
        method="maximum cell surface temperature during the test (sensor T1, can mid-height)",
        observed_at=finished,
        uncertainty=0.5,
    )
    builder.measured(
        "6.7.6.8",
        2 * capacity_ah,
        instrument="cycler",
        method="station test throughput (Ah moved during this test only)",
        observed_at=finished,
        uncertainty=0.02 * capacity_ah,
        qualifier="scope=station-test",
    )
    builder.imported(_bms_values(index, start))
    builder.derive_fades()
    freq = np.logspace(-1, 4, 25)
    w = 2 * np.pi * freq
    z_fit = r_ohm * 0.8 + 0.012 / (1 + 1j * w * 0.012 * 0.5)
    z_meas = z_fit * (1 + 0.01 * rng.standard_normal(freq.size))
    return GradedCell(
        record=builder.build(),
        raw=raw,
        capacity_ah=capacity_ah,
        energy_wh=energy_wh,
        dcir_ohm=dcir_ohm,
        eis_frequency_hz=freq,
        eis_z=z_meas,
        eis_fit_z=z_fit,
    )


def _bms_values(index: int, start: datetime) -> list[PassportValue]:
    read_at = start - timedelta(days=3)
    origin = f"bms-readout:RO-{index:04d}"
    items = (
        ("6.7.6.4", 800 + 7 * index),
        ("6.7.6.7", 12.5 + index * 0.1),
        ("6.7.6.8", 3900.0 + index),
        ("6.7.7.5", 120.0),
        ("6.7.7.6", 30.0),
        ("6.7.7.7", 4.0),
        ("6.7.7.8", 0.0),
        ("6.7.8.2", index % 3),
        ("6.7.8.3", 0),
        ("6.7.8.4", ()),
        ("6.7.8.5", ("deep discharge below 2.5 V",) if index % 3 else ()),
    )
    return [
        PassportValue(
            clause=clause,
            value=value,
            unit=CLAUSES[clause].unit,
            source=Source.BMS,
            observed_at=read_at,
            method="BMS read-out (Art. 14)",
            origin=origin,
        )
        for clause, value in items
    ]


def graded_batch(n: int = 12, seed: int = 7) -> list[GradedCell]:
    return [graded_cell(i, seed) for i in range(n)]
