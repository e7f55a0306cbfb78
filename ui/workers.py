"""Blocking calls (engine commands, storage queries, grading) run here, never in the GUI thread.

Results come back to the GUI thread through a queued signal. Emergency stop has its own
single-thread pool so it never waits behind a slow connect or a long history query.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from typing import Any

from PySide6 import QtCore

Callback = Callable[[Any], None]


class Workers(QtCore.QObject):
    """A small pool of worker threads whose results are delivered in the GUI thread."""

    _finished = QtCore.Signal(object, object, object)

    def __init__(self, max_workers: int = 4, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="gui-worker")
        self._urgent = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gui-stop")
        self._closed = False
        self._lock = threading.Lock()
        self._outstanding: set[Future[Any]] = set()
        self.errors: list[BaseException] = []
        self._finished.connect(self._deliver, QtCore.Qt.ConnectionType.QueuedConnection)

    @property
    def closed(self) -> bool:
        """True once shut down: no more work is accepted."""
        with self._lock:
            return self._closed

    def submit(
        self,
        fn: Callable[..., Any],
        *args: Any,
        on_done: Callback | None = None,
        on_error: Callback | None = None,
        urgent: bool = False,
    ) -> Future[Any]:
        """Run ``fn(*args)`` off the GUI thread; ``on_done(result)`` / ``on_error(exc)`` run in it.

        ``urgent`` work (stop all) uses a reserved thread, so it starts at once even when every
        ordinary worker is blocked.
        """
        with self._lock:
            if self._closed:
                raise RuntimeError("workers are shut down")
            future = (self._urgent if urgent else self._pool).submit(fn, *args)
            self._outstanding.add(future)

        def done(fut: Future[Any]) -> None:
            with self._lock:
                self._outstanding.discard(fut)
                closed = self._closed
            if fut.cancelled():
                return
            error = fut.exception()
            result = None if error is not None else fut.result()
            if not closed:
                self._finished.emit((on_done, on_error), result, error)

        future.add_done_callback(done)
        return future

    @QtCore.Slot(object, object, object)
    def _deliver(self, callbacks: Any, result: Any, error: Any) -> None:
        on_done, on_error = callbacks
        if error is not None:
            self.errors.append(error)
            if on_error is not None:
                on_error(error)
        elif on_done is not None:
            on_done(result)

    def busy(self) -> int:
        with self._lock:
            return len(self._outstanding)

    def shutdown(self, timeout_s: float = 10.0) -> bool:
        """Stop accepting work, cancel queued work, wait for running work; True if all ended."""
        with self._lock:
            self._closed = True
            outstanding = list(self._outstanding)
        for future in outstanding:
            future.cancel()
        deadline_ok = True
        for future in outstanding:
            try:
                future.exception(timeout=timeout_s)
            except TimeoutError:
                deadline_ok = False
            except CancelledError:
                pass
        self._pool.shutdown(wait=deadline_ok, cancel_futures=True)
        self._urgent.shutdown(wait=deadline_ok, cancel_futures=True)
        return deadline_ok
