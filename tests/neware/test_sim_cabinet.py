"""The simulated cabinet's behaviour, checked against an analytic cell (tests/neware/linear_cell).

Reference figures: with OCV = 3.0 V + 1.2 V * SOC, R = 0.05 ohm, Q = 2 Ah, SOC0 = 0.1, a 1 A CC
charge reaches a terminal voltage V when OCV = V - 0.05, i.e. after (SOC(V) - 0.1) * 7200 s; a CV
phase decays with tau = 3600 * Q * R / k = 300 s.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from drivers.neware_stepfile import write_step_file
from drivers.readings import CyclerStep, EndConditions, ProtectionLimits, StepMode
from hardware_sim.cell import Cell, Contact
from hardware_sim.chemistry import NMC
from hardware_sim.clock import SimClock
from hardware_sim.devices.neware_bts import (
    LOG_OVER_VOLTAGE,
    TERMINATOR,
    NewareCabinet,
)
from tests.neware.linear_cell import LinearCell

LIMITS = ProtectionLimits(voltage_min_v=2.5, voltage_max_v=4.3, current_max_a=5.0)
CHL = 'ip="127.0.0.1" devtype="27" devid="27" subdevid="1" chlid="1"'
# The cabinet ticks at most every 2 s (MAX_TICK_S) and the record interval, so an end is seen
# at most one tick after the analytic instant.
TICK_S = 2.0


class Bench:
    def __init__(self, tmp_path: Path, n: int = 2, clock: SimClock | None = None) -> None:
        self.clock = clock or SimClock(1_700_000_000.0, manual=True)
        self.cells = [LinearCell(t_s=self.clock.now()) for _ in range(n)]
        self.cabinet = NewareCabinet(self.clock, self.cells, seed=7)
        self.tmp = tmp_path
        self.cabinet.on_connect()
        assert self.ask("<cmd>connect</cmd><username>admin</username><password>neware</password>")

    def ask(self, body: str) -> ET.Element:
        frame = f'<?xml version="1.0" encoding="UTF-8" ?>\n<bts version="1.0">{body}</bts>'
        (reply,) = self.cabinet.feed_bytes(frame.encode() + TERMINATOR, self.clock.now())
        assert reply.endswith(TERMINATOR)
        return ET.fromstring(reply[: -len(TERMINATOR)])

    def start(
        self, step: CyclerStep, barcode: str = "run/0", limits: ProtectionLimits = LIMITS
    ) -> str:
        path = write_step_file(self.tmp / f"{barcode.replace('/', '_')}.xml", step, limits)
        root = self.ask(
            '<cmd>start</cmd><list count = "1">'
            f'<start {CHL} barcode="{barcode}">{path}</start>'
            '<backup backupdir="C:\\Neware data\\" remotedir="" filenametype="0" /></list>'
        )
        listing = root.find("list")
        assert listing is not None and [e.tag for e in listing] == ["start"], "one result"
        assert listing.get("count") == "1"
        return root.findtext("list/start") or ""

    def inquire(self) -> dict[str, str]:
        root = self.ask(
            '<cmd>inquire</cmd><list count = "1">'
            f'<inquire {CHL} aux="0" barcode="1">true</inquire></list>'
        )
        element = root.find("list/inquire")
        assert element is not None
        return dict(element.attrib)

    def download(self, startpos: int, count: int) -> list[dict[str, str]]:
        root = self.ask(
            '<cmd>download</cmd><download devtype="27" devid="27" subdevid="1" chlid="1" '
            f'auxid="0" testid="0" startpos="{startpos}" count="{count}"/>'
        )
        assert root.findtext("cmd") == "donwload_resp"
        return [dict(e.attrib) for e in root.findall("list/data")]

    def all_rows(self) -> list[dict[str, str]]:
        rows: list[dict[str, str]] = []
        while True:
            chunk = self.download(len(rows) + 1, 1000)
            rows += chunk
            if len(chunk) < 1000:
                return rows


@pytest.fixture
def bench(tmp_path: Path) -> Bench:
    return Bench(tmp_path)


def test_identity_and_channel_list_carry_the_simulated_serial(bench: Bench) -> None:
    root = bench.ask("<cmd>getdevinfo</cmd>")
    middle = root.find("middle")
    assert middle is not None and middle.get("serial") == "SIMULATED-7"
    channels = [(c.get("devid"), c.get("subdevid"), c.get("Channelid")) for c in middle]
    assert channels == [("27", "1", "1"), ("27", "1", "2")]


def test_requests_before_login_are_refused(tmp_path: Path) -> None:
    bench = Bench(tmp_path)
    bench.cabinet.on_connect()
    assert bench.ask("<cmd>getdevinfo</cmd>").findtext("result") == "false"


def test_cc_charge_reaches_cutoff_and_capacity_matches_coulomb_count(bench: Bench) -> None:
    cell = bench.cells[0]
    step = CyclerStep(
        StepMode.CC, current_a=1.0, end=EndConditions(voltage_above_v=4.0), record_interval_s=10.0
    )
    assert bench.start(step) == "ok"
    charge0 = cell.charge_ah
    bench.clock.advance(3000.0)
    assert bench.inquire()["workstatus"] == "working"
    assert bench.inquire()["step_type"] == "cc"
    bench.clock.advance(3000.0)
    info = bench.inquire()
    assert info["workstatus"] == "finish"

    t_expected = ((4.0 - 0.05 - 3.0) / 1.2 - 0.1) * 2 * 3600  # 4980 s
    rows = bench.all_rows()
    last = rows[-1]
    t_end = int(last["testtime"]) / 1000
    # The cut-off counts within its 0.1 mV band: up to 0.1 mV / (1.2 V / 7200 s) = 0.6 s early.
    assert t_expected - 1e-4 * 7200 / 1.2 - 1e-3 <= t_end <= t_expected + TICK_S
    assert abs(float(last["volt"]) - 4.0) <= 1e-4  # the cut-off, within the 0.1 mV band
    # The cabinet integrates the current itself; it must match the cell's own coulomb count
    # within 1e-6 Ah (trapezoid error of the one tick where the clamp engaged).
    assert abs(float(last["cap"]) - (cell.charge_ah - charge0)) <= 1e-6
    # and the analytic I*t within the one-tick end uncertainty (1 A * 2 s = 0.56 mAh)
    assert abs(float(last["cap"]) - t_expected / 3600) <= TICK_S / 3600 + 1e-9


def test_cccv_ends_on_the_current_cutoff(bench: Bench) -> None:
    step = CyclerStep(
        StepMode.CCCV,
        current_a=1.0,
        voltage_v=4.1,
        end=EndConditions(current_below_a=0.1),
        record_interval_s=30.0,
    )
    assert bench.start(step) == "ok"
    bench.clock.advance(5700.0)
    assert bench.inquire()["step_type"] == "cv"
    bench.clock.advance(2000.0)
    assert bench.inquire()["workstatus"] == "finish"
    t_cv = ((4.1 - 0.05 - 3.0) / 1.2 - 0.1) * 7200  # 5580 s to the CV switch
    t_expected = t_cv + 300.0 * math.log(1.0 / 0.1)  # + tau ln(I0/Icut) = 6270.8 s
    last = bench.all_rows()[-1]
    assert t_expected - 1e-3 <= int(last["testtime"]) / 1000 <= t_expected + TICK_S
    current = float(last["curr"])
    assert 0.1 * math.exp(-TICK_S / 300.0) <= current <= 0.1
    assert abs(float(last["volt"]) - 4.1) <= 1e-9


def test_over_voltage_protection_trips_with_its_log_code(bench: Bench) -> None:
    limits = ProtectionLimits(voltage_min_v=2.5, voltage_max_v=4.0, current_max_a=5.0)
    step = CyclerStep(
        StepMode.CC, current_a=1.0, end=EndConditions(voltage_above_v=4.2), record_interval_s=10.0
    )
    assert bench.start(step, limits=limits) == "ok"
    bench.clock.advance(8000.0)
    info = bench.inquire()
    assert info["workstatus"] == "protect"
    assert info["log_code"] == LOG_OVER_VOLTAGE
    t_trip = ((4.0 - 0.05 - 3.0) / 1.2 - 0.1) * 7200
    last = bench.all_rows()[-1]
    # testtime is in whole ms, hence the 1 ms allowance below the analytic instant.
    assert t_trip - 1e-3 <= int(last["testtime"]) / 1000 <= t_trip + TICK_S
    # volt is printed with 10 significant digits
    assert 4.0 - 1e-9 <= float(last["volt"]) <= 4.0 + TICK_S * 1.2 / 7200 + 1e-9
    assert bench.cells[0].current_a == 0.0, "output off after a protection trip"
    root = bench.ask(
        "<cmd>downloadlog</cmd>"
        '<download devtype="27" devid="27" subdevid="1" chlid="1" testid="0"/>'
    )
    assert [e.get("log_code") for e in root.findall("list/data")] == ["100000", LOG_OVER_VOLTAGE]


def test_start_is_refused_while_working_and_stop_opens_the_output(bench: Bench) -> None:
    step = CyclerStep(
        StepMode.CC, current_a=-0.5, end=EndConditions(voltage_below_v=2.6), record_interval_s=10.0
    )
    assert bench.start(step, "run/0") == "ok"
    bench.clock.advance(60.0)
    assert bench.start(step, "run/1") == "false"
    assert bench.inquire()["barcode"] == "run/0"
    root = bench.ask(f'<cmd>stop</cmd><list count = "1"><stop {CHL}>true</stop></list>')
    assert root.findtext("list/stop") == "ok"
    assert bench.inquire()["workstatus"] == "stop"
    assert bench.cells[0].current_a == 0.0
    assert bench.start(step, "run/1") == "ok"


def test_missing_step_file_is_refused(bench: Bench) -> None:
    root = bench.ask(
        '<cmd>start</cmd><list count = "1">'
        f'<start {CHL} barcode="x">/nonexistent/s.xml</start></list>'
    )
    assert root.findtext("list/start") == "false"


def test_download_returns_every_row_once_in_order_across_chunks(bench: Bench) -> None:
    step = CyclerStep(StepMode.REST, end=EndConditions(time_s=2600.0), record_interval_s=1.0)
    assert bench.start(step) == "ok"
    bench.clock.advance(1234.5)
    first = bench.all_rows()
    bench.clock.advance(3000.0)
    rest: list[dict[str, str]] = []
    while True:
        chunk = bench.download(len(first) + len(rest) + 1, 700)
        rest += chunk
        if not chunk:
            break
    rows = first + rest
    # One row at the start and one per second up to the 2600 s limit: 2601 rows.
    assert [int(r["seqid"]) for r in rows] == list(range(1, 2602))
    assert [int(r["testtime"]) for r in rows] == [1000 * i for i in range(2601)]
    assert len(bench.download(1, 5000)) == 1000, "at most 1000 rows per call"


def test_row_times_are_calendar_times_from_the_clock_epoch(tmp_path: Path) -> None:
    """A bench clock counting from 0 with ``epoch_s`` 1.7e9 (2023-11-14 22:13:20 UTC, by hand:
    19676 days + 80000 s): the cabinet prints rows on that calendar."""
    bench = Bench(tmp_path, clock=SimClock(0.0, manual=True, epoch_s=1_700_000_000.0))
    step = CyclerStep(StepMode.REST, end=EndConditions(time_s=100.0), record_interval_s=10.0)
    assert bench.start(step) == "ok"
    bench.clock.advance(30.0)
    rows = bench.all_rows()
    assert [r["atime"] for r in rows[:2]] == ["2023-11-14 22:13:20", "2023-11-14 22:13:30"]


def test_channels_run_independently(bench: Bench) -> None:
    step = CyclerStep(
        StepMode.CC, current_a=1.0, end=EndConditions(time_s=100.0), record_interval_s=10.0
    )
    assert bench.start(step) == "ok"
    bench.clock.advance(200.0)
    bench.inquire()
    assert abs(bench.cells[0].charge_ah - 100 / 3600) <= 1e-12
    assert bench.cells[1].charge_ah == 0.0


class RealBench(Bench):
    """The same cabinet on the simulator's equivalent-circuit cells (NMC preset, 2 Ah)."""

    def __init__(self, tmp_path: Path) -> None:
        self.clock = SimClock(1_700_000_000.0, manual=True)
        self.cells = [Cell(NMC.params(2.0), soc=0.2, t_s=self.clock.now()) for _ in range(2)]
        self.cabinet = NewareCabinet(self.clock, self.cells, seed=8)
        self.tmp = tmp_path
        self.cabinet.on_connect()
        self.ask("<cmd>connect</cmd><username>admin</username><password>neware</password>")


def test_real_cell_cccv_charge_ends_on_current_and_counts_the_cells_charge(tmp_path: Path) -> None:
    bench = RealBench(tmp_path)
    cell = bench.cells[0]
    step = CyclerStep(
        StepMode.CCCV,
        current_a=1.0,
        voltage_v=4.2,
        end=EndConditions(current_below_a=0.05, time_s=6 * 3600.0),
        record_interval_s=10.0,
    )
    assert bench.start(step) == "ok"
    for _ in range(40):
        bench.clock.advance(900.0)
        if bench.inquire()["workstatus"] != "working":
            break
    assert bench.inquire()["workstatus"] == "finish"
    rows = bench.all_rows()
    last = rows[-1]
    assert int(last["testtime"]) < 6 * 3600 * 1000, "ended on the current cut-off, not the time"
    assert 0.05 * 0.9 <= float(last["curr"]) <= 0.05
    assert abs(float(last["volt"]) - 4.2) <= 1e-3
    # Cabinet coulomb count (trapezoid on <= 2 s ticks) vs the cell's own: 0.05 % of the charge.
    assert abs(float(last["cap"]) - cell.charge_ah) <= 5e-4 * cell.charge_ah
    assert cell.soc > 0.95


@pytest.mark.parametrize(
    ("limits", "cell_setup", "code"),
    [
        (
            ProtectionLimits(voltage_min_v=3.2, voltage_max_v=4.3, current_max_a=5.0),
            None,
            "200102",
        ),
        (
            ProtectionLimits(voltage_min_v=2.5, voltage_max_v=4.3, current_max_a=0.5),
            None,
            "200103",
        ),
        (
            ProtectionLimits(
                voltage_min_v=2.5, voltage_max_v=4.3, current_max_a=5.0, temperature_max_c=45.0
            ),
            60.0,
            "200104",
        ),
        (
            ProtectionLimits(
                voltage_min_v=2.5, voltage_max_v=4.3, current_max_a=5.0, capacity_max_ah=0.01
            ),
            None,
            "200105",
        ),
    ],
    ids=["under-voltage", "over-current", "over-temperature", "over-capacity"],
)
def test_each_protection_kind_trips_with_its_code(
    bench: Bench, limits: ProtectionLimits, cell_setup: float | None, code: str
) -> None:
    if cell_setup is not None:
        bench.cells[0].set_temperature(cell_setup)
    step = CyclerStep(
        StepMode.CC, current_a=-1.0, end=EndConditions(voltage_below_v=2.6), record_interval_s=10.0
    )
    assert bench.start(step, limits=limits) == "ok"
    bench.clock.advance(600.0)
    info = bench.inquire()
    assert (info["workstatus"], info["log_code"]) == ("protect", code)
    assert bench.cells[0].current_a == 0.0


def test_rest_ends_on_dvdt(bench: Bench) -> None:
    # The analytic cell has no relaxation: dV/dt is 0 at once, so the rest ends on the first tick.
    step = CyclerStep(
        StepMode.REST,
        end=EndConditions(time_s=3600.0, dvdt_below_v_per_s=1e-6),
        record_interval_s=1.0,
    )
    assert bench.start(step) == "ok"
    bench.clock.advance(100.0)
    assert bench.inquire()["workstatus"] == "finish"
    assert int(bench.all_rows()[-1]["testtime"]) == 1000


def test_getchlstatus_and_light(bench: Bench) -> None:
    step = CyclerStep(
        StepMode.CC, current_a=1.0, end=EndConditions(time_s=100.0), record_interval_s=10.0
    )
    assert bench.start(step) == "ok"
    two = (
        '<status ip="127.0.0.1" devtype="27" devid="27" subdevid="1" chlid="1">true</status>'
        '<status ip="127.0.0.1" devtype="27" devid="27" subdevid="1" chlid="2">true</status>'
    )
    root = bench.ask(f'<cmd>getchlstatus</cmd><list count = "2">{two}</list>')
    assert [e.text for e in root.findall("list/status")] == ["working", "stop"]
    root = bench.ask(f'<cmd>light</cmd><list count = "1"><light {CHL}>true</light></list>')
    assert root.findtext("list/light") == "ok"
    root = bench.ask("<cmd>nonsense</cmd>")
    assert (root.findtext("cmd"), root.findtext("result")) == ("nonsense_resp", "false")


@pytest.mark.parametrize("contact", [Contact.OPEN, Contact.REVERSED], ids=lambda c: c.value)
def test_bad_contact_drives_nothing_and_protects_on_voltage(
    tmp_path: Path, contact: Contact
) -> None:
    bench = RealBench(tmp_path)
    cell = bench.cells[0]
    cell.contact = contact
    step = CyclerStep(
        StepMode.CC, current_a=1.0, end=EndConditions(voltage_above_v=4.2), record_interval_s=10.0
    )
    assert bench.start(step) == "ok"
    bench.clock.advance(10.0)
    info = bench.inquire()
    assert (info["workstatus"], info["log_code"]) == ("protect", "200102")  # under-voltage
    expected_v = 0.0 if contact is Contact.OPEN else -cell.terminal_voltage_v
    assert float(info["voltage"]) == pytest.approx(expected_v, abs=1e-9)
    assert cell.current_a == 0.0 and cell.charge_ah == 0.0, "no current was ever driven"


def test_a_channel_not_asked_about_still_trips_at_its_analytic_instant(bench: Bench) -> None:
    # A request advances only the channels it names; a channel's history is computed when it is
    # next asked about, so its trip time is the same as if every request had advanced it.
    limits = ProtectionLimits(voltage_min_v=2.5, voltage_max_v=4.0, current_max_a=5.0)
    step = CyclerStep(
        StepMode.CC, current_a=1.0, end=EndConditions(voltage_above_v=4.2), record_interval_s=10.0
    )
    assert bench.start(step, limits=limits) == "ok"
    other = CHL.replace('chlid="1"', 'chlid="2"')
    for _ in range(8):
        bench.clock.advance(1000.0)
        bench.ask(
            f'<cmd>inquire</cmd><list count = "1"><inquire {other} aux="0" barcode="1">true'
            "</inquire></list>"
        )
    assert bench.cabinet.channel("27-1-1").t_s < bench.clock.now(), "left for its own request"
    assert bench.inquire()["workstatus"] == "protect"
    t_trip = ((4.0 - 0.05 - 3.0) / 1.2 - 0.1) * 7200
    last = bench.all_rows()[-1]
    assert t_trip - 1e-3 <= int(last["testtime"]) / 1000 <= t_trip + TICK_S
