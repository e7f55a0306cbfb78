"""Main window and the ``station-gui`` entry point."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from PySide6 import QtCore, QtWidgets

import station

APP_NAME = "Cell Grading Station"


class MainWindow(QtWidgets.QMainWindow):
    """The bench window. ``simulated`` marks every view so simulated data is never mistaken."""

    def __init__(self, *, simulated: bool = False) -> None:
        super().__init__()
        self.simulated = simulated
        title = f"{APP_NAME} {station.__version__}"
        if simulated:
            title += " - SIMULATED"
        self.setWindowTitle(title)
        self.resize(1280, 800)

        placeholder = QtWidgets.QLabel("No bench loaded.")
        placeholder.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        font = placeholder.font()
        font.setPointSize(18)
        placeholder.setFont(font)
        self.setCentralWidget(placeholder)

        self.mode_label = QtWidgets.QLabel("SIMULATED" if simulated else "HARDWARE")
        if simulated:
            self.mode_label.setStyleSheet("color: white; background: #b35c00; padding: 2px 8px;")
        self.statusBar().addPermanentWidget(self.mode_label)
        self.statusBar().showMessage("Ready")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="station-gui", description="Open the bench GUI.")
    parser.add_argument(
        "--sim",
        action="store_true",
        help="run against a simulated bench (SIMULATED is shown everywhere)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    app.setApplicationName(APP_NAME)
    window = MainWindow(simulated=args.sim)
    window.show()
    return app.exec()
