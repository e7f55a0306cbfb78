"""Matching graded cells into series or parallel groups for pack assembly.

Algorithm (``../shared/reference/grading.md`` 3.3, default [P]): drop cells that are not in a
usable bin, sort by capacity (largest first), and greedily fill each group from the next cells
in that order whose addition keeps every window (max - min within the group) satisfied.
Parallel groups use the tighter resistance window, since current shares as 1/R. Every cell is
told where it went and why; every group reports its spread per feature.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from station.grading.profiles import Profile
from station.grading.results import CellMetrics, Grade

NOT_USABLE = ("REJECT", "QUARANTINE", "RETEST")


@dataclass(frozen=True)
class MatchWindows:
    """Allowed in-group spread (max - min): capacity and resistance relative to the group mean
    (%), OCV in V, K in mV/day. ``None`` leaves a feature unconstrained. The resistance metric
    must be a temperature-compensated one."""

    capacity_pct: float | None = 1.0
    resistance_pct: float | None = 3.0
    ocv_v: float | None = 0.005
    k_mv_per_day: float | None = 0.1
    resistance_metric: str = "acir_25c_ohm"

    @classmethod
    def from_profile(cls, profile: Profile, parallel: bool = False) -> MatchWindows:
        m = profile.matching
        r_key = "resistance_parallel_pct" if parallel else "resistance_pct"
        return cls(
            capacity_pct=float(m.get("capacity_pct", 1.0)),
            resistance_pct=float(m.get(r_key, 2.0 if parallel else 3.0)),
            ocv_v=float(m.get("ocv_v", 0.005)),
            k_mv_per_day=float(m.get("k_mv_per_day", 0.1)),
            resistance_metric=str(m.get("resistance_metric", "acir_25c_ohm")),
        )

    def features(self) -> list[tuple[str, float, bool, str]]:
        """(metric, window, relative?, unit) of every constrained feature."""
        out = []
        if self.capacity_pct is not None:
            out.append(("capacity_ah", self.capacity_pct, True, "%"))
        if self.resistance_pct is not None:
            out.append((self.resistance_metric, self.resistance_pct, True, "%"))
        if self.ocv_v is not None:
            out.append(("ocv_v", self.ocv_v, False, "V"))
        if self.k_mv_per_day is not None:
            out.append(("k_mv_per_day", self.k_mv_per_day, False, "mV/day"))
        return out


@dataclass(frozen=True)
class Group:
    """One matched group; ``spread`` maps metric -> (max - min, unit, window)."""

    index: int
    kind: str
    cell_ids: tuple[str, ...]
    spread: dict[str, tuple[float, str, float]]


@dataclass(frozen=True)
class Placement:
    """Where one cell went (group index or None) and why, in words."""

    cell_id: str
    group: int | None
    reason: str


@dataclass(frozen=True)
class MatchResult:
    groups: tuple[Group, ...]
    placements: tuple[Placement, ...]

    @property
    def unmatched(self) -> tuple[str, ...]:
        return tuple(p.cell_id for p in self.placements if p.group is None)


def _spread(values: np.ndarray, relative: bool) -> float:
    width = float(values.max() - values.min())
    return width / float(np.mean(values)) * 100.0 if relative else width


def match_cells(
    cells: Sequence[CellMetrics],
    group_size: int,
    windows: MatchWindows | None = None,
    grades: Sequence[Grade] | None = None,
    kind: str = "series",
) -> MatchResult:
    """Build groups of ``group_size`` cells within the windows (see the module docstring)."""
    if group_size < 1:
        raise ValueError(f"group_size must be at least 1, got {group_size}")
    windows = windows or MatchWindows()
    features = windows.features()
    outcome = {g.cell_id: g.outcome for g in grades or ()}
    placements: dict[str, Placement] = {}
    eligible: list[tuple[CellMetrics, np.ndarray]] = []
    for cell in cells:
        grade = outcome.get(cell.cell_id)
        if grade in NOT_USABLE:
            placements[cell.cell_id] = Placement(cell.cell_id, None, f"not matched: graded {grade}")
            continue
        missing = [m for m, *_ in features if cell.value(m) is None]
        if missing:
            placements[cell.cell_id] = Placement(
                cell.cell_id, None, f"not matched: missing or unusable {', '.join(missing)}"
            )
            continue
        eligible.append((cell, np.array([cell.value(m) for m, *_ in features], dtype=float)))
    eligible.sort(key=lambda item: -item[1][0] if features else 0.0)
    free = [True] * len(eligible)
    groups: list[Group] = []
    for seed in range(len(eligible)):
        if not free[seed]:
            continue
        members = [seed]
        blocked: dict[str, int] = {}
        for cand in range(seed + 1, len(eligible)):
            if len(members) == group_size:
                break
            if not free[cand]:
                continue
            trial = np.array([eligible[k][1] for k in [*members, cand]])
            over = [
                name
                for j, (name, window, relative, _) in enumerate(features)
                if _spread(trial[:, j], relative) > window
            ]
            if not over:
                members.append(cand)
            else:
                for name in over:
                    blocked[name] = blocked.get(name, 0) + 1
                if "capacity_ah" in over:
                    break  # sorted by capacity: every later cell is further away
        if len(members) < group_size:
            cell = eligible[seed][0]
            worst = max(blocked, key=lambda k: blocked[k]) if blocked else "too few cells"
            placements[cell.cell_id] = Placement(
                cell.cell_id,
                None,
                f"not matched: only {len(members) - 1} partner(s) within the windows; "
                f"most often exceeded: {worst}",
            )
            free[seed] = False
            continue
        values = np.array([eligible[k][1] for k in members])
        spread = {
            name: (_spread(values[:, j], relative), unit, window)
            for j, (name, window, relative, unit) in enumerate(features)
        }
        index = len(groups)
        ids = tuple(eligible[k][0].cell_id for k in members)
        groups.append(Group(index, kind, ids, spread))
        spread_words = "; ".join(
            f"{name} spread {s:.3g} {unit} <= {w:g} {unit}" for name, (s, unit, w) in spread.items()
        )
        for rank, k in enumerate(members):
            free[k] = False
            cell, vec = eligible[k]
            own = ", ".join(f"{name} {v:.6g}" for (name, *_), v in zip(features, vec, strict=True))
            placements[cell.cell_id] = Placement(
                cell.cell_id,
                index,
                f"{kind} group {index} position {rank + 1}/{group_size} ({own}); "
                f"cells taken in order of capacity; group {spread_words}",
            )
    ordered = tuple(placements[c.cell_id] for c in cells)
    return MatchResult(tuple(groups), ordered)
