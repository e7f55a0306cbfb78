"""The alarm banner and the emergency Stop-all button."""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

STOP_ALL_SHORTCUTS = ("F12", "Ctrl+Shift+S")
"""Emergency stop keys; application-wide, so they work whatever has focus (even the scan field)."""


class AlarmBanner(QtWidgets.QFrame):
    """A red band across the window listing active trips and faults until acknowledged."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        self.setStyleSheet(
            "QFrame#banner { background: #c62828; } QLabel { color: white; }"
            " QPushButton { font-size: 14pt; padding: 4px 12px; }"
        )
        self.text = QtWidgets.QLabel("")
        font = self.text.font()
        font.setPointSize(16)
        font.setBold(True)
        self.text.setFont(font)
        self.text.setWordWrap(True)
        self.ack_button = QtWidgets.QPushButton("Acknowledge")
        self.ack_button.clicked.connect(self.acknowledge)
        layout = QtWidgets.QHBoxLayout(self)
        layout.addWidget(self.text, 1)
        layout.addWidget(self.ack_button)
        self.messages: list[str] = []
        self.hide()

    def add(self, message: str) -> None:
        self.messages.append(message)
        shown = self.messages[-3:]
        more = len(self.messages) - len(shown)
        text = "\n".join(shown)
        if more:
            text += f"\n(+{more} more)"
        self.text.setText(text)
        self.show()

    def acknowledge(self) -> None:
        self.messages.clear()
        self.text.clear()
        self.hide()


class StopAllButton(QtWidgets.QPushButton):
    """A large red button; pressing it (or F12 / Ctrl+Shift+S anywhere) emits ``stop``."""

    stop = QtCore.Signal()

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__("STOP ALL  (F12)", parent)
        self.setStyleSheet(
            "QPushButton { background: #b71c1c; color: white; font-size: 16pt; font-weight: bold;"
            " padding: 6px 18px; border: 3px solid #7f0000; border-radius: 6px; }"
            " QPushButton:pressed { background: #7f0000; }"
        )
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
        self.clicked.connect(self.stop)
        self.shortcuts: list[QtGui.QShortcut] = []

    def install_shortcuts(self, window: QtWidgets.QWidget) -> None:
        for keys in STOP_ALL_SHORTCUTS:
            shortcut = QtGui.QShortcut(QtGui.QKeySequence(keys), window)
            shortcut.setContext(QtCore.Qt.ShortcutContext.ApplicationShortcut)
            shortcut.activated.connect(self.stop)
            self.shortcuts.append(shortcut)
