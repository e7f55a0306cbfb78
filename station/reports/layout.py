"""Shared page layout of the PDF reports (reportlab platypus, A4)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Image, SimpleDocTemplate, Table, TableStyle

NAVY = colors.HexColor("#1f4e79")


def styles() -> dict[str, ParagraphStyle]:
    base = getSampleStyleSheet()
    return {
        "title": ParagraphStyle("t", parent=base["Title"], fontSize=16, leading=19, spaceAfter=2),
        # keepWithNext: a heading never ends a page without what it heads.
        "h": ParagraphStyle(
            "h",
            parent=base["Heading3"],
            fontSize=10,
            spaceBefore=6,
            spaceAfter=3,
            textColor=NAVY,
            keepWithNext=1,
        ),
        "body": ParagraphStyle("b", parent=base["BodyText"], fontSize=8, leading=10),
        "small": ParagraphStyle("s", parent=base["BodyText"], fontSize=6.5, leading=8),
        "grade": ParagraphStyle(
            "g", parent=base["Title"], fontSize=54, leading=58, textColor=colors.white, alignment=1
        ),
        "bin": ParagraphStyle(
            "bin",
            parent=base["Title"],
            fontSize=13,
            leading=16,
            textColor=colors.white,
            alignment=1,
        ),
    }


def table(rows: list[list[object]], widths: list[float], header: bool = True) -> Table:
    table = Table(rows, colWidths=widths, hAlign="LEFT", repeatRows=1 if header else 0)
    style = [
        ("FONTSIZE", (0, 0), (-1, -1), 7.5),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
        ("TOPPADDING", (0, 0), (-1, -1), 1.5),
        ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.HexColor("#d0d5dd")),
    ]
    if header:
        style += [
            ("BACKGROUND", (0, 0), (-1, 0), NAVY),
            ("TEXTCOLOR", (0, 0), (-1, 0), colors.white),
            ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
        ]
    table.setStyle(TableStyle(style))
    return table


def build(out_path: Path, story: list[object], footer: Callable[..., None], title: str) -> Path:
    """Lay out ``story`` on A4 into ``out_path`` via a temporary file (no half-written PDF)."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    temporary = out_path.with_name(out_path.name + ".part")
    doc = SimpleDocTemplate(
        str(temporary),
        pagesize=A4,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=14 * mm,
        bottomMargin=16 * mm,
        title=title,
        author="cell grading station",
        invariant=1,
    )
    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    temporary.replace(out_path)
    return out_path


class FitImage(Image):
    """An image that shrinks (down to ``min_scale``) to fit the space left on the page, so a
    longer reasons list does not push the plots onto the next page."""

    def __init__(self, data: object, width: float, height: float, min_scale: float = 0.7) -> None:
        super().__init__(data, width=width, height=height)
        self._natural = (width, height)
        self._min_scale = min_scale

    def wrap(self, availWidth: float, availHeight: float) -> tuple[float, float]:  # noqa: N803
        width, height = self._natural
        scale = min(1.0, max(self._min_scale, availHeight / height))
        self.drawWidth, self.drawHeight = width * scale, height * scale
        return super().wrap(availWidth, availHeight)
