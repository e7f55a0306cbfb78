"""Regenerate docs/images/batch-view.png from the real simulator bench (seed 7).

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python -m tests.gui.make_batch_screenshot

The window ``station gui`` builds, around the real engine and storage, over TCP to
``hardware_sim`` run in this process at 3600 simulated seconds per wall second. Six cells of the
seeded lot run ``second-life-full`` (capacity discharge, pulses, EIS) and are graded; the batch
view then exports the AAS passports of every graded cell, writes the lot report (batch PDF,
certificates, signed records) with a throw-away key, and builds 2S1P matched groups.
"""

from __future__ import annotations

from tests.gui.make_screenshots import pump, save, station_scene, wait_for
from ui.batch_export import PassportRequest

SPEED = 3600.0
CHANNELS = ("ch01", "ch02", "ch03", "ch05", "ch06", "ch08")  # ch04 holds the reversed cell


def main() -> int:
    with station_scene(
        speed=SPEED,
        recipe="second-life-full",
        splitter=(700, 900),
        prefix="gui-batch-shot-",
    ) as scene:
        window, workdir = scene.window, scene.workdir
        controller = window.controller
        for channel_id in CHANNELS:
            controller.start_run(channel_id, controller.assigned[channel_id])
        channels = controller.state.channels
        wait_for(lambda: all(channels[c].grade is not None for c in CHANNELS), 600_000)

        batch = window.batch
        window.tabs.setCurrentWidget(batch)
        outcomes = []
        controller.batch_exported.connect(outcomes.append)
        batch.request_passports(PassportRequest((), "aas", str(workdir / "passports")))
        wait_for(lambda: len(outcomes) == 1)
        lot = batch.lot.currentText()
        batch.request_report(lot, str(workdir / "report"))
        wait_for(lambda: len(outcomes) == 2)
        print("\n".join(o.summary for o in outcomes))
        batch.series.setValue(2)
        batch.match_button.click()
        wait_for(lambda: "group(s)" in batch.groups.toPlainText())
        batch.table.selectRow(0)
        pump(500)
        save(window, "batch-view.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
