"""Seeded, reproducible lots of cells with spread, ageing and a share of defects.

A lot preset gives the chemistry, the rated values printed on the cells, and distributions for
state of health (capacity / rated), ACIR growth, self-discharge and initial state of charge, plus
the share of defective cells. :func:`generate_lot` draws N cells from a preset with
``random.Random(seed)``, so the same seed always gives the same lot. Every cell carries a
barcode-like id and its rated values; the ground truth (actual capacity, ACIR, defect) is kept
beside it for tests and demos, never shown to the station except through measurements.
"""

from __future__ import annotations

import enum
import math
import random
from dataclasses import dataclass, field
from typing import Any

from hardware_sim.cell import Cell, Contact
from hardware_sim.chemistry import Chemistry, chemistry


class Defect(enum.Enum):
    """Defects a grading bench must catch."""

    DEEP_DISCHARGED = "deep_discharged"  # OCV below the rated floor
    SOFT_SHORT = "soft_short"  # high leakage: voltage drops during a rest
    HIGH_RESISTANCE = "high_resistance"  # ACIR several times the rated value
    HOT = "hot"  # self-heating past a low thermal-runaway onset
    OPEN_TAB = "open_tab"  # no contact at the fixture
    REVERSED = "reversed"  # inserted with reversed polarity


@dataclass(frozen=True)
class LotPreset:
    """Distributions for one kind of lot. Fractions are of the rated value; ``*_sigma`` are
    standard deviations (normal) or log-standard deviations (lognormal, for resistances)."""

    name: str
    chemistry: str
    rated_capacity_ah: float
    rated_acir_ohm: float
    soh_mean: float
    soh_sigma: float
    soh_min: float
    acir_growth_per_soh_loss: float  # ACIR multiplier grows by this per unit of lost SOH
    acir_log_sigma: float
    self_discharge_per_month: float  # median fraction of capacity lost per 30 days
    self_discharge_log_sigma: float
    soc_min: float
    soc_max: float
    defect_share: float
    id_prefix: str


LOT_PRESETS: dict[str, LotPreset] = {
    "retired-ev": LotPreset(
        name="retired-ev",
        chemistry="nmc",
        rated_capacity_ah=4.8,
        rated_acir_ohm=0.016,
        soh_mean=0.84,
        soh_sigma=0.06,
        soh_min=0.55,
        acir_growth_per_soh_loss=3.0,
        acir_log_sigma=0.12,
        # Healthy NMC at storage SOC: K about 0.05-0.3 mV/day (grading.md 8.1 limits K to
        # 0.5 mV/day); 0.4 %/month is ~0.11 mV/day on this chemistry's OCV slope at 50 % SOC.
        self_discharge_per_month=0.004,
        self_discharge_log_sigma=0.25,
        soc_min=0.15,
        soc_max=0.6,
        defect_share=0.10,
        id_prefix="REV",
    ),
    "new-cells": LotPreset(
        name="new-cells",
        chemistry="nmc",
        rated_capacity_ah=3.0,
        rated_acir_ohm=0.018,
        soh_mean=1.01,
        soh_sigma=0.008,
        soh_min=0.95,
        acir_growth_per_soh_loss=0.0,
        acir_log_sigma=0.04,
        self_discharge_per_month=0.02,
        self_discharge_log_sigma=0.3,
        soc_min=0.30,
        soc_max=0.40,
        defect_share=0.02,
        id_prefix="NEW",
    ),
}


@dataclass
class LotCell:
    """One cell of a lot: its id, the simulated cell, and the ground truth behind it."""

    cell_id: str
    cell: Cell
    defect: Defect | None
    truth: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {"id": self.cell_id, "rated": dict(self.cell.rated), "truth": dict(self.truth)}


def check_digit(digits: str) -> int:
    """Mod-10 check digit with weights 3,1,3,... from the right (as in EAN/GTIN)."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits)))
    return (10 - total % 10) % 10


def generate_lot(
    preset: str | LotPreset,
    n: int,
    *,
    seed: int = 0,
    chemistry_name: str | None = None,
    defect_share: float | None = None,
    t_s: float = 0.0,
) -> list[LotCell]:
    """Draw ``n`` cells from ``preset`` (a name from ``LOT_PRESETS`` or a :class:`LotPreset`).

    ``chemistry_name`` overrides the preset's chemistry (``nmc``, ``lfp``, ``na-ion``, ``lto``);
    ``defect_share`` overrides its defect share (0..1). Exactly ``round(n * share)`` cells are
    defective, their kinds cycling through :class:`Defect` in a seeded order.
    """
    p = _preset(preset)
    if n < 0:
        raise ValueError(f"lot size must be >= 0, got {n}")
    share = p.defect_share if defect_share is None else defect_share
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"defect_share must be within 0..1, got {share!r}")
    chem = chemistry(chemistry_name or p.chemistry)
    rng = random.Random(f"{p.name}/{chem.name}/{seed}")
    n_defects = round(n * share)
    defect_slots = rng.sample(range(n), n_defects) if n_defects else []
    kinds = list(Defect)
    rng.shuffle(kinds)
    defects: dict[int, Defect] = {
        slot: kinds[i % len(kinds)] for i, slot in enumerate(sorted(defect_slots))
    }
    lot = []
    for index in range(n):
        lot.append(_draw_cell(p, chem, rng, seed, index, defects.get(index), t_s))
    return lot


def _preset(preset: str | LotPreset) -> LotPreset:
    if isinstance(preset, LotPreset):
        return preset
    try:
        return LOT_PRESETS[preset]
    except KeyError:
        known = ", ".join(sorted(LOT_PRESETS))
        raise ValueError(f"unknown lot preset {preset!r} (known: {known})") from None


def _draw_cell(
    p: LotPreset,
    chem: Chemistry,
    rng: random.Random,
    seed: int,
    index: int,
    defect: Defect | None,
    t_s: float,
) -> LotCell:
    soh = max(p.soh_min, rng.gauss(p.soh_mean, p.soh_sigma))
    capacity_ah = p.rated_capacity_ah * soh
    growth = 1.0 + p.acir_growth_per_soh_loss * max(0.0, 1.0 - soh)
    acir_ohm = p.rated_acir_ohm * growth * math.exp(rng.gauss(0.0, p.acir_log_sigma))
    sd_month = p.self_discharge_per_month * math.exp(rng.gauss(0.0, p.self_discharge_log_sigma))
    soc = rng.uniform(p.soc_min, p.soc_max)
    temperature_c: float | None = None
    contact = Contact.OK
    changes: dict[str, float] = {}
    if defect is Defect.HIGH_RESISTANCE:
        acir_ohm *= rng.uniform(3.0, 5.0)
    elif defect is Defect.SOFT_SHORT:
        sd_month = rng.uniform(2.0, 20.0)  # loses its whole charge within days
    elif defect is Defect.DEEP_DISCHARGED:
        soc = -rng.uniform(0.03, 0.08)
    elif defect is Defect.HOT:
        changes["runaway_onset_c"] = rng.uniform(38.0, 45.0)
        temperature_c = changes["runaway_onset_c"] + rng.uniform(3.0, 6.0)
    elif defect is Defect.OPEN_TAB:
        contact = Contact.OPEN
    elif defect is Defect.REVERSED:
        contact = Contact.REVERSED
    # leakage through a resistance across the OCV: I = OCV / R loses sd_month per 30 days
    leak_a = sd_month * capacity_ah / (30 * 24.0)
    leak_ohm = chem.nominal_v / leak_a if leak_a > 0 else math.inf
    params = chem.params(capacity_ah, acir_ohm=acir_ohm, leak_resistance_ohm=leak_ohm, **changes)
    digits = f"{seed % 1000:03d}{index:06d}"
    cell_id = f"{p.id_prefix}{digits}{check_digit(digits)}"
    rated = {
        "chemistry": chem.name,
        "capacity_ah": p.rated_capacity_ah,
        "acir_ohm": p.rated_acir_ohm,
        "v_min_v": chem.v_min_v,
        "v_max_v": chem.v_max_v,
        "nominal_v": chem.nominal_v,
    }
    cell = Cell(
        params,
        soc=soc,
        temperature_c=temperature_c,
        t_s=t_s,
        contact=contact,
        cell_id=cell_id,
        rated=rated,
    )
    truth = {
        "capacity_ah": capacity_ah,
        "soh": soh,
        "acir_ohm": acir_ohm,
        "self_discharge_per_month": sd_month,
        "soc": soc,
        "defect": defect.value if defect else None,
    }
    return LotCell(cell_id, cell, defect, truth)
