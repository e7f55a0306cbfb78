"""From engine worker threads to the GUI thread: queued Qt signals, never direct widget calls.

The engine calls subscribers on its own worker threads. :class:`EventBridge` lives in the GUI
thread; :meth:`EventBridge.post` may be called from any thread and only appends to a locked list.
At most one queued wake-up is outstanding at a time, so a burst of samples from 64 channels turns
into one batch per event-loop turn instead of thousands of queued calls (the coalescing that keeps
the loop responsive). The batch keeps the engine's order, so a channel's RunStarted always comes
before its samples and its RunEnded after them.
"""

from __future__ import annotations

import threading

from PySide6 import QtCore

from station.events import Event, Sample

MAX_PENDING_SAMPLES = 200_000
"""Live samples held while the GUI thread is busy; beyond this the oldest are dropped from the
live view only (storage keeps every sample, and the plots reload history from it)."""


class EventBridge(QtCore.QObject):
    """Receives engine events on any thread and re-emits them, batched, in the GUI thread."""

    events_arrived = QtCore.Signal(list)
    """A list of :data:`station.events.Event` in arrival order (GUI thread)."""

    _wake = QtCore.Signal()

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self._lock = threading.Lock()
        self._pending: list[Event] = []
        self._pending_samples = 0
        self._scheduled = False
        self.dropped_samples = 0
        self.batches = 0
        self._wake.connect(self._flush, QtCore.Qt.ConnectionType.QueuedConnection)

    def post(self, event: Event) -> None:
        """Queue one engine event; safe from any thread, never blocks on the GUI."""
        with self._lock:
            self._pending.append(event)
            if isinstance(event, Sample):
                self._pending_samples += 1
                if self._pending_samples > MAX_PENDING_SAMPLES:
                    self._drop_oldest_sample()
            if self._scheduled:
                return
            self._scheduled = True
        self._wake.emit()

    def _drop_oldest_sample(self) -> None:
        for index, pending in enumerate(self._pending):
            if isinstance(pending, Sample):
                del self._pending[index]
                self._pending_samples -= 1
                self.dropped_samples += 1
                return

    @QtCore.Slot()
    def _flush(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
            self._pending_samples = 0
            self._scheduled = False
        if batch:
            self.batches += 1
            self.events_arrived.emit(batch)
