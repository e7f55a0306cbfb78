"""Regenerate docs/images/batch-followups.png from the real simulator bench (seed 7).

    QT_QPA_PLATFORM=offscreen .venv/bin/python -m tests.gui.make_followups_screenshot

The window ``station gui`` builds, around the real engine and storage, over TCP to
``hardware_sim`` run in this process at 3600 simulated seconds per wall second. The
``self-discharge-follow-up`` recipe runs on the cell in ch01, 7 days pass on the simulator's and
the station's clocks, the recipe runs on the cell in ch02: the Batch tab's follow-ups panel then
lists ch01's follow-up as due and ch02's (selected) as due in 7 days, with why Re-measure is
disabled for it.
"""

from __future__ import annotations

from tests.gui.make_screenshots import pump, save, station_scene, wait_for
from ui.followups import FOLLOW_UP_RECIPE

SPEED = 3600.0
HOLD_S = 7 * 86400.0


def main() -> int:
    with station_scene(
        speed=SPEED,
        recipe=FOLLOW_UP_RECIPE,
        splitter=(700, 900),
        prefix="gui-followups-shot-",
        intake=False,
    ) as scene:
        sim, window, clock = scene.sim, scene.window, scene.clock
        controller = window.controller
        panel = window.batch.followups
        for count, channel_id in enumerate(("ch01", "ch02"), start=1):
            controller.start_run(channel_id, controller.assigned[channel_id])
            wait_for(lambda n=count: len(panel.rows) == n)
            if count == 1:
                sim.running.handle({"cmd": "skip", "s": HOLD_S})
                clock.skip(HOLD_S)
        controller.load_followups()
        wait_for(lambda: len(panel.rows) == 2 and panel.rows[0].due)
        window.tabs.setCurrentWidget(window.batch)
        # The not-due row selected: the due row keeps its highlight and the panel says why
        # Re-measure is disabled for the other.
        panel.table.selectRow(1)
        pump(500)
        save(window, "batch-followups.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
