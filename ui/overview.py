"""Station overview: one tile per channel, coloured by state, readable at arm's length."""

from __future__ import annotations

import math

from PySide6 import QtCore, QtGui, QtWidgets

from ui.state import STATE_COLOURS, ChannelState, ChannelView, format_duration, grade_colour


def _fmt(value: float | None, unit: str, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f} {unit}"


def _times(view: ChannelView) -> str:
    if view.elapsed_s is None:
        return ""
    text = format_duration(view.elapsed_s)
    if view.remaining_s is None or view.state not in (ChannelState.RUNNING, ChannelState.PAUSED):
        return f"{text} elapsed"
    return f"{text}  ({format_duration(view.remaining_s)} left)"


TILE_MIN_W = 200
TILE_MIN_H = 150


class ChannelTile(QtWidgets.QWidget):
    """One channel: ID and state, cell ID, step, V/I/T, elapsed/remaining, grade badge.

    Painted in one pass instead of built from labels: with 32-64 tiles refreshing at 10 Hz, label
    text changes re-run layouts and style sheets and cost the event loop tens of milliseconds per
    frame; one ``paintEvent`` per tile costs well under one.
    """

    clicked = QtCore.Signal(str)

    def __init__(self, channel_id: str, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.channel_id = channel_id
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.StrongFocus)
        self.setMinimumSize(TILE_MIN_W, TILE_MIN_H)
        self.setSizePolicy(
            QtWidgets.QSizePolicy.Policy.Expanding, QtWidgets.QSizePolicy.Policy.Expanding
        )
        self.state = ChannelState.IDLE
        self.state_text = ChannelState.IDLE.value.upper()
        self.cell_text = "no cell"
        self.step_text = ""
        self.values_text = ""
        self.time_text = ""
        self.grade_text = ""
        self.alarm_text = ""
        self.selected = False
        self._fonts = {
            "header": self._font(13, bold=True),
            "cell": self._font(15, bold=True),
            "small": self._font(11),
            "volts": self._font(18, bold=True, mono=True),
            "values": self._font(13, bold=True, mono=True),
            "mono": self._font(11, mono=True),
            "grade": self._font(24, bold=True),
            "grade_word": self._font(16, bold=True),
        }

    @staticmethod
    def _font(points: int, *, bold: bool = False, mono: bool = False) -> QtGui.QFont:
        kind = (
            QtGui.QFontDatabase.SystemFont.FixedFont
            if mono
            else QtGui.QFontDatabase.SystemFont.GeneralFont
        )
        font = QtGui.QFontDatabase.systemFont(kind)
        font.setPointSize(points)
        font.setBold(bold)
        return font

    def set_selected(self, selected: bool) -> None:
        if selected != self.selected:
            self.selected = selected
            self.update()

    def show_view(self, view: ChannelView) -> None:
        step = view.step_label if view.step_index < 0 else f"{view.step_index}: {view.step_label}"
        if view.state is ChannelState.STOPPED and view.end_reason:
            step = view.end_reason  # e.g. why the engine refused to start it
        texts = (
            view.state,
            view.state.value.upper(),
            view.cell_id or "no cell",
            step,
            f"{_fmt(view.voltage_v, 'V', 3)}\n{_fmt(view.current_a, 'A', 2)}"
            f"   {_fmt(view.temperature_c, '°C', 1)}",
            _times(view),
            view.grade.grade if view.grade is not None else "",
            view.alarm.removeprefix(f"{view.channel_id}: "),
        )
        current = (
            self.state,
            self.state_text,
            self.cell_text,
            self.step_text,
            self.values_text,
            self.time_text,
            self.grade_text,
            self.alarm_text,
        )
        if texts == current:
            return
        (
            self.state,
            self.state_text,
            self.cell_text,
            self.step_text,
            self.values_text,
            self.time_text,
            self.grade_text,
            self.alarm_text,
        ) = texts
        self.setToolTip(self.alarm_text or (step if view.state is ChannelState.STOPPED else ""))
        self.update()

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:  # noqa: N802 - Qt override
        background, text = STATE_COLOURS[self.state]
        painter = QtGui.QPainter(self)
        rect = QtCore.QRectF(self.rect()).adjusted(1.5, 1.5, -1.5, -1.5)
        border = QtGui.QPen(QtGui.QColor("#ffeb3b" if self.selected else "#303030"))
        border.setWidthF(4.0 if self.selected else 1.0)
        painter.setPen(border)
        painter.setBrush(QtGui.QColor(background))
        painter.drawRoundedRect(rect, 6, 6)
        painter.setPen(QtGui.QColor(text))
        inner = rect.adjusted(8, 5, -8, -5)
        align_left = QtCore.Qt.AlignmentFlag.AlignLeft | QtCore.Qt.AlignmentFlag.AlignTop
        align_right = QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignTop
        painter.setFont(self._fonts["header"])
        painter.drawText(inner, align_left, self.channel_id)
        painter.drawText(inner, align_right, self.state_text)
        line_h = QtGui.QFontMetricsF(self._fonts["header"]).height()
        body = inner.adjusted(0, line_h + 2, 0, 0)
        badge: QtCore.QRectF | None = None
        if self.grade_text:
            # Bottom right, where it narrows only the lines beside it (the cell ID stays whole).
            # A bin letter in 24 pt; a word (RETEST, QUARANTINE) in 16 pt so it fits a tile.
            font = self._fonts["grade" if len(self.grade_text) <= 2 else "grade_word"]
            painter.setFont(font)
            metrics = QtGui.QFontMetricsF(font)
            badge_w = max(metrics.horizontalAdvance(self.grade_text) + 14, 46)
            badge_h = metrics.height() + 6
            badge = QtCore.QRectF(body.right() - badge_w, body.bottom() - badge_h, badge_w, badge_h)
            painter.setPen(QtGui.QPen(QtGui.QColor("white"), 2))
            painter.setBrush(QtGui.QColor(grade_colour(self.grade_text)))
            painter.drawRoundedRect(badge, 6, 6)
            painter.drawText(badge, QtCore.Qt.AlignmentFlag.AlignCenter, self.grade_text)
            painter.setPen(QtGui.QColor(text))
        text_area = body
        y = text_area.top()
        lines = [("cell", self.cell_text)]
        if self.alarm_text:
            lines.append(("small", self.alarm_text))
        else:
            volts, _, rest = self.values_text.partition("\n")
            lines += [("small", self.step_text), ("volts", volts), ("values", rest)]
            lines.append(("mono", self.time_text))
        for font_key, line in lines:
            font = self._fonts[font_key]
            painter.setFont(font)
            metrics = QtGui.QFontMetricsF(font)
            wrap = font_key == "small" and bool(self.alarm_text)
            height = metrics.height() * (3 if wrap else 1)
            box = QtCore.QRectF(text_area.left(), y, text_area.width(), height)
            if badge is not None and box.bottom() > badge.top():
                box.setRight(badge.left() - 4)
            if font_key == "mono" and metrics.horizontalAdvance(line) > box.width():
                # Beside a grade badge "0:10:15 elapsed" would elide to "0:10:15 e…".
                line = line.removesuffix(" elapsed")
            flags = int(align_left)
            if wrap:
                flags |= int(QtCore.Qt.TextFlag.TextWordWrap)
                box.setRight(body.right())
                box.setHeight(body.bottom() - y)
            painter.drawText(
                box,
                flags,
                metrics.elidedText(line, QtCore.Qt.TextElideMode.ElideRight, box.width())
                if not wrap
                else line,
            )
            y += height + 1
        painter.end()

    def mousePressEvent(self, event: QtGui.QMouseEvent) -> None:  # noqa: N802 - Qt override
        self.clicked.emit(self.channel_id)
        super().mousePressEvent(event)

    def keyPressEvent(self, event: QtGui.QKeyEvent) -> None:  # noqa: N802 - Qt override
        if event.key() in (QtCore.Qt.Key.Key_Return, QtCore.Qt.Key.Key_Enter):
            self.clicked.emit(self.channel_id)
            return
        super().keyPressEvent(event)


def columns_for(count: int, width_px: int, height_px: int) -> int:
    """Grid columns for ``count`` tiles in a ``width_px`` x ``height_px`` area.

    As many columns as fit at the tile's minimum width, but no more than needed to keep the
    tiles about as wide as tall (a near-square grid of 16 on a wide area), never fewer than one.
    """
    if count <= 1:
        return 1
    fit = max(1, width_px // (TILE_MIN_W + 6))
    shape = math.ceil(math.sqrt(count * max(width_px, 1) / max(height_px, 1) * 0.8))
    return max(1, min(count, fit, max(shape, 1)))


class OverviewWidget(QtWidgets.QScrollArea):
    """The grid of channel tiles (1 to 64+ channels; scrolls when the window is small)."""

    channel_selected = QtCore.Signal(str)

    def __init__(self, channel_ids: list[str], parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        inner = QtWidgets.QWidget()
        self._grid = QtWidgets.QGridLayout(inner)
        self._grid.setSpacing(6)
        self.setWidget(inner)
        self.tiles: dict[str, ChannelTile] = {}
        self.selected: str | None = None
        self.set_channels(channel_ids)

    def set_channels(self, channel_ids: list[str]) -> None:
        for tile in self.tiles.values():
            self._grid.removeWidget(tile)
            tile.deleteLater()
        self.tiles = {}
        for channel_id in channel_ids:
            tile = ChannelTile(channel_id)
            tile.clicked.connect(self.select)
            self.tiles[channel_id] = tile
        self._columns = 0
        self._arrange()

    def _arrange(self) -> None:
        size = self.viewport().size()
        cols = columns_for(len(self.tiles), size.width(), size.height())
        if cols == self._columns:
            return
        self._columns = cols
        for tile in self.tiles.values():
            self._grid.removeWidget(tile)
        for index, tile in enumerate(self.tiles.values()):
            self._grid.addWidget(tile, index // cols, index % cols)

    @property
    def columns(self) -> int:
        return self._columns

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._arrange()

    def select(self, channel_id: str) -> None:
        if channel_id not in self.tiles:
            return
        if self.selected in self.tiles:
            self.tiles[self.selected].set_selected(False)
        self.selected = channel_id
        self.tiles[channel_id].set_selected(True)
        self.channel_selected.emit(channel_id)

    def show_view(self, view: ChannelView) -> None:
        tile = self.tiles.get(view.channel_id)
        if tile is not None:
            tile.show_view(view)
