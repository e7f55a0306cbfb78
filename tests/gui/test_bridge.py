"""Engine events posted from worker threads arrive in the GUI thread, in order, batched."""

from __future__ import annotations

import threading

from PySide6 import QtCore, QtWidgets

from station.events import Sample
from ui.bridge import EventBridge
from ui.workers import Workers


def test_events_from_many_threads_arrive_in_gui_thread_in_order(qtbot) -> None:
    bridge = EventBridge()
    received: list[Sample] = []
    threads_seen: set[bool] = set()
    gui_thread = QtWidgets.QApplication.instance().thread()

    def on_batch(batch: list) -> None:
        threads_seen.add(QtCore.QThread.currentThread() is gui_thread)
        received.extend(batch)

    bridge.events_arrived.connect(on_batch)
    channels, per_channel = 8, 2000

    def produce(channel: int) -> None:
        for seq in range(per_channel):
            bridge.post(Sample("r", f"CH{channel}", seq, seq * 0.1, 0, 3.6, 1.0))

    workers = [threading.Thread(target=produce, args=(c,)) for c in range(channels)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    qtbot.waitUntil(lambda: len(received) == channels * per_channel, timeout=5000)
    assert threads_seen == {True}
    for channel in range(channels):
        seqs = [s.seq for s in received if s.channel_id == f"CH{channel}"]
        assert seqs == list(range(per_channel))
    # Coalescing: far fewer GUI-thread deliveries than events (one per event-loop turn).
    assert bridge.batches < channels * per_channel / 10
    assert bridge.dropped_samples == 0


def test_pending_samples_are_bounded(qtbot, monkeypatch) -> None:
    monkeypatch.setattr("ui.bridge.MAX_PENDING_SAMPLES", 100)
    bridge = EventBridge()
    received: list[Sample] = []
    bridge.events_arrived.connect(received.extend)
    for seq in range(150):
        bridge.post(Sample("r", "CH1", seq, float(seq), 0, 3.6, 1.0))
    qtbot.waitUntil(lambda: len(received) == 100, timeout=2000)
    assert bridge.dropped_samples == 50
    assert [s.seq for s in received] == list(range(50, 150)), "the newest samples are kept"


def test_worker_results_come_back_in_gui_thread_and_errors_are_reported(qtbot) -> None:
    workers = Workers(max_workers=2)
    gui_thread = QtWidgets.QApplication.instance().thread()
    results: list[tuple[str, bool]] = []

    def blocking() -> str:
        assert threading.current_thread().name.startswith("gui-worker")
        return "ok"

    def failing() -> None:
        raise OSError("port COM7 busy")

    workers.submit(
        blocking,
        on_done=lambda r: results.append((r, QtCore.QThread.currentThread() is gui_thread)),
    )
    workers.submit(failing, on_error=lambda exc: results.append((str(exc), True)))
    qtbot.waitUntil(lambda: len(results) == 2, timeout=2000)
    assert sorted(results) == [("ok", True), ("port COM7 busy", True)]
    assert workers.shutdown(2.0)


def test_urgent_work_runs_while_ordinary_workers_are_blocked(qtbot) -> None:
    workers = Workers(max_workers=1)
    release = threading.Event()
    workers.submit(release.wait, 5)
    done: list[str] = []
    workers.submit(lambda: "stopped", urgent=True, on_done=done.append)
    qtbot.waitUntil(lambda: done == ["stopped"], timeout=2000)
    release.set()
    assert workers.shutdown(2.0)
