"""State of health, fades and resistance increase (DIN DKE SPEC 99100 definitions).

Definitions as in ``../shared/reference/grading.md`` 1.8 and 2.1:
SoH_C = C / C_rated * 100, capacity fade = (1 - C / C_rated) * 100, energy likewise,
power fade = (1 - P / P_BOL) * 100, RTE fade = (1 - RTE / RTE_BOL) * 100,
resistance increase = (R - R_BOL) / R_BOL * 100. Uncertainties propagate to first order from the
relative uncertainty of the measured figure (the reference values are taken as exact).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from station.grading.results import Figure, Quality

NAN = float("nan")


@dataclass(frozen=True)
class Reference:
    """Datasheet (rated) and beginning-of-life values of a cell; ``None`` when unknown.

    ``bol_pulse_power_w`` maps pulse-power metric names (``pulse_power_discharge_soc20_w``...)
    to the cell's BOL value in W, for the power fade of DIN DKE SPEC 99100 6.7.3.4.
    """

    rated_capacity_ah: float
    rated_energy_wh: float | None = None
    bol_capacity_ah: float | None = None
    bol_energy_wh: float | None = None
    bol_resistance_ohm: float | None = None
    bol_power_w: float | None = None
    bol_rte: float | None = None
    bol_pulse_power_w: dict[str, float] = field(default_factory=dict)


def _ratio_pct(measured: Figure, reference: float | None, fade: bool) -> Figure:
    if reference is None or reference <= 0:
        return Figure(NAN, "%", flags=measured.flags | {Quality.MISSING_REFERENCE})
    ratio = measured.value / reference * 100.0
    value = 100.0 - ratio if fade else ratio
    sigma = None if measured.uncertainty is None else measured.uncertainty / reference * 100.0
    return Figure(value, "%", uncertainty=sigma, flags=measured.flags)


def soh_pct(measured: Figure, reference: float | None) -> Figure:
    """measured / reference * 100 (%)."""
    return _ratio_pct(measured, reference, fade=False)


def fade_pct(measured: Figure, reference: float | None) -> Figure:
    """(1 - measured / reference) * 100 (%): capacity, energy, power and RTE fade."""
    return _ratio_pct(measured, reference, fade=True)


def resistance_increase_pct(measured: Figure, bol_ohm: float | None) -> Figure:
    """(R - R_BOL) / R_BOL * 100 (%); compare temperature-compensated resistances only."""
    if bol_ohm is None or bol_ohm <= 0:
        return Figure(NAN, "%", flags=measured.flags | {Quality.MISSING_REFERENCE})
    sigma = None if measured.uncertainty is None else measured.uncertainty / bol_ohm * 100.0
    return Figure(
        (measured.value - bol_ohm) / bol_ohm * 100.0, "%", uncertainty=sigma, flags=measured.flags
    )


def health_figures(
    reference: Reference,
    capacity: Figure,
    energy: Figure | None = None,
    rte: Figure | None = None,
    resistance_25c: Figure | None = None,
    power: Figure | None = None,
) -> dict[str, Figure]:
    """All SoH/fade/increase figures computable from the measurements given."""
    out = {
        "soh_capacity_pct": soh_pct(capacity, reference.rated_capacity_ah),
        "capacity_fade_pct": fade_pct(capacity, reference.rated_capacity_ah),
        "soh_capacity_bol_pct": soh_pct(capacity, reference.bol_capacity_ah),
    }
    if energy is not None:
        out["soh_energy_pct"] = soh_pct(energy, reference.rated_energy_wh)
        out["energy_fade_pct"] = fade_pct(energy, reference.rated_energy_wh)
        out["soh_energy_bol_pct"] = soh_pct(energy, reference.bol_energy_wh)
    if rte is not None:
        out["rte_fade_pct"] = fade_pct(rte, reference.bol_rte)
    if power is not None:
        out["power_fade_pct"] = fade_pct(power, reference.bol_power_w)
    if resistance_25c is not None:
        out["resistance_increase_pct"] = resistance_increase_pct(
            resistance_25c, reference.bol_resistance_ohm
        )
    return out
