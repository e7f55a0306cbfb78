"""Station overview: one tile per channel, coloured by state, readable at arm's length."""

from __future__ import annotations

import math

from PySide6 import QtCore, QtGui, QtWidgets

from ui.state import STATE_COLOURS, ChannelState, ChannelView, format_duration, grade_colour


def _fmt(value: float | None, unit: str, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f} {unit}"


class ChannelTile(QtWidgets.QFrame):
    """One channel: ID and state, cell ID, step, V/I/T, elapsed/remaining, grade badge."""

    clicked = QtCore.Signal(str)

    def __init__(self, channel_id: str, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.channel_id = channel_id
        self.setObjectName("tile")
        self.setFrameShape(QtWidgets.QFrame.Shape.StyledPanel)
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.StrongFocus)
        self.setMinimumSize(210, 130)
        self.setSizePolicy(
            QtWidgets.QSizePolicy.Policy.Expanding, QtWidgets.QSizePolicy.Policy.Expanding
        )

        self.header = QtWidgets.QLabel(channel_id)
        self.state_label = QtWidgets.QLabel(ChannelState.IDLE.value.upper())
        self.state_label.setAlignment(QtCore.Qt.AlignmentFlag.AlignRight)
        self.cell_label = QtWidgets.QLabel("no cell")
        self.step_label = QtWidgets.QLabel("")
        self.values_label = QtWidgets.QLabel("")
        self.time_label = QtWidgets.QLabel("")
        self.grade_badge = QtWidgets.QLabel("")
        self.grade_badge.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.grade_badge.setMinimumWidth(46)
        self.grade_badge.hide()

        self._set_font(self.header, 13, bold=True)
        self._set_font(self.state_label, 13, bold=True)
        self._set_font(self.cell_label, 15, bold=True)
        self._set_font(self.step_label, 11)
        self._set_font(self.values_label, 13, bold=True, mono=True)
        self._set_font(self.time_label, 11, mono=True)
        self._set_font(self.grade_badge, 24, bold=True)

        top = QtWidgets.QHBoxLayout()
        top.addWidget(self.header)
        top.addStretch(1)
        top.addWidget(self.state_label)
        body = QtWidgets.QVBoxLayout()
        body.addWidget(self.cell_label)
        body.addWidget(self.step_label)
        body.addWidget(self.values_label)
        body.addWidget(self.time_label)
        middle = QtWidgets.QHBoxLayout()
        middle.addLayout(body, 1)
        middle.addWidget(self.grade_badge)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        layout.setSpacing(2)
        layout.addLayout(top)
        layout.addLayout(middle)
        self._state: ChannelState | None = None
        self._selected = False
        self._apply_colours(ChannelState.IDLE)

    @staticmethod
    def _set_font(label: QtWidgets.QLabel, points: int, *, bold: bool = False, mono: bool = False):
        font = QtGui.QFontDatabase.systemFont(
            QtGui.QFontDatabase.SystemFont.FixedFont
            if mono
            else QtGui.QFontDatabase.SystemFont.GeneralFont
        )
        font.setPointSize(points)
        font.setBold(bold)
        label.setFont(font)

    def _apply_colours(self, state: ChannelState) -> None:
        background, text = STATE_COLOURS[state]
        border = "#ffeb3b" if self._selected else "#303030"
        width = 4 if self._selected else 1
        self.setStyleSheet(
            f"QFrame#tile {{ background: {background}; border: {width}px solid {border};"
            f" border-radius: 6px; }} QLabel {{ color: {text}; background: transparent; }}"
        )
        self._state = state

    def set_selected(self, selected: bool) -> None:
        if selected != self._selected:
            self._selected = selected
            self._apply_colours(self._state or ChannelState.IDLE)

    def show_view(self, view: ChannelView) -> None:
        if view.state is not self._state:
            self._apply_colours(view.state)
        self.state_label.setText(view.state.value.upper())
        self.cell_label.setText(view.cell_id or "no cell")
        step = view.step_label if view.step_index < 0 else f"{view.step_index}: {view.step_label}"
        self.step_label.setText(view.alarm if view.alarm else step)
        self.step_label.setWordWrap(bool(view.alarm))
        self.values_label.setText(
            f"{_fmt(view.voltage_v, 'V', 3)}  {_fmt(view.current_a, 'A', 2)}"
            f"  {_fmt(view.temperature_c, '°C', 1)}"
        )
        self.time_label.setText(
            f"{format_duration(view.elapsed_s)} elapsed  {format_duration(view.remaining_s)} left"
        )
        if view.grade is not None:
            self.grade_badge.setText(view.grade.grade)
            self.grade_badge.setStyleSheet(
                f"color: white; background: {grade_colour(view.grade.grade)};"
                " border: 2px solid white; border-radius: 6px; padding: 2px 6px;"
            )
            self.grade_badge.show()
        else:
            self.grade_badge.hide()
        self.setToolTip(view.alarm)

    def mousePressEvent(self, event: QtGui.QMouseEvent) -> None:  # noqa: N802 - Qt override
        self.clicked.emit(self.channel_id)
        super().mousePressEvent(event)

    def keyPressEvent(self, event: QtGui.QKeyEvent) -> None:  # noqa: N802 - Qt override
        if event.key() in (QtCore.Qt.Key.Key_Return, QtCore.Qt.Key.Key_Enter):
            self.clicked.emit(self.channel_id)
            return
        super().keyPressEvent(event)


def columns_for(count: int) -> int:
    """Grid columns for ``count`` tiles: close to a 16:10 screen, at most 8 wide."""
    if count <= 4:
        return max(count, 1)
    return min(8, math.ceil(math.sqrt(count * 1.6)))


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
        cols = columns_for(len(channel_ids))
        for index, channel_id in enumerate(channel_ids):
            tile = ChannelTile(channel_id)
            tile.clicked.connect(self.select)
            self._grid.addWidget(tile, index // cols, index % cols)
            self.tiles[channel_id] = tile

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
