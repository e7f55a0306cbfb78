"""Temperature compensation of resistance to 25 C (``../shared/reference/grading.md`` 2.7).

R25 = R(T) * exp[(Ea / R_g) (1/298.15 - 1/T)], T in K. Without an activation energy, a
resistance measured more than ``max_uncompensated_k`` from 25 C is refused (NaN with the
NOT_TEMPERATURE_COMPENSATED flag): about half the measured impedance spread of a lot can come
from temperature alone, so comparing such values would grade the thermometer, not the cell.

Default activation energies per chemistry preset, each with its source and standard uncertainty,
are in ``station/data/activation-energies.toml``; a value calibrated for the cell type overrides
them. The uncertainty of Ea is propagated into the compensated resistance.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from station.grading.results import Figure, Quality

GAS_CONSTANT_J_PER_MOL_K = 8.314462618
REFERENCE_K = 298.15
ACTIVATION_ENERGY_FILE = (
    Path(__file__).resolve().parent.parent / "data" / "activation-energies.toml"
)


@dataclass(frozen=True)
class ActivationEnergy:
    """Ea of a chemistry (J/mol) with its standard uncertainty (J/mol) and where it comes from.

    ``value`` is None when the chemistry explicitly has none; ``source`` then says why.
    """

    chemistry: str
    value: float | None
    uncertainty: float
    source: str


def parse_activation_energies(text: str) -> dict[str, ActivationEnergy]:
    """Parse the activation-energy table; every entry needs a source, and a value or a reason."""
    out: dict[str, ActivationEnergy] = {}
    for chemistry, entry in tomllib.loads(text).items():
        if not isinstance(entry, dict) or not isinstance(entry.get("source"), str):
            raise ValueError(f"activation energy [{chemistry}] needs a 'source' string")
        value = entry.get("activation_energy_j_per_mol")
        if value is None:
            if not isinstance(entry.get("reason"), str):
                raise ValueError(f"[{chemistry}] has no activation energy and no 'reason' why")
            out[chemistry] = ActivationEnergy(
                chemistry, None, 0.0, f"{entry['reason']} {entry['source']}"
            )
            continue
        sigma = entry.get("uncertainty_j_per_mol")
        if not isinstance(value, int | float) or value <= 0:
            raise ValueError(f"[{chemistry}] activation_energy_j_per_mol must be a positive number")
        if not isinstance(sigma, int | float) or sigma < 0:
            raise ValueError(f"[{chemistry}] uncertainty_j_per_mol must be a number >= 0")
        out[chemistry] = ActivationEnergy(chemistry, float(value), float(sigma), entry["source"])
    return out


@cache
def activation_energies(path: Path = ACTIVATION_ENERGY_FILE) -> dict[str, ActivationEnergy]:
    """The shipped per-chemistry activation energies (read once)."""
    return parse_activation_energies(path.read_text(encoding="utf-8"))


def activation_energy_for(chemistry: str) -> ActivationEnergy | None:
    """The default Ea of a chemistry preset; None when the chemistry is not in the table."""
    return activation_energies().get(chemistry.lower())


def arrhenius_factor(temperature_c: float, ea_j_per_mol: float) -> float:
    """R25 / R(T) for activation energy ``ea_j_per_mol``."""
    t_k = temperature_c + 273.15
    return float(np.exp(ea_j_per_mol / GAS_CONSTANT_J_PER_MOL_K * (1 / REFERENCE_K - 1 / t_k)))


def compensate_to_25c(
    resistance: Figure,
    temperature_c: float | None,
    ea_j_per_mol: float | None,
    max_uncompensated_k: float = 5.0,
    ea_uncertainty_j_per_mol: float = 0.0,
    ea_source: str = "",
) -> Figure:
    """The resistance referred to 25 C, or a refusal (NaN, flagged) when that is not possible.

    Within ``max_uncompensated_k`` of 25 C and without Ea the value is passed through with a note.
    The standard uncertainty of the result combines that of the resistance with
    ``ea_uncertainty_j_per_mol``: d ln R25 / d Ea = (1/298.15 - 1/T) / R_g.
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
                    + (f" ({ea_source})" if ea_source else "")
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
    value = resistance.value * factor
    sensitivity = abs(1 / REFERENCE_K - 1 / (temperature_c + 273.15)) / GAS_CONSTANT_J_PER_MOL_K
    from_ea = abs(value) * sensitivity * ea_uncertainty_j_per_mol
    sigma: float | None
    if resistance.uncertainty is None:
        sigma = from_ea if ea_uncertainty_j_per_mol > 0 else None
    else:
        sigma = float(np.hypot(resistance.uncertainty * factor, from_ea))
    ea_text = f"Ea {ea_j_per_mol / 1e3:g}"
    if ea_uncertainty_j_per_mol > 0:
        ea_text += f" +- {ea_uncertainty_j_per_mol / 1e3:g}"
    return Figure(
        value,
        resistance.unit,
        sigma,
        resistance.flags,
        note=f"referred to 25 C from {temperature_c:.1f} C with {ea_text} kJ/mol"
        + (f" ({ea_source})" if ea_source else ""),
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
