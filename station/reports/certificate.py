"""Per-cell PDF certificate: identity, grade and bin in large type, reasons, key figures with
units and uncertainty, plots, test conditions, instruments and calibration, a QR code carrying
the passport identifier, and the signature fingerprint of the signed record."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from reportlab.graphics.barcode.qr import QrCodeWidget
from reportlab.graphics.shapes import Drawing
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from station.passport.rawdata import RawSeries
from station.passport.record import BatteryStatus, GradingRecord, PassportValue, format_utc
from station.passport.signing import b64url_decode
from station.reports.layout import FitImage, build, styles, table
from station.reports.plots import Impedance, cell_panels

GRADE_COLOURS = {"A": "#2e7d32", "B": "#1f4e79", "C": "#b26a00"}
# Decisions that release nothing: the cell is not placed on the market again under them.
NOT_RELEASED = {
    "RETEST": "held for re-test",
    "QUARANTINE": "quarantined (safety hold)",
    "REJECT": "rejected",
}
RECYCLE_USES = frozenset({"recycle"})


def status_for_decision(outcome: str, use: str = "") -> BatteryStatus:
    """The battery status (Regulation (EU) 2023/1542 Annex XIII 4(c)) that follows a grading
    decision: a reuse bin repurposes the cell; REJECT or a recycle bin makes it waste; RETEST and
    QUARANTINE decide nothing yet, so the status stays original."""
    if outcome == "REJECT" or use in RECYCLE_USES:
        return BatteryStatus.WASTE
    if outcome in NOT_RELEASED:
        return BatteryStatus.ORIGINAL
    return BatteryStatus.REPURPOSED


def status_line(record: GradingRecord) -> str:
    """The certificate's battery status: never "repurposed" (or another market status) while the
    decision releases nothing; the hold is said in words."""
    held = NOT_RELEASED.get(record.grade.grade)
    if held is None:
        return record.status.value
    if record.status.needs_original_link:
        return f"not released ({held})"
    return f"{record.status.value} ({held}; not released for reuse)"


@dataclass(frozen=True)
class SignatureInfo:
    """What the certificate prints about the signed record: the signer key's fingerprint (RFC
    7638 thumbprint) and the SHA-256 of the signed file."""

    key_fingerprint: str
    signed_sha256: str

    @classmethod
    def from_signed(cls, signed: bytes) -> SignatureInfo:
        outer = json.loads(signed)
        header = json.loads(b64url_decode(outer["signature"]["protected"]))
        return cls(str(header["kid"]), hashlib.sha256(signed).hexdigest())


KEY_FIGURES: Sequence[tuple[str, str, float, int]] = (
    # (record key, label, scale to display unit, decimals)
    ("6.7.2.3", "Remaining capacity", 1.0, 3),
    ("x-station.soh-capacity", "State of health (capacity, station figure)", 1.0, 1),
    ("6.7.2.4", "Capacity fade", 1.0, 1),
    ("6.7.2.6", "Remaining energy (bench estimate)", 1000.0, 2),
    ("6.7.4.4", "Round-trip energy efficiency", 1.0, 1),
    ("6.7.5#method=dcir", "DC internal resistance", 1000.0, 2),
    ("6.7.5#method=acir_1khz", "AC internal resistance (1 kHz)", 1000.0, 2),
    ("6.7.5.3#method=dcir", "Resistance increase (DCIR)", 1.0, 1),
    ("6.7.3.3#soc=80", "Power capability at 80 % SoC", 1.0, 1),
    ("6.7.3.3#soc=20", "Power capability at 20 % SoC", 1.0, 1),
    ("6.7.4.7", "Self-discharge rate", 1.0, 2),
    ("6.7.2.8", "State of charge as shipped", 1.0, 0),
    ("6.7.6.4", "Full cycles (imported)", 1.0, 0),
)
_DISPLAY_UNIT = {"kWh": "Wh", "Ohm": "mOhm"}


def display(value: PassportValue, scale: float, decimals: int) -> tuple[str, str]:
    """The value and its expanded uncertainty U = 2u as printed, e.g. ``("3.924", "0.078")``."""
    number = float(value.value) * scale  # type: ignore[arg-type]
    shown = f"{number:.{decimals}f}"
    if value.uncertainty is None:
        return shown, ""
    return shown, f"{2.0 * value.uncertainty * scale:.{max(decimals, 1)}f}"


def display_unit(value: PassportValue, scale: float) -> str:
    return _DISPLAY_UNIT.get(value.unit, value.unit) if scale != 1.0 else value.unit


def _qr(text: str, size_mm: float) -> Drawing:
    widget = QrCodeWidget(text, barLevel="M")
    x0, y0, x1, y1 = widget.getBounds()
    size = size_mm * mm
    drawing = Drawing(size, size, transform=[size / (x1 - x0), 0, 0, size / (y1 - y0), 0, 0])
    drawing.add(widget)
    return drawing


def _grade_style(style: ParagraphStyle, text: str) -> ParagraphStyle:
    """The grade badge's style, shrunk so a long outcome (RETEST, QUARANTINE) stays on one line
    of the 44 mm box (36 mm of text width inside the cell padding)."""
    width = stringWidth(text, style.fontName, style.fontSize) or 1.0
    size = min(style.fontSize, style.fontSize * 36 * mm / width)
    return ParagraphStyle(f"{style.name}-{text}", parent=style, fontSize=size, leading=size * 1.1)


def render_certificate(
    record: GradingRecord,
    raw: RawSeries,
    out_path: Path,
    *,
    signature: SignatureInfo,
    discharge_step: int,
    pulse_step: int | None = None,
    impedance: Impedance | None = None,
) -> Path:
    """Write the certificate PDF to ``out_path`` (via a temporary file, so no half-written PDF)."""
    s = styles()
    cell = record.cell
    story: list[object] = []
    story.append(Paragraph("Cell grading certificate", s["title"]))
    story.append(
        Paragraph(
            f"Station {record.station_id} &middot; record {record.record_id} &middot; test "
            f"{record.test_id} &middot; {format_utc(record.finished_at)}",
            s["small"],
        )
    )
    story.append(Spacer(1, 4 * mm))

    identity = [
        ["Passport ID", cell.passport_id],
        ["Serial number", cell.serial_number],
        ["Model", f"{cell.model} ({cell.chemistry})" if cell.chemistry else cell.model],
        ["Manufacturer", cell.manufacturer_name],
        ["Battery status", status_line(record)],
        ["Original passport", record.original_passport_id or "(none)"],
        ["Grading profile", f"{record.grade.profile_name} {record.grade.profile_version}"],
        ["Operator", record.operator],
    ]
    id_table = Table(
        [[Paragraph(f"<b>{k}</b>", s["body"]), Paragraph(v, s["body"])] for k, v in identity],
        colWidths=[30 * mm, 92 * mm],
    )
    id_table.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 1),
                ("TOPPADDING", (0, 0), (-1, -1), 1),
            ]
        )
    )
    grade = record.grade
    colour = colors.HexColor(GRADE_COLOURS.get(grade.grade, "#b0413e"))
    grade_box = Table(
        [
            [Paragraph("GRADE", s["bin"])],
            [Paragraph(grade.grade, _grade_style(s["grade"], grade.grade))],
            [Paragraph(f"BIN {grade.bin.upper()}", s["bin"])],
        ],
        colWidths=[44 * mm],
    )
    grade_box.setStyle(
        TableStyle(
            [
                ("BACKGROUND", (0, 0), (-1, -1), colour),
                ("ALIGN", (0, 0), (-1, -1), "CENTER"),
                ("TOPPADDING", (0, 0), (-1, -1), 3),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
            ]
        )
    )
    top = Table([[id_table, grade_box]], colWidths=[126 * mm, 48 * mm])
    top.setStyle(
        TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 0)])
    )
    story.append(top)

    story.append(Paragraph("Why this grade", s["h"]))
    for reason in grade.reasons:
        story.append(Paragraph(f"&bull; {reason}", s["body"]))

    story.append(Paragraph("Key figures", s["h"]))
    rows: list[list[object]] = [["Figure", "Value", "± U (k=2)", "Unit", "Source", "DIN clause"]]
    for key, label, scale, decimals in KEY_FIGURES:
        value = record.get(key)
        if value is None:
            continue
        shown, uncertainty = display(value, scale, decimals)
        rows.append(
            [
                label,
                shown,
                uncertainty,
                display_unit(value, scale),
                value.source.value,
                value.clause,
            ]
        )
    story.append(table(rows, [58 * mm, 18 * mm, 18 * mm, 16 * mm, 24 * mm, 40 * mm]))

    png = cell_panels(
        raw, discharge_step=discharge_step, pulse_step=pulse_step, impedance=impedance
    )
    story.append(Spacer(1, 2 * mm))
    story.append(FitImage(io.BytesIO(png), width=174 * mm, height=174 * mm * 0.63))

    story.append(Paragraph("Test conditions and methods", s["h"]))
    cond_rows: list[list[object]] = [
        ["Figure", "Method", "T / °C", "C-rate", "SoC / %", "Pulse / s", "Rest / s"]
    ]
    for key, label, _, _ in KEY_FIGURES:
        value = record.get(key)
        if value is None or value.source.value not in ("measured", "derived"):
            continue
        c = value.conditions

        def fmt(x: float | None, d: int = 1) -> str:
            return "" if x is None else f"{x:.{d}f}"

        cond_rows.append(
            [
                label,
                Paragraph(value.method, s["small"]),
                fmt(c.temperature_c),
                fmt(c.c_rate, 2),
                fmt(c.soc_pct, 0),
                fmt(c.pulse_length_s, 0),
                fmt(c.rest_s, 0),
            ]
        )
    story.append(table(cond_rows, [50 * mm, 62 * mm, 12 * mm, 12 * mm, 13 * mm, 12 * mm, 13 * mm]))

    story.append(Paragraph("Instruments and calibration", s["h"]))
    day = record.started_at.date()
    inst_rows: list[list[object]] = [
        ["Use", "Instrument", "Firmware", "Certificate", "Due", "State"]
    ]
    for instrument in record.instruments:
        inst_rows.append(
            [
                instrument.key,
                instrument.describe(),
                instrument.firmware,
                instrument.calibration_certificate,
                ""
                if instrument.calibration_due is None
                else instrument.calibration_due.isoformat(),
                instrument.calibration_state(day).upper(),
            ]
        )
    inst_table = table(inst_rows, [16 * mm, 62 * mm, 18 * mm, 30 * mm, 22 * mm, 20 * mm])
    for row, instrument in enumerate(record.instruments, start=1):
        if instrument.calibration_state(day) != "valid":
            inst_table.setStyle(TableStyle([("TEXTCOLOR", (5, row), (5, row), colors.red)]))
    story.append(inst_table)

    integrity = [
        Paragraph("Integrity", s["h"]),
        Paragraph(
            f"<b>Signature key fingerprint</b> (RFC 7638): {signature.key_fingerprint}", s["small"]
        ),
        Paragraph(f"<b>Signed record SHA-256</b>: {signature.signed_sha256}", s["small"]),
        Paragraph(f"<b>Raw data SHA-256</b>: {record.raw_data_sha256}", s["small"]),
        Paragraph(
            "Check the signed record offline with <font face='Courier'>station verify FILE</font>."
            " The QR code carries the passport identifier.",
            s["small"],
        ),
    ]
    block = Table([[integrity, _qr(cell.passport_id, 30)]], colWidths=[140 * mm, 34 * mm])
    block.setStyle(
        TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 0)])
    )
    story.append(KeepTogether([block]))

    def footer(canvas: Canvas, doc: SimpleDocTemplate) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 6.5)
        canvas.setFillColor(colors.grey)
        canvas.drawString(
            18 * mm, 10 * mm, f"{cell.passport_id}  ·  key {signature.key_fingerprint[:16]}…"
        )
        canvas.drawRightString(A4[0] - 18 * mm, 10 * mm, f"page {doc.page}")
        canvas.restoreState()

    return build(out_path, story, footer, f"Certificate {cell.serial_number}")
