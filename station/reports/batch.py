"""Batch report: yield per bin, histograms of capacity SoH and resistance, rejects with reasons,
cells held for re-test or in quarantine with reasons, matching groups with their spreads, and
lot-level flags.

Yield counts the released cells only: a bin whose decision puts the cell back on the market
(status repurposed, re-used or remanufactured). A RETEST or QUARANTINE cell is not released yet,
a recycle bin or a REJECT is waste; neither is yield."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Image, Paragraph, SimpleDocTemplate, Spacer

from station.passport.record import BatteryStatus, GradingRecord, format_utc
from station.reports.layout import build, styles, table
from station.reports.plots import batch_panels

SOH_KEY = "x-station.soh-capacity"
R_KEY = "6.7.5#method=dcir"


HELD = frozenset({"RETEST", "QUARANTINE"})
RELEASED_STATUSES = frozenset(
    {BatteryStatus.REPURPOSED, BatteryStatus.REUSED, BatteryStatus.REMANUFACTURED}
)


def is_reject(record: GradingRecord) -> bool:
    return record.grade.bin.lower() == "reject"


def is_held(record: GradingRecord) -> bool:
    """Held for a re-test or in quarantine: no decision on its use yet."""
    return record.grade.grade.upper() in HELD or record.grade.bin.upper() in HELD


def is_released(record: GradingRecord) -> bool:
    """Released for a use (a reuse bin): what the yield counts."""
    return record.status in RELEASED_STATUSES and not is_reject(record) and not is_held(record)


@dataclass(frozen=True)
class MatchingGroup:
    """Cells of one bin whose capacities lie within the tolerance of the group's smallest."""

    bin: str
    serials: tuple[str, ...]
    capacity_min_ah: float
    capacity_max_ah: float
    resistance_min_ohm: float
    resistance_max_ohm: float

    @property
    def capacity_spread_pct(self) -> float:
        return (self.capacity_max_ah - self.capacity_min_ah) / self.capacity_min_ah * 100.0

    @property
    def resistance_spread_mohm(self) -> float:
        return (self.resistance_max_ohm - self.resistance_min_ohm) * 1000.0


@dataclass(frozen=True)
class BatchSummary:
    lot: str
    records: tuple[GradingRecord, ...]
    bin_counts: dict[str, int]
    rejects: tuple[GradingRecord, ...]
    held: tuple[GradingRecord, ...]
    groups: tuple[MatchingGroup, ...]
    unmatched: tuple[str, ...]
    flags: tuple[str, ...]

    @property
    def released(self) -> int:
        return sum(is_released(r) for r in self.records)

    @property
    def yield_pct(self) -> float:
        """Released cells (a reuse bin) over all cells of the report, in %."""
        return self.released / len(self.records) * 100.0


def matching_groups(
    records: Sequence[GradingRecord], *, group_size: int = 4, capacity_tol_pct: float = 2.0
) -> tuple[list[MatchingGroup], list[str]]:
    """Greedy grouping per bin of the released cells: cells sorted by capacity, a group closes
    when it has ``group_size`` cells or the next cell is more than ``capacity_tol_pct`` above its
    smallest. Cells left in incomplete groups are returned as unmatched serial numbers, sorted."""
    if group_size < 1:
        raise ValueError(f"group_size must be at least 1, got {group_size}")
    groups: list[MatchingGroup] = []
    unmatched: list[str] = []
    by_bin: dict[str, list[GradingRecord]] = {}
    for record in records:
        if is_released(record):
            by_bin.setdefault(record.grade.bin, []).append(record)
    for bin_name in sorted(by_bin):
        cells = sorted(by_bin[bin_name], key=lambda r: r.number("6.7.2.3"))
        current: list[GradingRecord] = []

        def close(group: list[GradingRecord], bin_name: str = bin_name) -> None:
            if len(group) == group_size:
                caps = [r.number("6.7.2.3") for r in group]
                res = [r.number(R_KEY) for r in group]
                groups.append(
                    MatchingGroup(
                        bin_name,
                        tuple(r.cell.serial_number for r in group),
                        min(caps),
                        max(caps),
                        min(res),
                        max(res),
                    )
                )
            else:
                unmatched.extend(r.cell.serial_number for r in group)

        for record in cells:
            if current:
                first = current[0].number("6.7.2.3")
                too_far = (record.number("6.7.2.3") - first) / first * 100 > capacity_tol_pct
                if too_far or len(current) == group_size:
                    close(current)
                    current = []
            current.append(record)
        if current:
            close(current)
    return groups, sorted(unmatched)


def lot_flags(records: Sequence[GradingRecord], *, max_reject_pct: float = 20.0) -> list[str]:
    """Lot-level findings a reviewer must see before releasing the lot."""
    flags = []
    rejects = sum(is_reject(r) for r in records)
    if rejects / len(records) * 100 > max_reject_pct:
        flags.append(
            f"reject rate {rejects / len(records) * 100:.0f} % exceeds {max_reject_pct:.0f} %"
        )
    overdue: Counter[str] = Counter()
    simulated = set()
    for record in records:
        day = record.started_at.date()
        for instrument in record.instruments:
            if instrument.calibration_state(day) != "valid":
                overdue[f"{instrument.describe()} ({instrument.calibration_state(day)})"] += 1
            if instrument.simulated:
                simulated.add(instrument.describe())
    flags.extend(
        f"calibration {name} on {count} cell test(s)" for name, count in sorted(overdue.items())
    )
    if simulated:
        flags.append(
            "simulated instrument(s) used, not valid for production: "
            + ", ".join(sorted(simulated))
        )
    profiles = {f"{r.grade.profile_name} {r.grade.profile_version}" for r in records}
    if len(profiles) > 1:
        flags.append("mixed grading profiles in one lot: " + ", ".join(sorted(profiles)))
    return flags


def summarise(
    records: Sequence[GradingRecord],
    *,
    lot: str,
    group_size: int = 4,
    capacity_tol_pct: float = 2.0,
) -> BatchSummary:
    if not records:
        raise ValueError("a batch report needs at least one record")
    groups, unmatched = matching_groups(
        records, group_size=group_size, capacity_tol_pct=capacity_tol_pct
    )
    return BatchSummary(
        lot=lot,
        records=tuple(records),
        bin_counts=dict(sorted(Counter(r.grade.bin for r in records).items())),
        rejects=tuple(r for r in records if is_reject(r)),
        held=tuple(sorted((r for r in records if is_held(r)), key=lambda r: r.cell.serial_number)),
        groups=tuple(groups),
        unmatched=tuple(unmatched),
        flags=tuple(lot_flags(records)),
    )


def render_batch_report(
    summary: BatchSummary, out_path: Path, left_out: Mapping[str, str] | None = None
) -> Path:
    """Write the batch report PDF; ``left_out`` (cell -> why) lists the lot's cells that have no
    record in it, so the report never hides a cell silently."""
    s = styles()
    records = summary.records
    story: list[object] = [
        Paragraph(f"Batch grading report — lot {summary.lot}", s["title"]),
        Paragraph(
            f"{len(records)} cells · tested {format_utc(min(r.started_at for r in records))} to "
            f"{format_utc(max(r.finished_at for r in records))} · stations "
            f"{', '.join(sorted({r.station_id for r in records}))}",
            s["small"],
        ),
        Spacer(1, 3 * mm),
        Paragraph("Yield per bin", s["h"]),
    ]
    rows: list[list[object]] = [["Bin", "Cells", "Share / %"]]
    for name, count in summary.bin_counts.items():
        rows.append([name, str(count), f"{count / len(records) * 100:.1f}"])
    rows.append(
        ["yield (released: a reuse bin)", str(summary.released), f"{summary.yield_pct:.1f}"]
    )
    rows.append(
        [
            "held (re-test or quarantine)",
            str(len(summary.held)),
            f"{len(summary.held) / len(records) * 100:.1f}",
        ]
    )
    story.append(table(rows, [50 * mm, 20 * mm, 22 * mm]))

    story.append(Paragraph("Lot flags", s["h"]))
    if summary.flags:
        for flag in summary.flags:
            story.append(Paragraph(f"<font color='#b0413e'>&#9650;</font> {flag}", s["body"]))
    else:
        story.append(Paragraph("none", s["body"]))

    story.append(Paragraph("Distributions", s["h"]))
    png = batch_panels(
        [r.number(SOH_KEY) for r in records],
        [r.number(R_KEY) * 1000 for r in records],
        [r.grade.bin for r in records],
    )
    story.append(Image(io.BytesIO(png), width=174 * mm, height=174 * mm * 0.32))

    story.append(Paragraph("Rejects and reasons", s["h"]))
    reject_rows: list[list[object]] = [
        ["Serial", "Capacity / Ah", "SoH / %", "DCIR / mOhm", "Reasons"]
    ]
    for record in summary.rejects:
        reject_rows.append(
            [
                record.cell.serial_number,
                f"{record.number('6.7.2.3'):.3f}",
                f"{record.number(SOH_KEY):.1f}",
                f"{record.number(R_KEY) * 1000:.2f}",
                Paragraph("; ".join(record.grade.reasons), s["small"]),
            ]
        )
    if not summary.rejects:
        reject_rows.append(["none", "", "", "", ""])
    story.append(table(reject_rows, [30 * mm, 22 * mm, 18 * mm, 22 * mm, 82 * mm]))

    story.append(Paragraph("Held for re-test or in quarantine", s["h"]))
    held_rows: list[list[object]] = [["Serial", "Decision", "Reasons"]]
    for record in summary.held:
        held_rows.append(
            [
                record.cell.serial_number,
                record.grade.grade,
                Paragraph("; ".join(record.grade.reasons), s["small"]),
            ]
        )
    if not summary.held:
        held_rows.append(["none", "", ""])
    story.append(table(held_rows, [30 * mm, 26 * mm, 118 * mm]))

    story.append(Paragraph("Matching groups (released cells)", s["h"]))
    group_rows: list[list[object]] = [
        ["Group", "Bin", "Cells", "Capacity / Ah", "Spread / %", "DCIR spread / mOhm"]
    ]
    for number, group in enumerate(summary.groups, start=1):
        group_rows.append(
            [
                f"G{number}",
                group.bin,
                Paragraph(", ".join(group.serials), s["small"]),
                f"{group.capacity_min_ah:.3f}–{group.capacity_max_ah:.3f}",
                f"{group.capacity_spread_pct:.2f}",
                f"{group.resistance_spread_mohm:.2f}",
            ]
        )
    if not summary.groups:
        group_rows.append(["none", "", "", "", "", ""])
    story.append(table(group_rows, [14 * mm, 12 * mm, 64 * mm, 30 * mm, 20 * mm, 34 * mm]))
    if summary.unmatched:
        story.append(
            Paragraph("Unmatched (no complete group): " + ", ".join(summary.unmatched), s["small"])
        )

    story.append(Paragraph("All cells", s["h"]))
    all_rows: list[list[object]] = [
        ["Serial", "Grade", "Bin", "Capacity / Ah", "SoH / %", "DCIR / mOhm", "Status"]
    ]
    for record in sorted(records, key=lambda r: r.cell.serial_number):
        all_rows.append(
            [
                record.cell.serial_number,
                record.grade.grade,
                record.grade.bin,
                f"{record.number('6.7.2.3'):.3f}",
                f"{record.number(SOH_KEY):.1f}",
                f"{record.number(R_KEY) * 1000:.2f}",
                record.status.value,
            ]
        )
    story.append(table(all_rows, [34 * mm, 14 * mm, 16 * mm, 26 * mm, 18 * mm, 24 * mm, 30 * mm]))
    if left_out:
        story.append(Paragraph("Cells of the lot not in this report", s["h"]))
        out_rows: list[list[object]] = [["Serial", "Why"]]
        for serial, why in sorted(left_out.items()):
            out_rows.append([serial, Paragraph(why, s["small"])])
        story.append(table(out_rows, [34 * mm, 140 * mm]))

    def footer(canvas: Canvas, doc: SimpleDocTemplate) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 6.5)
        canvas.setFillColor(colors.grey)
        canvas.drawString(18 * mm, 10 * mm, f"lot {summary.lot}")
        canvas.drawRightString(A4[0] - 18 * mm, 10 * mm, f"page {doc.page}")
        canvas.restoreState()

    return build(out_path, story, footer, f"Batch report {summary.lot}")
