"""Chemistry presets: OCV curves, voltage windows and typical cell parameters.

Each full-cell OCV is built from electrode potentials, ``OCV(soc) = U_pos(y(soc)) - U_neg(x(soc))``
with stoichiometries linear in soc between published (or stated) limits, then restricted to the
rated window: soc 0 and 1 are where the OCV crosses ``v_min_v`` and ``v_max_v``. Sources:

- **NMC / graphite (2.5-4.2 V)**: LG M50 (NMC811 / graphite-SiOx) electrode OCP fits and
  stoichiometry limits of Chen et al., "Development of Experimental Techniques for
  Parameterization of Multi-scale Lithium-ion Battery Models", J. Electrochem. Soc. 167 (2020)
  080534 (the ``Chen2020`` set in PyBaMM). NCA-graphite shares the window; use this preset.
- **LFP / graphite (2.0-3.65 V)**: LFP OCP fit of Afshar, Morris and Khajepour, "Efficient
  electrochemical model for lithium-ion cells", arXiv:1709.03970 (2017), with its flat two-phase
  plateau near 3.4 V vs Li; graphite from Chen 2020 as above. Stoichiometry limits are ours
  (typical of LFP cells); the window clip makes the ends.
- **Sodium-ion, hard carbon / layered oxide (1.5-4.0 V)**: a physics model, not fitted data:
  each electrode is a lattice-gas (Nernst/Frumkin) insertion isotherm, ``x(U) = sum_i w_i /
  (1 + exp((U - E_i) / k_i))``. Hard carbon has two sites, a broad sloping "adsorption" region
  (E 0.55 V, k 0.12 V) and a narrow low-voltage "pore-filling" plateau (E 0.06 V, k 0.012 V),
  the two-region shape reported for hard carbon; the layered oxide (O3-type NaNi/Fe/Mn O2) is one
  broad site (E 3.25 V, k 0.20 V), giving its sloping profile. The parameters were chosen so the
  full cell spans about 1.5-4.0 V with a mid voltage near 3.0 V, as commercial Na-ion cells do.
- **LTO / NMC (1.5-2.8 V)**: NMC from Chen 2020 vs a lattice-gas LTO plateau (E 1.55 V, narrow
  k 0.01 V, the two-phase Li4Ti5O12/Li7Ti5O12 reaction, 97 % of sites) plus a small broad site
  (E 2.3 V) that makes the knee at the end of discharge.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from hardware_sim.cell import CellParams

TABLE_POINTS = 81
#: Arrhenius activation energies of the resistances (J/mol): the ohmic part follows electrolyte
#: conductivity (order 15 kJ/mol), charge transfer and diffusion are more activated (order
#: 50 kJ/mol); typical values for Li-ion, used for every preset.
EA_OHMIC_J_PER_MOL = 15_000.0
EA_KINETIC_J_PER_MOL = 50_000.0


def graphite_chen2020_v(x: float) -> float:
    """Graphite OCP vs Li (V) at lithium fraction ``x`` (Chen et al. 2020 fit)."""
    return (
        1.9793 * math.exp(-39.3631 * x)
        + 0.2482
        - 0.0909 * math.tanh(29.8538 * (x - 0.1234))
        - 0.04478 * math.tanh(14.9159 * (x - 0.2769))
        - 0.0205 * math.tanh(30.4444 * (x - 0.6103))
    )


def nmc811_chen2020_v(y: float) -> float:
    """NMC811 OCP vs Li (V) at lithium fraction ``y`` (Chen et al. 2020 fit)."""
    return (
        -0.809 * y
        + 4.4875
        - 0.0428 * math.tanh(18.5138 * (y - 0.5542))
        - 17.7326 * math.tanh(15.789 * (y - 0.3117))
        + 17.5842 * math.tanh(15.9308 * (y - 0.312))
    )


def lfp_afshar2017_v(y: float) -> float:
    """LFP OCP vs Li (V) at lithium fraction ``y`` (Afshar et al. 2017 fit)."""
    return 3.4077 - 0.020269 * y + 0.5 * math.exp(-150.0 * y) - 0.9 * math.exp(-30.0 * (1.0 - y))


def lattice_gas_potential_v(
    fraction: float, sites: tuple[tuple[float, float, float], ...]
) -> float:
    """Potential U at which ``sum w / (1 + exp((U - E) / k))`` equals ``fraction`` (bisection).

    ``sites`` are ``(weight, E_v, k_v)``; the weights add up to 1. Fraction 0 means empty.
    """
    fraction = min(max(fraction, 1e-9), 1 - 1e-9)
    lo, hi = -2.0, 6.0
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        filled = sum(w / (1.0 + math.exp(min((mid - e) / k, 700.0))) for w, e, k in sites)
        if filled > fraction:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


HARD_CARBON_SITES = ((0.55, 0.55, 0.12), (0.45, 0.06, 0.012))
LAYERED_OXIDE_SITES = ((1.0, 3.25, 0.20),)
LTO_SITES = ((0.97, 1.55, 0.01), (0.03, 2.3, 0.12))


def _full_cell(
    pos: Callable[[float], float],
    neg: Callable[[float], float],
    y_empty: float,
    y_full: float,
    x_empty: float,
    x_full: float,
) -> Callable[[float], float]:
    def ocv(s: float) -> float:
        y = y_empty + (y_full - y_empty) * s
        x = x_empty + (x_full - x_empty) * s
        return pos(y) - neg(x)

    return ocv


def _crossing(fn: Callable[[float], float], target: float) -> float:
    """Scan then bisect for fn(s) = target; s may pass the nominal stoichiometry limits by 20 %."""
    grid = [-0.2 + 1.4 * i / 560 for i in range(561)]
    values = [fn(s) for s in grid]
    for a, b, va, vb in zip(grid, grid[1:], values, values[1:], strict=False):
        if (va - target) * (vb - target) <= 0:
            lo, hi = a, b
            for _ in range(60):
                mid = 0.5 * (lo + hi)
                if (fn(mid) - target) * (va - target) > 0:
                    lo = mid
                else:
                    hi = mid
            return 0.5 * (lo + hi)
    raise ValueError(f"OCV never crosses {target} V within the stoichiometry limits")


def window_table(
    fn: Callable[[float], float], v_min_v: float, v_max_v: float, points: int = TABLE_POINTS
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """An OCV table on soc 0..1 between the crossings of ``v_min_v`` and ``v_max_v``.

    The soc grid is denser near both ends (cosine spacing), where the curves bend sharply.
    """
    s0 = _crossing(fn, v_min_v)
    s1 = _crossing(fn, v_max_v)
    socs = [0.5 - 0.5 * math.cos(math.pi * i / (points - 1)) for i in range(points)]
    volts = [fn(s0 + (s1 - s0) * s) for s in socs]
    volts[0], volts[-1] = v_min_v, v_max_v
    for i in range(1, len(volts)):
        volts[i] = max(volts[i], volts[i - 1] + 1e-6)  # a monotone table keeps soc(OCV) unique
    return tuple(socs), tuple(volts)


@dataclass(frozen=True)
class Chemistry:
    """A chemistry preset: window, nominal voltage, OCV table and typical electrical/thermal values.

    ``template`` carries everything but capacity and resistance, which :meth:`params` sets per cell.
    """

    name: str
    description: str
    v_min_v: float
    v_max_v: float
    nominal_v: float
    template: CellParams

    def params(
        self,
        capacity_ah: float,
        *,
        acir_ohm: float | None = None,
        leak_resistance_ohm: float = math.inf,
        **changes: float,
    ) -> CellParams:
        """Cell parameters for one cell of this chemistry.

        The RC resistances scale with the ACIR (a cell twice as resistive at 1 kHz has arcs twice
        as large), so DC resistance and ACIR stay in proportion; R0 is set so Re Z(1 kHz) equals
        ``acir_ohm`` exactly. Thermal mass scales with capacity (about 14 J/K per Ah).
        """
        t = self.template
        scale = 1.0 if acir_ohm is None else acir_ohm / _acir(t)
        base = replace(
            t,
            capacity_ah=capacity_ah,
            r0_ohm=t.r0_ohm * scale,
            r1_ohm=t.r1_ohm * scale,
            r2_ohm=t.r2_ohm * scale,
            warburg_ohm=t.warburg_ohm * scale,
            leak_resistance_ohm=leak_resistance_ohm,
            thermal_mass_j_per_k=14.0 * capacity_ah,
        )
        base = replace(base, **changes)  # type: ignore[arg-type]
        if acir_ohm is not None:
            base = base.with_acir(acir_ohm)
        return base


def _acir(p: CellParams) -> float:
    from hardware_sim.cell import impedance_of

    return float(impedance_of(p, 1000.0, ocv_slope_v=0.0).real)


def _make(
    name: str,
    description: str,
    fn: Callable[[float], float],
    v_min_v: float,
    v_max_v: float,
    **template: float,
) -> Chemistry:
    socs, volts = window_table(fn, v_min_v, v_max_v)
    template.setdefault("ea_ohmic_j_per_mol", EA_OHMIC_J_PER_MOL)
    template.setdefault("ea_kinetic_j_per_mol", EA_KINETIC_J_PER_MOL)
    params = CellParams(name, 3.0, socs, volts, v_min_v, v_max_v, **template)
    mid = volts[len(volts) // 2]
    return Chemistry(name, description, v_min_v, v_max_v, round(mid, 2), params)


NMC = _make(
    "nmc",
    "NMC811/graphite (LG M50 electrode fits, Chen 2020), 2.5-4.2 V",
    _full_cell(nmc811_chen2020_v, graphite_chen2020_v, 0.9084, 0.2661, 0.0279, 0.9014),
    2.5,
    4.2,
    r0_ohm=0.018,
    r1_ohm=0.006,
    tau1_s=0.002,
    r2_ohm=0.008,
    tau2_s=25.0,
    warburg_ohm=0.004,
    warburg_tau_s=400.0,
)
LFP = _make(
    "lfp",
    "LFP/graphite (Afshar 2017 LFP fit, Chen 2020 graphite), 2.0-3.65 V, flat plateau",
    _full_cell(lfp_afshar2017_v, graphite_chen2020_v, 0.999, 0.01, 0.005, 0.85),
    2.0,
    3.65,
    r0_ohm=0.016,
    r1_ohm=0.006,
    tau1_s=0.003,
    r2_ohm=0.010,
    tau2_s=40.0,
    warburg_ohm=0.008,
    warburg_tau_s=600.0,
    hysteresis_v=0.012,
)
NA_ION = _make(
    "na-ion",
    "Sodium-ion, hard carbon / layered oxide (lattice-gas model), 1.5-4.0 V",
    _full_cell(
        lambda y: lattice_gas_potential_v(y, LAYERED_OXIDE_SITES),
        lambda x: lattice_gas_potential_v(x, HARD_CARBON_SITES),
        0.995,
        0.02,
        0.0,
        0.995,
    ),
    1.5,
    4.0,
    r0_ohm=0.022,
    r1_ohm=0.008,
    tau1_s=0.004,
    r2_ohm=0.010,
    tau2_s=30.0,
    warburg_ohm=0.006,
    warburg_tau_s=500.0,
)
LTO = _make(
    "lto",
    "LTO/NMC (Chen 2020 NMC vs lattice-gas LTO plateau), 1.5-2.8 V",
    _full_cell(
        nmc811_chen2020_v, lambda x: lattice_gas_potential_v(x, LTO_SITES), 0.95, 0.25, 0.0, 0.99
    ),
    1.5,
    2.8,
    r0_ohm=0.012,
    r1_ohm=0.004,
    tau1_s=0.002,
    r2_ohm=0.006,
    tau2_s=20.0,
    warburg_ohm=0.004,
    warburg_tau_s=300.0,
)

CHEMISTRIES: dict[str, Chemistry] = {c.name: c for c in (NMC, LFP, NA_ION, LTO)}


def chemistry(name: str) -> Chemistry:
    """Look a preset up by name (``nmc``, ``lfp``, ``na-ion``, ``lto``)."""
    try:
        return CHEMISTRIES[name.lower()]
    except KeyError:
        known = ", ".join(sorted(CHEMISTRIES))
        raise ValueError(f"unknown chemistry {name!r} (known: {known})") from None
