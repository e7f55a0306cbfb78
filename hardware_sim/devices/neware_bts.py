"""Simulated Neware BTS 8.x cabinet: the TCP/XML API in front of N channels with their own cells.

Wire format (see ``docs/instrument-protocols.md``, Neware section, and
``../shared/reference/instruments.md`` section 2.5): every message is an XML document
``<bts version="1.0">`` followed by the terminator ``\\n\\n#\\r\\n``. Replies are laid out like the
captures in aurora-neware (``<?xml ...?>\\r\\n``, two-space indented lines ending ``\\r\\n``),
including the real cabinet's ``donwload_resp`` / ``donwloadlog_resp`` spelling.

Each channel (address ``devid-subdevid-chlid``) runs the step file named by ``start`` on its own
cell, lazily: on every request the cabinet advances every working channel to the bench clock's
``now()``, integrating in sub-steps no longer than the record interval (and at most
``MAX_TICK_S``), ending steps by their own cut-offs and tripping whole-programme protection into
``protect`` with a ``log_code``. Rows are recorded on the cabinet at the record interval / dV and
at every step end, and ``download`` serves them by 1-based ``seqid``. Each row also carries the
cell temperature as ``temp`` (degC, the channel's auxiliary thermocouple): a simulator extension,
since the aux-data format of a real cabinet is not in the captures.

Simulator log codes (the real cabinet's catalogue is not public; the driver passes codes on):
``100000`` test started, ``100001`` finished, ``100007`` stopped by the user, ``102000`` working;
protect: ``200101`` over-voltage, ``200102`` under-voltage, ``200103`` over-current,
``200104`` over-temperature, ``200105`` over-capacity.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from xml.sax.saxutils import escape, quoteattr

from hardware_sim.cell import Contact
from hardware_sim.clock import SimClock
from hardware_sim.devices.base import Personality, Reply
from hardware_sim.devices.neware_stepfile import (
    SimProgramme,
    SimStep,
    SimStepKind,
    StepFileError,
    read_step_file,
)
from hardware_sim.registry import BuildContext, register_device_kind

TERMINATOR = b"\n\n#\r\n"
MAX_TICK_S = 2.0
MAX_DOWNLOAD_ROWS = 1000
MAX_FRAME_BYTES = 1 << 20
# A cut-off voltage counts as reached within this band (the cycler's own resolution).
VOLTAGE_EPS_V = 1e-4

LOG_STARTED = "100000"
LOG_FINISHED = "100001"
LOG_STOPPED = "100007"
LOG_WORKING = "102000"
LOG_OVER_VOLTAGE = "200101"
LOG_UNDER_VOLTAGE = "200102"
LOG_OVER_CURRENT = "200103"
LOG_OVER_TEMPERATURE = "200104"
LOG_OVER_CAPACITY = "200105"


class CellModel(Protocol):
    """What a channel needs from ``hardware_sim.cell.Cell`` (current positive when charging)."""

    def advance_to(self, t_s: float) -> None: ...

    def set_open_circuit(self) -> None: ...

    def set_current(self, current_a: float, *, voltage_limit_v: float | None = None) -> None: ...

    def set_voltage(self, voltage_v: float, *, current_limit_a: float) -> None: ...

    @property
    def terminal_voltage_v(self) -> float: ...

    @property
    def current_a(self) -> float: ...

    @property
    def temperature_c(self) -> float: ...


@dataclass(slots=True)
class Row:
    """One recorded point: test time in s, step time in s, V, A (signed), |Ah|, |Wh|, degC."""

    seqid: int
    step_id: int
    step_type: str
    t_test_s: float
    t_step_s: float
    t_abs_s: float
    voltage_v: float
    current_a: float
    capacity_ah: float
    energy_wh: float
    temperature_c: float


@dataclass
class SimChannel:
    """One channel: its cell, the running programme and everything recorded since ``start``."""

    devid: int
    subdevid: int
    chlid: int
    cell: CellModel
    workstatus: str = "stop"
    barcode: str = ""
    log_code: str = "0"
    testid: int = 0
    programme: SimProgramme | None = None
    step_pos: int = 0
    t_s: float = 0.0
    test_start_s: float = 0.0
    step_start_s: float = 0.0
    step_capacity_ah: float = 0.0
    step_energy_wh: float = 0.0
    last_record_s: float = 0.0
    last_record_v: float = 0.0
    rows: list[Row] = field(default_factory=list)
    logs: list[tuple[int, str, float]] = field(default_factory=list)
    _v: float = 0.0
    _i: float = 0.0

    @property
    def pipeline(self) -> str:
        return f"{self.devid}-{self.subdevid}-{self.chlid}"

    @property
    def step(self) -> SimStep | None:
        if self.programme is None or self.step_pos >= len(self.programme.steps):
            return None
        return self.programme.steps[self.step_pos]

    def step_type_name(self) -> str:
        step = self.step
        if self.workstatus != "working" or step is None:
            return "--"
        if step.kind is SimStepKind.REST:
            return "rest"
        if step.kind is SimStepKind.CV:
            return "cv"
        if step.kind is SimStepKind.CCCV and abs(self._i) < abs(step.current_a) * 0.999:
            return "cv"
        return "cc" if step.direction > 0 else "dc"

    # --- running ------------------------------------------------------------------------------

    def start(self, programme: SimProgramme, barcode: str, now_s: float) -> None:
        self.cell.advance_to(now_s)
        self.programme = programme
        self.barcode = barcode
        self.testid += 1
        self.rows = []
        self.logs = []
        self.workstatus = "working"
        self.log_code = LOG_WORKING
        self.t_s = now_s
        self.test_start_s = now_s
        self._log(LOG_STARTED)
        self._begin_step(0)

    def stop(self, now_s: float) -> None:
        self.advance(now_s)
        if self.workstatus in ("working", "pause"):
            self._record()
            self.cell.set_open_circuit()
            self.workstatus = "stop"
            self.log_code = LOG_STOPPED
            self._log(LOG_STOPPED)

    def _log(self, code: str) -> None:
        self.logs.append((len(self.rows), code, self.t_s))

    def _begin_step(self, pos: int) -> None:
        assert self.programme is not None
        self.step_pos = pos
        self.step_start_s = self.t_s
        self.step_capacity_ah = 0.0
        self.step_energy_wh = 0.0
        step = self.programme.steps[pos]
        if step.kind is SimStepKind.REST or self._contact() is not Contact.OK:
            # Without a sound contact the channel drives nothing; its voltage check protects.
            self.cell.set_open_circuit()
        elif step.kind is SimStepKind.CV:
            assert step.hold_voltage_v is not None
            self.cell.set_voltage(step.hold_voltage_v, current_limit_a=abs(step.current_a))
        else:
            # CCCV holds its voltage; a CC step clamps at its clamp voltage or its cut-off.
            limit = step.hold_voltage_v
            if limit is None and step.kind is SimStepKind.CC:
                limit = step.stop_voltage_v
            self.cell.set_current(step.current_a, voltage_limit_v=limit)
        self._record()

    def _contact(self) -> Contact:
        return getattr(self.cell, "contact", Contact.OK)

    def _read_cell(self) -> None:
        # What the channel's leads see: nothing through an open tab, the mirror when reversed.
        contact = self._contact()
        if contact is Contact.OPEN:
            self._v, self._i = 0.0, 0.0
            return
        sign = -1.0 if contact is Contact.REVERSED else 1.0
        self._v = sign * self.cell.terminal_voltage_v
        self._i = sign * self.cell.current_a

    def measure(self) -> tuple[float, float]:
        """The channel's voltage (V) and current (A) now, as its leads see them."""
        self._read_cell()
        return self._v, self._i

    def _record(self, *, fresh: bool = False) -> None:
        """Append a row; ``fresh``: the cached cell reading is already current (saves a read)."""
        if not fresh:
            self._read_cell()
        step = self.step
        voltage = self._v
        self.rows.append(
            Row(
                seqid=len(self.rows) + 1,
                step_id=step.step_id if step is not None else 0,
                step_type=self.step_type_name() if step is not None else "--",
                t_test_s=self.t_s - self.test_start_s,
                t_step_s=self.t_s - self.step_start_s,
                t_abs_s=self.t_s,
                voltage_v=voltage,
                current_a=self._i,
                capacity_ah=abs(self.step_capacity_ah),
                energy_wh=abs(self.step_energy_wh),
                temperature_c=self.cell.temperature_c,
            )
        )
        self.last_record_s = self.t_s
        self.last_record_v = voltage

    def advance(self, now_s: float) -> None:
        """Run the programme up to ``now_s`` (bench clock seconds)."""
        while self.workstatus == "working" and self.t_s < now_s - 1e-12:
            step = self.step
            assert step is not None and self.programme is not None
            tick = min(MAX_TICK_S, now_s - self.t_s)
            interval = self.programme.record_interval_s
            if interval is not None:
                # Tick on the record grid so rows fall on it whatever the request times are.
                tick = min(tick, max(self.last_record_s + interval - self.t_s, 0.0))
            if step.time_s is not None:
                # Land exactly on the step's time limit so the end row carries it.
                remaining = self.step_start_s + step.time_s - self.t_s
                tick = min(tick, max(remaining, 0.0))
            self._tick(step, self.t_s + tick)
        if self.workstatus != "working":
            self.cell.advance_to(max(now_s, self.t_s))
            self.t_s = max(now_s, self.t_s)

    def _tick(self, step: SimStep, t_new: float) -> None:
        assert self.programme is not None
        v_old, i_old = self._v, self._i
        dt_s = t_new - self.t_s
        self.cell.advance_to(t_new)
        self.t_s = t_new
        self._read_cell()
        voltage, current = self._v, self._i
        # Trapezoid over the tick: the cabinet's own coulomb counter, independent of the cell's.
        self.step_capacity_ah += 0.5 * (i_old + current) * dt_s / 3600.0
        self.step_energy_wh += 0.5 * (i_old * v_old + current * voltage) * dt_s / 3600.0

        if self.check_protection(fresh=True):
            return
        if self._step_ended(step, voltage, current, v_old, dt_s):
            self._record(fresh=True)
            if self.step_pos + 1 < len(self.programme.steps):
                self._begin_step(self.step_pos + 1)
            else:
                self.cell.set_open_circuit()
                self.workstatus = "finish"
                self.log_code = LOG_FINISHED
                self._log(LOG_FINISHED)
            return
        interval = self.programme.record_interval_s
        delta_v = self.programme.record_delta_v
        if (interval is not None and self.t_s - self.last_record_s >= interval - 1e-9) or (
            delta_v is not None and abs(voltage - self.last_record_v) >= delta_v
        ):
            self._record(fresh=True)

    def check_protection(self, *, fresh: bool = False) -> bool:
        """Trip into ``protect`` (output open, row and log written) if a limit is exceeded now."""
        if self.workstatus != "working" or self.programme is None:
            return False
        if not fresh:
            self._read_cell()
        trip = self._protection_trip(self._v, self._i)
        if trip is None:
            return False
        self._record(fresh=True)
        self.cell.set_open_circuit()
        self.workstatus = "protect"
        self.log_code = trip
        self._log(trip)
        return True

    def _protection_trip(self, voltage: float, current: float) -> str | None:
        assert self.programme is not None
        prot = self.programme.protection
        if prot.voltage_upper_v is not None and voltage > prot.voltage_upper_v:
            return LOG_OVER_VOLTAGE
        if prot.voltage_lower_v is not None and voltage < prot.voltage_lower_v:
            return LOG_UNDER_VOLTAGE
        if prot.current_upper_a is not None and current > prot.current_upper_a:
            return LOG_OVER_CURRENT
        if prot.current_lower_a is not None and current < prot.current_lower_a:
            return LOG_OVER_CURRENT
        if (
            prot.temperature_upper_c is not None
            and self.cell.temperature_c > prot.temperature_upper_c
        ):
            return LOG_OVER_TEMPERATURE
        if (
            prot.capacity_upper_ah is not None
            and abs(self.step_capacity_ah) > prot.capacity_upper_ah
        ):
            return LOG_OVER_CAPACITY
        return None

    def _step_ended(
        self, step: SimStep, voltage: float, current: float, v_old: float, dt_s: float
    ) -> bool:
        step_time = self.t_s - self.step_start_s
        if step.time_s is not None and step_time >= step.time_s - 1e-9:
            return True
        if step.capacity_ah is not None and abs(self.step_capacity_ah) >= step.capacity_ah:
            return True
        if step.stop_voltage_v is not None and step.kind is SimStepKind.CC:
            if step.direction > 0 and voltage >= step.stop_voltage_v - VOLTAGE_EPS_V:
                return True
            if step.direction < 0 and voltage <= step.stop_voltage_v + VOLTAGE_EPS_V:
                return True
        if (
            step.stop_current_a is not None
            and step.kind in (SimStepKind.CV, SimStepKind.CCCV)
            and abs(current) <= step.stop_current_a
        ):
            return True
        return bool(
            step.dvdt_v_per_s is not None
            and dt_s > 0
            and abs(voltage - v_old) / dt_s <= step.dvdt_v_per_s
        )


@functools.lru_cache(maxsize=4096)
def _atime_of_second(second: int) -> str:
    return dt.datetime.fromtimestamp(second, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _atime(t_s: float) -> str:
    # Whole seconds, as the real cabinet prints them; rows of one second share one string.
    return _atime_of_second(math.floor(t_s))


def _num(value: float) -> str:
    return f"{value:.10g}"


class NewareCabinet(Personality):
    kind = "neware-bts"
    write_termination = TERMINATOR

    """The cabinet: channels keep running across client reconnects; one client at a time.

    ``cells`` gives one cell per channel; channels are numbered ``devid-<unit>-<n>`` with
    ``channels_per_unit`` channels per sub-device (unit), as on a real cabinet.
    """

    def __init__(
        self,
        clock: SimClock,
        cells: Sequence[CellModel],
        *,
        seed: int = 0,
        devtype: int = 27,
        devid: int = 27,
        channels_per_unit: int = 8,
        ip: str = "127.0.0.1",
        step_file_reader: Callable[[Path], SimProgramme] = read_step_file,
    ) -> None:
        if not cells:
            raise ValueError("a cabinet needs at least one channel (cell)")
        if channels_per_unit < 1:
            raise ValueError(f"channels_per_unit must be >= 1, got {channels_per_unit}")
        super().__init__(clock, seed=seed)
        self.devtype = devtype
        self.devid = devid
        self.ip = ip
        self._read_step_file = step_file_reader
        self.channels: dict[tuple[int, int, int], SimChannel] = {}
        for index, cell in enumerate(cells):
            unit, chl = divmod(index, channels_per_unit)
            channel = SimChannel(devid=devid, subdevid=unit + 1, chlid=chl + 1, cell=cell)
            self.channels[(devid, unit + 1, chl + 1)] = channel
        # The fault injector's over-temperature fault heats every cell it finds here.
        self.cells = list(cells)
        self.logged_in = False
        self._inbuf = b""

    def channel(self, pipeline: str) -> SimChannel:
        devid, subdevid, chlid = (int(part) for part in pipeline.split("-"))
        return self.channels[(devid, subdevid, chlid)]

    def advance(self, now_s: float) -> None:
        for channel in self.channels.values():
            channel.advance(now_s)

    def trip_over_temperature(self) -> None:
        """Fault hook: the cells were just heated; channels protect at once on their limit."""
        self.advance(self.clock.now())
        for channel in self.channels.values():
            channel.check_protection()

    # --- bytes in, bytes out ------------------------------------------------------------------

    def on_connect(self) -> None:
        """A new client: it must log in again; half-received input is dropped."""
        super().on_connect()
        self.logged_in = False
        self._inbuf = b""

    def feed(self, data: bytes, now_s: float) -> list[Reply]:
        return [self.reply_at(reply, now_s) for reply in self.feed_bytes(data, now_s)]

    def cell_locations(self) -> dict[str, str]:
        """Each held cell's channel address, for the launcher's lot listing."""
        return {
            str(getattr(ch.cell, "cell_id", "") or ch.pipeline): ch.pipeline
            for ch in self.channels.values()
        }

    def describe(self) -> dict[str, Any]:
        return {
            "serial": self.serial_number,
            "devtype": self.devtype,
            "channels": [channel.pipeline for channel in self.channels.values()],
        }

    def feed_bytes(self, data: bytes, now_s: float) -> list[bytes]:
        """Consume request bytes; return one reply per complete request, in order."""
        self._inbuf += data
        out: list[bytes] = []
        while True:
            end = self._inbuf.find(TERMINATOR)
            if end < 0:
                if len(self._inbuf) > MAX_FRAME_BYTES:
                    self._inbuf = b""
                return out
            frame, self._inbuf = self._inbuf[:end], self._inbuf[end + len(TERMINATOR) :]
            out.append(self.reply(frame, now_s))

    def reply(self, frame: bytes, now_s: float) -> bytes:
        try:
            if b"<!DOCTYPE" in frame or b"<!ENTITY" in frame:
                raise ValueError("DTDs are not accepted")
            request = ET.fromstring(frame.decode("utf-8"))
        except (ET.ParseError, UnicodeDecodeError, ValueError):
            return envelope(_lines("<cmd>error_resp</cmd>", "<result>false</result>"))
        return envelope(self.handle(request, now_s))

    # --- request handling ---------------------------------------------------------------------

    def handle(self, request: ET.Element, now_s: float) -> str:
        """Answer one parsed request with the reply's inner XML lines (without the envelope)."""
        cmd = (request.findtext("cmd") or "").strip()
        if cmd == "connect":
            ok = (request.findtext("username"), request.findtext("password")) == (
                "admin",
                "neware",
            )
            self.logged_in = ok
            return _lines("<cmd>connect_resp</cmd>", f"<result>{'ok' if ok else 'false'}</result>")
        if not self.logged_in:
            return _lines(f"<cmd>{escape(cmd)}_resp</cmd>", "<result>false</result>")
        # Only the channels the request names: each channel's history is computed up to the
        # time it is asked about (rows fall on its record grid either way), so a request about
        # one channel does not cost a step of the whole cabinet's cell models.
        for channel in self._addressed(request):
            channel.advance(now_s)
        handler = {
            "getdevinfo": self._getdevinfo,
            "getchlstatus": self._getchlstatus,
            "inquire": self._inquire,
            "start": self._start,
            "stop": self._stop,
            "download": self._download,
            "downloadlog": self._downloadlog,
            "light": self._light,
        }.get(cmd)
        if handler is None:
            return _lines(f"<cmd>{escape(cmd)}_resp</cmd>", "<result>false</result>")
        return handler(request, now_s)

    def _addressed(self, request: ET.Element) -> list[SimChannel]:
        """The channels a request names (in its ``<list>`` or its ``<download>``)."""
        found = request.find("list")
        elements = list(found) if found is not None else []
        elements += request.findall("download")
        channels = (self._address(element) for element in elements)
        return [channel for channel in channels if channel is not None]

    def _address(self, element: ET.Element) -> SimChannel | None:
        try:
            key = (int(element.get("devid", "")), int(element.get("subdevid", "")))
            return self.channels.get((*key, int(element.get("chlid", ""))))
        except ValueError:
            return None

    def _chl_attrs(self, channel: SimChannel, *, ip: bool = True) -> str:
        ip_part = f'ip="{self.ip}" ' if ip else ""
        return (
            f'{ip_part}devtype="{self.devtype}" devid="{channel.devid}" '
            f'subdevid="{channel.subdevid}" chlid="{channel.chlid}"'
        )

    def _getdevinfo(self, request: ET.Element, now: float) -> str:
        lines = [
            "<cmd>getdevinfo_resp</cmd>",
            '<serverip count="1">',
            f'  <server ip="{self.ip}" port="3306" />',
            "</serverip>",
            f'<middle count="{len(self.channels)}" serial="{self.serial_number}" '
            'version="8.0.0.sim">',
        ]
        for ch in self.channels.values():
            lines.append(
                f'  <channel ip="{self.ip}" devtype="{self.devtype}" devid="{ch.devid}" '
                f'subdevid="{ch.subdevid}" Channelid="{ch.chlid}">true</channel>'
            )
        lines.append("</middle>")
        return _lines(*lines)

    def _per_channel(
        self, request: ET.Element, cmd: str, answer: Callable[[ET.Element, SimChannel], str]
    ) -> str:
        found = request.find("list")
        # Only the per-channel elements: start's list also holds a <backup> settings element.
        tag = "status" if cmd == "getchlstatus" else cmd
        items = [item for item in found if item.tag == tag] if found is not None else []
        lines = [f"<cmd>{cmd}_resp</cmd>", f'<list count="{len(items)}">']
        for item in items:
            channel = self._address(item)
            if channel is None:
                attrs = " ".join(f"{k}={quoteattr(v)}" for k, v in item.attrib.items())
                lines.append(f"  <{item.tag} {attrs}>false</{item.tag}>")
            else:
                lines.append("  " + answer(item, channel))
        lines.append("</list>")
        return _lines(*lines)

    def _getchlstatus(self, request: ET.Element, now: float) -> str:
        return self._per_channel(
            request,
            "getchlstatus",
            lambda item, ch: (
                f'<status {self._chl_attrs(ch)} reservepause="1">{ch.workstatus}</status>'
            ),
        )

    def _inquire(self, request: ET.Element, now: float) -> str:
        def answer(item: ET.Element, ch: SimChannel) -> str:
            step = ch.step if ch.workstatus == "working" else None
            step_id = f' step_id="{step.step_id}"' if step is not None else ""
            working = ch.workstatus == "working"
            voltage, current = ch.measure()
            current = current if working else 0.0
            return (
                f'<inquire dev="{self.devtype}-{ch.devid}-{ch.subdevid}-{ch.chlid}-0" '
                f'cycle_id="1"{step_id} step_type="{ch.step_type_name()}" '
                f'workstatus="{ch.workstatus}" barcode={quoteattr(ch.barcode)} '
                f'current="{_num(current)}" voltage="{_num(voltage)}" '
                f'capacity="{_num(abs(ch.step_capacity_ah))}" '
                f'energy="{_num(abs(ch.step_energy_wh))}" '
                f'totaltime="{_num(round(ch.t_s - ch.test_start_s, 1) if ch.testid else 0)}" '
                f'relativetime="{_num(round(ch.t_s - ch.step_start_s, 1) if ch.testid else 0)}" '
                f'open_or_close="0" log_code="{ch.log_code}" />'
            )

        return self._per_channel(request, "inquire", answer)

    def _start(self, request: ET.Element, now: float) -> str:
        def answer(item: ET.Element, ch: SimChannel) -> str:
            result = "false"
            if ch.workstatus not in ("working", "pause"):
                try:
                    programme = self._read_step_file(Path((item.text or "").strip()))
                except StepFileError:
                    programme = None
                if programme is not None and programme.steps:
                    ch.start(programme, item.get("barcode", ""), now)
                    result = "ok"
            return f"<start {self._chl_attrs(ch)}>{result}</start>"

        return self._per_channel(request, "start", answer)

    def _stop(self, request: ET.Element, now: float) -> str:
        def answer(item: ET.Element, ch: SimChannel) -> str:
            ch.stop(now)
            return f"<stop {self._chl_attrs(ch)}>ok</stop>"

        return self._per_channel(request, "stop", answer)

    def _light(self, request: ET.Element, now: float) -> str:
        return self._per_channel(
            request, "light", lambda item, ch: f"<light {self._chl_attrs(ch)}>ok</light>"
        )

    def _download(self, request: ET.Element, now: float) -> str:
        item = request.find("download")
        channel = self._address(item) if item is not None else None
        if item is None or channel is None:
            return _lines("<cmd>donwload_resp</cmd>", "<result>false</result>")
        try:
            startpos = int(item.get("startpos", "0"))
            count = min(int(item.get("count", "0")), MAX_DOWNLOAD_ROWS)
        except ValueError:
            return _lines("<cmd>donwload_resp</cmd>", "<result>false</result>")
        first = max(startpos, 1)
        rows = channel.rows[first - 1 : first - 1 + count] if count > 0 else []
        lines = [
            "<cmd>donwload_resp</cmd>",
            f'<download {self._chl_attrs(channel, ip=False)} testid="{channel.testid}" '
            f'startpos="{startpos}" count="{count}" auxid="0" />',
        ]
        if not rows:
            lines.append('<list count="0" />')
            return _lines(*lines)
        lines.append(f'<list count="{len(rows)}">')
        for row in rows:
            lines.append(
                f'  <data seqid="{row.seqid}" stepid="{row.step_id}" cycleid="1" '
                f'steptype="{row.step_type}" testtime="{round(row.t_test_s * 1000)}" '
                f'atime="{_atime(self._epoch_s() + row.t_abs_s)}" volt="{_num(row.voltage_v)}" '
                f'curr="{_num(row.current_a)}" cap="{_num(row.capacity_ah)}" '
                f'eng="{_num(row.energy_wh)}" temp="{row.temperature_c:.2f}" />'
            )
        lines.append("</list>")
        return _lines(*lines)

    def _epoch_s(self) -> float:
        """Unix time of the bench clock's 0 (``SimClock.epoch_s``): a cabinet prints calendar
        times. Test clocks without one count from the Unix epoch."""
        return float(getattr(self.clock, "epoch_s", 0.0))

    def _downloadlog(self, request: ET.Element, now: float) -> str:
        item = request.find("download")
        channel = self._address(item) if item is not None else None
        if channel is None:
            return _lines("<cmd>donwloadlog_resp</cmd>", "<result>false</result>")
        lines = [
            "<cmd>donwloadlog_resp</cmd>",
            f'<download {self._chl_attrs(channel, ip=False)} testid="{channel.testid}" '
            'log_lever="0" />',
            f'<list count="{len(channel.logs)}">',
        ]
        for seqid, code, t_s in channel.logs:
            atime = _atime(self._epoch_s() + t_s)
            lines.append(f'  <data seqid="{seqid}" log_code="{code}" atime="{atime}" />')
        lines.append("</list>")
        return _lines(*lines)


def _lines(*lines: str) -> str:
    return "".join(f"  {line}\r\n" for line in lines)


def envelope(inner: str) -> bytes:
    """Wrap reply lines as the real cabinet does (capture in aurora-neware ``mocks.py``)."""
    text = f'<?xml version="1.0" encoding="UTF-8"?>\r\n<bts version="1.0">\r\n{inner}</bts>'
    return text.encode("utf-8") + TERMINATOR


def build(spec: Mapping[str, Any], ctx: BuildContext) -> NewareCabinet:
    """Registry factory: ``channels`` (default 16) cells from the bench lot, 8 per unit."""
    try:
        channels = int(spec.get("channels", 16))
        per_unit = int(spec.get("channels_per_unit", 8))
        devid = int(spec.get("devid", 27))
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"neware-bts: channels/channels_per_unit/devid must be integers: {exc}"
        ) from exc
    if channels < 1:
        raise ValueError(f"neware-bts: channels must be >= 1, got {channels}")
    return NewareCabinet(
        ctx.clock,
        ctx.take_cells(channels),
        seed=ctx.seed,
        devid=devid,
        channels_per_unit=per_unit,
    )


register_device_kind("neware-bts", build)
