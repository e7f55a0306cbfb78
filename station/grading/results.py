"""Result types of the grading core, consumed by the engine, the passport exporter and the GUI.

Every figure is a :class:`Figure`: a value with its unit, its standard uncertainty (same unit,
``None`` when unknown) and the data-quality flags raised while computing it, so that a bad
measurement is never mistaken for a bad cell.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Quality(enum.Enum):
    """Data-quality flags attached to a figure (grading.md section 7, row 28)."""

    SAMPLING_TOO_COARSE = "sampling_too_coarse"
    CURRENT_NOT_SETTLED = "current_not_settled"
    TEMPERATURE_OUT_OF_WINDOW = "temperature_out_of_window"
    CV_CUTOFF_NOT_REACHED = "cv_cutoff_not_reached"
    REST_TOO_SHORT = "rest_too_short"
    NOT_RELAXED = "not_relaxed"
    NO_TEMPERATURE = "no_temperature"
    FIT_NOT_CONVERGED = "fit_not_converged"
    KRAMERS_KRONIG_FAILED = "kramers_kronig_failed"
    NOT_TEMPERATURE_COMPENSATED = "not_temperature_compensated"
    MISSING_REFERENCE = "missing_reference"
    OUT_OF_RANGE = "out_of_range"


@dataclass(frozen=True)
class Figure:
    """One computed figure: ``value`` in ``unit``, standard uncertainty, quality flags.

    ``value`` is NaN when the figure could not be computed; ``flags`` then says why.
    """

    value: float
    unit: str
    uncertainty: float | None = None
    flags: frozenset[Quality] = frozenset()
    note: str = ""

    @property
    def ok(self) -> bool:
        """True when the value is finite and no quality flag was raised."""
        return self.value == self.value and not self.flags  # NaN != NaN

    def to_dict(self) -> dict[str, object]:
        return {
            "value": None if self.value != self.value else self.value,
            "unit": self.unit,
            "uncertainty": self.uncertainty,
            "flags": sorted(flag.value for flag in self.flags),
            "note": self.note,
        }


class Verdict(enum.Enum):
    """Outcome of one rule."""

    PASS = "pass"
    FAIL = "fail"
    RETEST = "retest"  # the value lies within its uncertainty of the threshold
    MISSING = "missing"  # the figure was not measured or is flagged unusable


@dataclass(frozen=True)
class RuleResult:
    """One rule evaluated against one cell, with everything a technician needs to check it.

    ``margin`` is signed in the rule's unit: positive means on the passing side of the threshold.
    """

    rule: str
    metric: str
    value: float | None
    unit: str
    comparison: str
    threshold: float
    margin: float | None
    uncertainty: float | None
    verdict: Verdict
    explanation: str

    def to_dict(self) -> dict[str, object]:
        return {
            "rule": self.rule,
            "metric": self.metric,
            "value": self.value,
            "unit": self.unit,
            "comparison": self.comparison,
            "threshold": self.threshold,
            "margin": self.margin,
            "uncertainty": self.uncertainty,
            "verdict": self.verdict.value,
            "explanation": self.explanation,
        }


@dataclass(frozen=True)
class Grade:
    """The grade of one cell under one profile version, with the evidence for it.

    ``outcome`` is a bin name (``"A"``...), ``"REJECT"``, ``"QUARANTINE"`` or ``"RETEST"``.
    """

    cell_id: str
    outcome: str
    profile_name: str
    profile_version: str
    profile_sha256: str
    rules: tuple[RuleResult, ...]
    summary: str
    use: str = ""

    def to_dict(self) -> dict[str, object]:
        return {
            "cell_id": self.cell_id,
            "outcome": self.outcome,
            "use": self.use,
            "profile_name": self.profile_name,
            "profile_version": self.profile_version,
            "profile_sha256": self.profile_sha256,
            "summary": self.summary,
            "rules": [rule.to_dict() for rule in self.rules],
        }


@dataclass(frozen=True)
class CellMetrics:
    """Every figure measured on one cell, keyed by metric name (see ``METRIC_UNITS``).

    ``facts`` are yes/no observations (damage seen, traceability present, calendar expired) that
    safety gates read; ``temperature_c`` is the cell temperature the resistances were taken at.
    """

    cell_id: str
    chemistry: str
    figures: dict[str, Figure] = field(default_factory=dict)
    facts: dict[str, bool] = field(default_factory=dict)

    def value(self, name: str) -> float | None:
        """The figure's value, or None when absent or NaN."""
        figure = self.figures.get(name)
        if figure is None or figure.value != figure.value:
            return None
        return figure.value

    def to_dict(self) -> dict[str, object]:
        return {
            "cell_id": self.cell_id,
            "chemistry": self.chemistry,
            "figures": {name: fig.to_dict() for name, fig in sorted(self.figures.items())},
            "facts": dict(sorted(self.facts.items())),
        }


METRIC_UNITS: dict[str, str] = {
    "capacity_ah": "Ah",
    "energy_wh": "Wh",
    "soh_capacity_pct": "%",
    "soh_energy_pct": "%",
    "soh_capacity_bol_pct": "%",
    "capacity_fade_pct": "%",
    "energy_fade_pct": "%",
    "power_fade_pct": "%",
    "rte": "1",
    "rte_fade_pct": "%",
    "coulombic_efficiency": "1",
    "dcir_10s_ohm": "ohm",
    "dcir_10s_25c_ohm": "ohm",
    "acir_ohm": "ohm",
    "acir_25c_ohm": "ohm",
    "resistance_increase_pct": "%",
    "ocv_v": "V",
    "k_mv_per_day": "mV/day",
    "self_discharge_pct_per_month": "%/month",
    "hold_days": "day",
    "capacity_vs_rated_min_pct": "%",
}
# Pulse power at 20/50/80 % SOC (grading.md section 7 row 15) and its fade against BOL.
METRIC_UNITS.update(
    {
        f"{prefix}_{direction}_soc{soc}_{unit_key}": unit
        for prefix, unit_key, unit in (("pulse_power", "w", "W"), ("power_fade", "pct", "%"))
        for direction in ("discharge", "regen")
        for soc in (20, 50, 80)
    }
)
