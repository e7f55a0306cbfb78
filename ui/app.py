"""Main window and the ``station-gui`` entry point."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from collections.abc import Callable, Sequence

from PySide6 import QtCore, QtGui, QtWidgets

import station
from ui.controller import StationController
from ui.detail import CellDetail
from ui.engine_api import GradeView, InstrumentInfo, RecipeInfo
from ui.intake import IntakePanel
from ui.overview import OverviewWidget
from ui.plots import LivePlots
from ui.safety import AlarmBanner, StopAllButton
from ui.views import BatchView, InstrumentsView, RecipesView

APP_NAME = "Cell Grading Station"
ORGANISATION = "CellGradingStation"


class CloseChoice(enum.Enum):
    STOP_AND_QUIT = "stop"
    CANCEL = "cancel"


def ask_close(parent: QtWidgets.QWidget, active: list[str]) -> CloseChoice:
    """Ask what to do when runs are active; runs live in this process, so closing stops them."""
    box = QtWidgets.QMessageBox(parent)
    box.setIcon(QtWidgets.QMessageBox.Icon.Warning)
    box.setWindowTitle("Runs are active")
    box.setText(
        f"{len(active)} channel(s) are running: {', '.join(active[:8])}"
        f"{'…' if len(active) > 8 else ''}.\n\nClosing stops every run and turns all outputs off."
    )
    stop = box.addButton("Stop all runs and quit", QtWidgets.QMessageBox.ButtonRole.DestructiveRole)
    box.addButton("Keep running", QtWidgets.QMessageBox.ButtonRole.RejectRole)
    box.exec()
    return CloseChoice.STOP_AND_QUIT if box.clickedButton() is stop else CloseChoice.CANCEL


class MainWindow(QtWidgets.QMainWindow):
    """The bench window. ``simulated`` marks every view so simulated data is never mistaken."""

    def __init__(
        self,
        *,
        simulated: bool = False,
        controller: StationController | None = None,
        settings: QtCore.QSettings | None = None,
        bench_name: str = "",
        recipes: Sequence[RecipeInfo] = (),
        instruments: Sequence[InstrumentInfo] = (),
        today: dt.date | None = None,
    ) -> None:
        super().__init__()
        self.simulated = simulated
        self.controller = controller or StationController(None, [], parent=self)
        self.settings = settings or QtCore.QSettings(ORGANISATION, APP_NAME)
        self.bench_name = bench_name
        self.confirm_close: Callable[[list[str]], CloseChoice] = lambda active: ask_close(
            self, active
        )
        self.shutdown_clean: bool | None = None
        self.after_shutdown: list[Callable[[], object]] = []
        """Run after the controller has stopped every worker (e.g. close the storage)."""
        title = f"{APP_NAME} {station.__version__}"
        if bench_name:
            title += f" - {bench_name}"
        if simulated:
            title += " - SIMULATED"
        self.setWindowTitle(title)
        self.resize(1280, 800)
        self.setObjectName("main_window")

        channel_ids = list(self.controller.state.channels)
        self.banner = AlarmBanner()
        self.intake = IntakePanel(is_known=self.controller.where_is)
        self.overview = OverviewWidget(channel_ids)
        self.placeholder = QtWidgets.QLabel("No bench loaded.")
        self.placeholder.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        font = self.placeholder.font()
        font.setPointSize(18)
        self.placeholder.setFont(font)
        self.placeholder.setVisible(not channel_ids)
        self.overview.setVisible(bool(channel_ids))

        self.detail = CellDetail()
        self.plots = LivePlots()
        self.instruments_view = InstrumentsView()
        self.recipes_view = RecipesView()
        self.batch = BatchView()
        self.today = today or dt.date.today()
        self.instruments_view.set_instruments(instruments, self.today)
        self.recipes_view.set_recipes(recipes)

        cell_split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        cell_split.setObjectName("cell_split")
        cell_split.addWidget(self.plots)
        cell_split.addWidget(self.detail)
        self.tabs = QtWidgets.QTabWidget()
        self.tabs.addTab(cell_split, "Channel")
        self.tabs.addTab(self.batch, "Batch")
        self.tabs.addTab(self.instruments_view, "Instruments")
        self.tabs.addTab(self.recipes_view, "Recipes")

        left = QtWidgets.QWidget()
        left_layout = QtWidgets.QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.intake)
        left_layout.addWidget(self.overview, 1)
        left_layout.addWidget(self.placeholder, 1)
        self.splitter = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        self.splitter.setObjectName("main_split")
        self.splitter.addWidget(left)
        self.splitter.addWidget(self.tabs)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self._splitters = (self.splitter, cell_split)
        self._splitters_restored = False

        central = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(central)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.banner)
        layout.addWidget(self.splitter, 1)
        self.setCentralWidget(central)

        self.stop_button = StopAllButton()
        self.stop_button.install_shortcuts(self)
        self.stop_button.stop.connect(self.controller.stop_all)
        toolbar = self.addToolBar("Bench")
        toolbar.setObjectName("bench_toolbar")
        toolbar.setMovable(False)
        toolbar.addWidget(self.stop_button)
        toolbar.addSeparator()
        self.pause_action = toolbar.addAction("Pause", self._pause_selected)
        self.resume_action = toolbar.addAction("Resume", self._resume_selected)
        self.abort_action = toolbar.addAction("Abort channel", self._abort_selected)
        if simulated:
            spacer = QtWidgets.QWidget()
            spacer.setSizePolicy(
                QtWidgets.QSizePolicy.Policy.Expanding, QtWidgets.QSizePolicy.Policy.Preferred
            )
            toolbar.addWidget(spacer)
            self.sim_badge = QtWidgets.QLabel(
                "  SIMULATED BENCH - results are not production grades  "
            )
            self.sim_badge.setStyleSheet(
                "color: white; background: #b35c00; font-size: 14pt; font-weight: bold;"
                " padding: 4px; border-radius: 4px;"
            )
            toolbar.addWidget(self.sim_badge)
        self.plots.history_button.clicked.connect(self._load_history)

        self.mode_label = QtWidgets.QLabel("SIMULATED" if simulated else "HARDWARE")
        if simulated:
            self.mode_label.setStyleSheet("color: white; background: #b35c00; padding: 2px 8px;")
        self.statusBar().addPermanentWidget(self.mode_label)
        self.statusBar().showMessage("Ready")

        escape = QtGui.QShortcut(QtGui.QKeySequence(QtCore.Qt.Key.Key_Escape), self)
        escape.activated.connect(self._focus_scanner)

        c = self.controller
        c.channels_changed.connect(self._on_channels_changed)
        c.samples_arrived.connect(self.plots.add_samples)
        c.run_started.connect(self.plots.reset_channel)
        c.alarm.connect(self._on_alarm)
        c.grade_ready.connect(self._on_grade)
        c.history_ready.connect(self.plots.set_history)
        c.status.connect(self.statusBar().showMessage)
        c.intake_result.connect(self.intake.show_result)
        c.stop_all_finished.connect(self._on_stop_all_finished)
        self.intake.scanned.connect(c.intake)
        self.intake.start_requested.connect(c.start_assigned)
        self.intake.lot_import_requested.connect(c.import_lot)
        self.overview.channel_selected.connect(self.select_channel)
        self.instruments_view.test_requested.connect(c.test_instrument)
        c.connected.connect(self._on_connected)
        c.stored_grades.connect(self.batch.set_grades)
        c.matching_ready.connect(self.batch.show_groups)
        self.batch.refresh_requested.connect(c.load_stored_grades)
        self.batch.match_requested.connect(c.match)
        self.batch.export_requested.connect(c.export)
        c.exported.connect(self.batch.export_status.setText)
        c.lots_ready.connect(self.batch.set_lots)
        c.batch_exported.connect(self.batch.show_outcome)
        self.batch.passports_requested.connect(c.export_passports)
        self.batch.report_requested.connect(c.report_lot)
        c.load_stored_grades()
        followups = self.batch.followups
        c.followups_ready.connect(followups.set_followups)
        c.remeasure_failed.connect(followups.start_failed)
        c.run_ended.connect(followups.run_ended)
        c.grade_ready.connect(lambda _grade: c.load_followups())
        followups.refresh_requested.connect(c.load_followups)
        followups.remeasure_requested.connect(c.remeasure)
        c.load_followups()
        refcheck = self.instruments_view.refcheck
        refcheck.check_requested.connect(c.run_reference_check)
        c.reference_checked.connect(refcheck.show_result)
        c.reference_failed.connect(refcheck.show_error)
        c.reference_history.connect(refcheck.show_history)
        if c.reference_checker is not None:
            refcheck.set_cells(list(c.reference_checker.cells.values()))
            c.refresh_reference_history()
        self.recipes_view.recipe_chosen.connect(self._on_recipe_chosen)
        c.instrument_result.connect(
            lambda name, text: self.instruments_view.status.setText(f"{name}: {text}")
        )

        self._restore_settings()
        if bench_name:
            self.settings.setValue("bench/last", bench_name)
        if channel_ids:
            self.overview.select(channel_ids[0])
        self.intake.setFocus()

    def _on_channels_changed(self, channel_ids: list[str]) -> None:
        for channel_id in channel_ids:
            view = self.controller.state.channel(channel_id)
            self.overview.show_view(view)
            if channel_id == self.overview.selected:
                self.detail.show_view(view)

    def _on_recipe_chosen(self, name: str) -> None:
        self.controller.recipe = name
        self.statusBar().showMessage(f"New runs use recipe {name}")

    def _on_connected(self, identities: dict[str, str]) -> None:
        rows = [
            dataclasses.replace(
                info,
                identity=identities.get(info.name, info.identity),
                connected=info.name in identities,
            )
            for info in self.instruments_view.instruments
        ]
        self.instruments_view.set_instruments(rows, self.today)

    def select_channel(self, channel_id: str) -> None:
        view = self.controller.state.channel(channel_id)
        self.plots.show_channel(channel_id, f"{channel_id}  {view.cell_id}")
        self.detail.show_view(view)

    def _on_alarm(self, message: str) -> None:
        self.banner.add(message)
        self.statusBar().showMessage(message)

    def _on_grade(self, grade: GradeView) -> None:
        self.batch.set_grades([grade])
        if self.overview.selected:
            self.detail.show_view(self.controller.state.channel(self.overview.selected))

    def _on_stop_all_finished(self, ok: bool, message: str) -> None:
        self.statusBar().showMessage(message)
        if not ok:
            self.banner.add(message)

    def _focus_scanner(self) -> None:
        self.intake.field.clear()
        self.intake.setFocus()

    def _selected(self) -> str | None:
        return self.overview.selected

    def _pause_selected(self) -> None:
        if (channel_id := self._selected()) is not None:
            self.controller.pause(channel_id)

    def _resume_selected(self) -> None:
        if (channel_id := self._selected()) is not None:
            self.controller.resume(channel_id)

    def _abort_selected(self) -> None:
        if (channel_id := self._selected()) is not None:
            self.controller.abort(channel_id)

    def _load_history(self) -> None:
        if (channel_id := self._selected()) is not None:
            self.controller.load_history(channel_id)

    def _restore_settings(self) -> None:
        geometry = self.settings.value("window/geometry")
        if isinstance(geometry, QtCore.QByteArray):
            self.restoreGeometry(geometry)
        state = self.settings.value("window/state")
        if isinstance(state, QtCore.QByteArray):
            self.restoreState(state)

    def _restore_splitters(self) -> None:
        for splitter in self._splitters:
            saved = self.settings.value(f"window/{splitter.objectName()}")
            if isinstance(saved, QtCore.QByteArray):
                splitter.restoreState(saved)

    def showEvent(self, event: QtGui.QShowEvent) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        if not self._splitters_restored:
            # Splitter sizes only mean something once the window has its real size.
            self._splitters_restored = True
            self._restore_splitters()

    def save_settings(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        for splitter in self._splitters:
            self.settings.setValue(f"window/{splitter.objectName()}", splitter.saveState())
        self.settings.sync()

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 - Qt override
        active = self.controller.state.active_channels()
        stop_runs = False
        if active and self.controller.engine is not None:
            if self.confirm_close(active) is CloseChoice.CANCEL:
                event.ignore()
                return
            stop_runs = True
        self.save_settings()
        self.plots.stop()
        self.shutdown_clean = self.controller.shutdown(stop_runs=stop_runs)
        for step in self.after_shutdown:
            step()
        self.after_shutdown.clear()
        event.accept()
