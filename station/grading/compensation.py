"""Temperature compensation of resistance to 25 C (``../shared/reference/grading.md`` 2.7).

R25 = R(T) * exp[(Ea / R_g) (1/298.15 - 1/T)], T in K. Without a calibrated activation energy,
a resistance measured more than ``max_uncompensated_k`` from 25 C is refused (NaN with the
NOT_TEMPERATURE_COMPENSATED flag): about half the measured impedance spread of a lot can come
from temperature alone, so comparing such values would grade the thermometer, not the cell.
"""

from __future__ import annotations

import numpy as np

from station.grading.results import Figure, Quality

GAS_CONSTANT_J_PER_MOL_K = 8.314462618
REFERENCE_K = 298.15


def arrhenius_factor(temperature_c: float, ea_j_per_mol: float) -> float:
    """R25 / R(T) for activation energy ``ea_j_per_mol``."""
    t_k = temperature_c + 273.15
    return float(np.exp(ea_j_per_mol / GAS_CONSTANT_J_PER_MOL_K * (1 / REFERENCE_K - 1 / t_k)))


def compensate_to_25c(
    resistance: Figure,
    temperature_c: float | None,
    ea_j_per_mol: float | None,
    max_uncompensated_k: float = 5.0,
) -> Figure:
    """The resistance referred to 25 C, or a refusal (NaN, flagged) when that is not possible.

    Within ``max_uncompensated_k`` of 25 C and without Ea the value is passed through with a note.
    """
    if temperature_c is None or temperature_c != temperature_c:
        return Figure(
            float("nan"),
            resistance.unit,
            flags=resistance.flags | {Quality.NO_TEMPERATURE, Quality.NOT_TEMPERATURE_COMPENSATED},
            note="no cell temperature recorded with the resistance",
        )
    if ea_j_per_mol is None:
        if abs(temperature_c - 25.0) > max_uncompensated_k:
            return Figure(
                float("nan"),
                resistance.unit,
                flags=resistance.flags | {Quality.NOT_TEMPERATURE_COMPENSATED},
                note=(
                    f"measured at {temperature_c:.1f} C, more than {max_uncompensated_k:g} K "
                    "from 25 C, and no activation energy is calibrated for this cell type"
                ),
            )
        return Figure(
            resistance.value,
            resistance.unit,
            resistance.uncertainty,
            resistance.flags,
            note=f"measured at {temperature_c:.1f} C; not compensated (no Ea, within "
            f"{max_uncompensated_k:g} K of 25 C)",
        )
    factor = arrhenius_factor(temperature_c, ea_j_per_mol)
    sigma = None if resistance.uncertainty is None else resistance.uncertainty * factor
    return Figure(
        resistance.value * factor,
        resistance.unit,
        sigma,
        resistance.flags,
        note=f"referred to 25 C from {temperature_c:.1f} C with Ea {ea_j_per_mol / 1e3:g} kJ/mol",
    )


def fit_activation_energy(temperatures_c: np.ndarray, resistances_ohm: np.ndarray) -> float:
    """Ea (J/mol) from resistances at three or more temperatures: slope of ln R against 1/T."""
    t = np.asarray(temperatures_c, dtype=float)
    r = np.asarray(resistances_ohm, dtype=float)
    if t.size < 3 or np.unique(t).size < 3:
        raise ValueError("calibrating Ea needs resistances at three or more distinct temperatures")
    if np.any(r <= 0):
        raise ValueError(f"resistance at row {int(np.flatnonzero(r <= 0)[0])} is not positive")
    slope = np.polyfit(1.0 / (t + 273.15), np.log(r), 1)[0]
    return float(slope * GAS_CONSTANT_J_PER_MOL_K)
