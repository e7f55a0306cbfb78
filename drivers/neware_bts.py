"""Neware BTS 8.x multi-channel cycler over its TCP/XML API.

Messages follow ``docs/instrument-protocols.md`` (Neware section) and the request formats of
aurora-neware ``aurora_neware/neware.py`` (replies as captured from a BTS 8.0 in its ``mocks.py``;
see ``../shared/reference/instruments.md`` section 2.5). A request is::

    <?xml version="1.0" encoding="UTF-8" ?>\\n<bts version="1.0"><cmd>...</cmd>...</bts>
    followed by the terminator \\n\\n#\\r\\n

One :class:`NewareBtsCabinet` owns the one TCP connection to a cabinet; its
:class:`NewareChannel` objects (one per ``devid-subdevid-chlid``) share it under the transport's
lock and satisfy :class:`station.instruments.CyclerChannel` by shape. Modes and limits live in a
step file (:mod:`drivers.neware_stepfile`) written into ``step_dir`` and started by path with a
barcode unique per started step (``<run_id>/<step_index>``).

Recovery: a timeout, garbage or a dropped link closes and reopens the connection, logs in again
and re-reads the device info (so a late reply is never taken for the next answer; a different
serial raises :class:`drivers.session.IdentityMismatch`), waiting ``reconnect_backoff_s * 2**k``
wall seconds between attempts; every handled fault goes through ``drivers.session.log_fault``.
Read-only and idempotent requests (inquire, download, getchlstatus, stop, light) are then sent
again; ``start`` never is: the channel asks ``inquire`` whether its barcode is running instead.

Samples: ``download`` rows are 1-based ``seqid`` s of the latest test on the channel; the channel
keeps its position so every row is delivered once. ``testtime`` (ms) is the time since the test
(= the started step) began; a sample's ``t_s`` is the programme time: the sum of the earlier
steps' durations on this channel plus ``testtime``, so host gaps between steps are not counted.
A row's ``temp`` attribute (aux temperature, sent by the simulator) becomes ``temperature_c``.
"""

from __future__ import annotations

import itertools
import logging
import math
import tempfile
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from xml.sax.saxutils import escape, quoteattr

from drivers.errors import (
    InstrumentError,
    InstrumentReportedError,
    LinkDown,
    ProtocolError,
    SettingError,
    TransportTimeout,
)
from drivers.identity import InstrumentIdentity
from drivers.neware_stepfile import validate_protection, validate_step, write_step_file
from drivers.readings import (
    ChannelState,
    ChannelStatus,
    CyclerSample,
    CyclerStep,
    ProtectionLimits,
    StepMode,
)
from drivers.session import IdentityMismatch, log_fault
from drivers.transport import open_transport

log = logging.getLogger("drivers.neware_bts")

TERMINATOR = "\n\n#\r\n"
XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8" ?>'
DEFAULT_PORT = 502
MAX_DOWNLOAD_ROWS = 1000
MAX_FRAME_BYTES = 1 << 20

WORKSTATUS_STATES = {
    "working": ChannelState.RUNNING,
    "finish": ChannelState.FINISHED,
    "stop": ChannelState.IDLE,
    "protect": ChannelState.PROTECTED,
    "pause": ChannelState.PAUSED,
}

_RECOVERABLE = (TransportTimeout, ProtocolError, LinkDown)


# --- framing and parsing -------------------------------------------------------------------------


def frame_request(body: str) -> str:
    """The request text (the transport appends the terminator)."""
    return f'{XML_DECLARATION}\n<bts version="1.0">{body}</bts>'


@dataclass(frozen=True)
class NewareReply:
    """One parsed reply: its ``cmd`` (e.g. ``inquire_resp``) and the ``<bts>`` root element."""

    cmd: str
    root: ET.Element

    def records(self, list_tag: str = "list") -> list[ET.Element]:
        container = self.root.find(list_tag)
        return list(container) if container is not None else []


def parse_reply(text: str, *, address: str = "") -> NewareReply:
    """Parse one reply frame (terminator removed). Raises only :class:`ProtocolError`."""
    if len(text) > MAX_FRAME_BYTES:
        raise ProtocolError(f"reply of {len(text)} characters is too long", address=address)
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise ProtocolError("reply carries a DTD, refused", address=address)
    try:
        root = ET.fromstring(text.strip())
    except (ET.ParseError, ValueError) as exc:
        raise ProtocolError(f"reply is not XML ({exc}): {text[:80]!r}", address=address) from exc
    if root.tag != "bts":
        raise ProtocolError(
            f"reply root is <{root.tag}>, not <bts>: {text[:80]!r}", address=address
        )
    cmd = (root.findtext("cmd") or "").strip()
    if not cmd:
        raise ProtocolError(f"reply has no <cmd>: {text[:80]!r}", address=address)
    return NewareReply(cmd=cmd, root=root)


class NewareFrameReader:
    """Split a byte stream into replies: tolerant of frames split across reads or merged in one.

    ``feed`` returns every complete reply in order. A garbage frame raises :class:`ProtocolError`
    and is dropped, so the stream resynchronises at the next terminator; replies completed in the
    same chunk are kept and come out of the next ``feed`` call (``feed(b"")`` collects them).
    """

    def __init__(self, *, address: str = "") -> None:
        self.address = address
        self._buffer = bytearray()
        self._ready: list[NewareReply] = []

    def feed(self, data: bytes) -> list[NewareReply]:
        self._buffer += data
        term = TERMINATOR.encode("ascii")
        while True:
            index = self._buffer.find(term)
            if index < 0:
                if len(self._buffer) > MAX_FRAME_BYTES:
                    self._buffer.clear()
                    raise ProtocolError("no frame terminator within 1 MiB", address=self.address)
                break
            frame = bytes(self._buffer[:index])
            del self._buffer[: index + len(term)]
            try:
                text = frame.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ProtocolError(
                    f"reply is not UTF-8: {frame[:80]!r}", address=self.address
                ) from exc
            self._ready.append(parse_reply(text, address=self.address))
        replies, self._ready = self._ready, []
        return replies


def _canonical_cmd(cmd: str) -> str:
    # The real cabinet answers download/downloadlog with "donwload..." (see the BTS 8.0 capture).
    return cmd.replace("donwload", "download")


def _attr(element: ET.Element, name: str, *, address: str = "") -> str:
    value = element.get(name)
    if value is None:
        raise ProtocolError(f"<{element.tag}> has no attribute {name!r}", address=address)
    return value


def _float(element: ET.Element, name: str, *, address: str = "", default: float = 0.0) -> float:
    raw = element.get(name)
    if raw is None or raw == "--":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ProtocolError(f"<{element.tag} {name}={raw!r}> is not a number", address=address)
    return value


def _int(element: ET.Element, name: str, *, address: str = "") -> int:
    raw = _attr(element, name, address=address)
    try:
        return int(raw)
    except ValueError as exc:
        raise ProtocolError(f"<{element.tag} {name}={raw!r}> is not an integer") from exc


# --- records ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pipeline:
    """A channel address as ``getdevinfo`` lists it."""

    ip: str
    devtype: str
    devid: str
    subdevid: str
    chlid: str

    @property
    def id(self) -> str:
        return f"{self.devid}-{self.subdevid}-{self.chlid}"

    def attrs(self, *, ip: bool = True) -> str:
        ip_part = f"ip={quoteattr(self.ip)} " if ip else ""
        return (
            f"{ip_part}devtype={quoteattr(self.devtype)} devid={quoteattr(self.devid)} "
            f"subdevid={quoteattr(self.subdevid)} chlid={quoteattr(self.chlid)}"
        )


@dataclass(frozen=True)
class InquireRecord:
    """One channel's ``inquire`` answer (SI units; ``None`` where the cabinet sent ``--``)."""

    workstatus: str
    barcode: str
    step_id: int | None
    step_type: str
    current_a: float
    voltage_v: float
    capacity_ah: float
    energy_wh: float
    total_time_s: float
    step_time_s: float
    log_code: str


@dataclass(frozen=True)
class DataRow:
    """One downloaded row: ``seqid`` (1-based), ``testtime_s`` since the test started."""

    seqid: int
    step_id: int
    step_type: str
    testtime_s: float
    voltage_v: float
    current_a: float
    capacity_ah: float
    energy_wh: float
    temperature_c: float | None = None


class NewareTransport(Protocol):
    """What the driver needs from :mod:`drivers.transport` (text frames, terminator handled)."""

    @property
    def lock(self) -> AbstractContextManager[Any]: ...

    def write(self, text: str) -> None: ...

    def read(self, *, timeout_s: float | None = None) -> str: ...

    def reopen(self) -> None: ...

    def close(self) -> None: ...


# --- request builders (exact bodies) ------------------------------------------------------------


def connect_body(username: str = "admin", password: str = "neware") -> str:
    return (
        f"<cmd>connect</cmd><username>{escape(username)}</username>"
        f"<password>{escape(password)}</password><type>bfgs</type>"
    )


def getdevinfo_body() -> str:
    return "<cmd>getdevinfo</cmd>"


def _list_body(cmd: str, items: Sequence[str]) -> str:
    return f'<cmd>{cmd}</cmd><list count = "{len(items)}">{"".join(items)}</list>'


def getchlstatus_body(pipelines: Sequence[Pipeline]) -> str:
    return _list_body("getchlstatus", [f"<status {p.attrs()}>true</status>" for p in pipelines])


def inquire_body(pipelines: Sequence[Pipeline]) -> str:
    return _list_body(
        "inquire",
        [f'<inquire {p.attrs()} aux="0" barcode="1">true</inquire>' for p in pipelines],
    )


def start_body(pipeline: Pipeline, step_file: str, barcode: str, backup_dir: str) -> str:
    start = f"<start {pipeline.attrs()} barcode={quoteattr(barcode)}>{escape(step_file)}</start>"
    backup = (
        f'<backup backupdir={quoteattr(backup_dir)} remotedir="" filenametype="0" '
        'customfilename="" addtimewhenrepeat="0" createdirbydate="0" filetype="0" '
        'backupontime="1" backupontimeinterval="720" backupfree="1" />'
    )
    return f'<cmd>start</cmd><list count = "1">{start}{backup}</list>'


def stop_body(pipelines: Sequence[Pipeline]) -> str:
    return _list_body("stop", [f"<stop {p.attrs()}>true</stop>" for p in pipelines])


def light_body(pipelines: Sequence[Pipeline], on: bool) -> str:
    text = "true" if on else "false"
    return _list_body("light", [f"<light {p.attrs()}>{text}</light>" for p in pipelines])


def download_body(pipeline: Pipeline, startpos: int, count: int) -> str:
    return (
        f"<cmd>download</cmd><download {pipeline.attrs(ip=False)} "
        f'auxid="0" testid="0" startpos="{startpos}" count="{count}"/>'
    )


def downloadlog_body(pipeline: Pipeline) -> str:
    return f'<cmd>downloadlog</cmd><download {pipeline.attrs(ip=False)} testid="0"/>'


# --- the cabinet ----------------------------------------------------------------------------------


class NewareBtsCabinet:
    """One Neware BTS cabinet (one TCP connection) and its channels.

    ``step_dir`` is where step files are written; it must be a path the BTS PC can read (the
    same machine, or a share mapped on it as ``step_dir_remote``). ``run_id`` prefixes barcodes
    and file names (default: a random 8-hex id, unique per cabinet object).
    """

    def __init__(
        self,
        transport: NewareTransport,
        *,
        step_dir: Path,
        step_dir_remote: str | None = None,
        address: str = "",
        run_id: str | None = None,
        username: str = "admin",
        password: str = "neware",
        backup_dir: str = "C:\\Neware data\\",
        reconnect_attempts: int = 5,
        reconnect_backoff_s: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._transport = transport
        self.address = address
        self.step_dir = Path(step_dir)
        self.step_dir_remote = step_dir_remote
        self.run_id = run_id or uuid.uuid4().hex[:8]
        self._username = username
        self._password = password
        self.backup_dir = backup_dir
        self._reconnect_attempts = reconnect_attempts
        self._reconnect_backoff_s = reconnect_backoff_s
        self._sleep = sleep
        self._identity: InstrumentIdentity | None = None
        self._pipelines: dict[str, Pipeline] = {}
        self._devid_filter: str | None = None
        self._channels: dict[str, NewareChannel] = {}
        self._lock = threading.RLock()
        self.reconnects = 0
        self.poll_round = 0
        """Counts :meth:`prefetch_round` calls; a prefetched record is used only in its round."""

    # -- connection ---------------------------------------------------------------------------

    def connect(self) -> NewareBtsCabinet:
        """Log in and read the channel list and identity."""
        with self._lock, self._transport.lock:
            self._login()
        return self

    def _login(self) -> None:
        reply = self._exchange(connect_body(self._username, self._password), "connect_resp")
        result = (reply.root.findtext("result") or "").strip()
        if result != "ok":
            raise InstrumentReportedError(
                f"login refused (result {result!r})", address=self.address, code=result
            )
        self._read_devinfo()

    def _read_devinfo(self) -> None:
        reply = self._exchange(getdevinfo_body(), "getdevinfo_resp")
        middle = reply.root.find("middle")
        if middle is None:
            raise ProtocolError("getdevinfo reply has no <middle>", address=self.address)
        pipelines: dict[str, Pipeline] = {}
        for element in middle:
            if element.tag != "channel":
                continue
            pipeline = Pipeline(
                ip=_attr(element, "ip", address=self.address),
                devtype=_attr(element, "devtype", address=self.address),
                devid=_attr(element, "devid", address=self.address),
                subdevid=_attr(element, "subdevid", address=self.address),
                chlid=_attr(element, "Channelid", address=self.address),
            )
            pipelines[pipeline.id] = pipeline
        if not pipelines:
            raise InstrumentReportedError("cabinet lists no channels", address=self.address)
        devtypes = sorted({p.devtype for p in pipelines.values()})
        identity = InstrumentIdentity(
            make="NEWARE",
            model=f"BTS devtype {'/'.join(devtypes)}",
            serial=middle.get("serial", ""),
            firmware=middle.get("version", ""),
            address=self.address,
        )
        if self._identity is not None and identity.serial != self._identity.serial:
            raise IdentityMismatch(
                f"a different cabinet answered after reconnect ({identity.serial!r}, "
                f"was {self._identity.serial!r})",
                address=self.address,
            )
        self._identity = identity
        if self._devid_filter is not None:
            pipelines = {k: p for k, p in pipelines.items() if p.devid == self._devid_filter}
        self._pipelines = pipelines

    def _exchange(self, body: str, expect: str) -> NewareReply:
        self._transport.write(frame_request(body))
        reply = parse_reply(self._transport.read(), address=self.address)
        if _canonical_cmd(reply.cmd) != expect:
            raise ProtocolError(
                f"expected <cmd>{expect}</cmd>, got {reply.cmd!r}", address=self.address
            )
        return reply

    def _recover(self, cause: Exception) -> None:
        """Close, reopen and log in again, with exponential backoff; LinkDown when it cannot."""
        last: Exception = cause
        for attempt in range(self._reconnect_attempts):
            if attempt:
                self._sleep(self._reconnect_backoff_s * 2 ** (attempt - 1))
            try:
                self._transport.reopen()
                self._login()
            except IdentityMismatch:
                raise
            except _RECOVERABLE as exc:
                last = exc
                log.warning("%s reconnect attempt %d failed: %s", self.address, attempt + 1, exc)
                continue
            self.reconnects += 1
            log.warning("%s reconnected after %s", self.address, cause)
            return
        raise LinkDown(f"cabinet unreachable after {self._reconnect_attempts} attempts: {last}")

    def request(self, body: str, expect: str, *, resend: bool) -> NewareReply:
        """One exchange; on a recoverable failure reconnect and, when ``resend``, ask again."""
        with self._lock, self._transport.lock:
            try:
                return self._exchange(body, expect)
            except _RECOVERABLE as exc:
                log_fault(self.address, f"{expect} {type(exc).__name__}", exc)
                self._recover(exc)
                if not resend:
                    raise
            return self._exchange(body, expect)

    def close(self) -> None:
        self._transport.close()

    # -- facts ---------------------------------------------------------------------------------

    @property
    def identity(self) -> InstrumentIdentity:
        if self._identity is None:
            raise LinkDown("cabinet not connected", address=self.address)
        return self._identity

    def keep_devid(self, devid: str) -> None:
        """Offer only the channels of device ``devid`` (one cabinet PC may serve several)."""
        kept = {pid: p for pid, p in self._pipelines.items() if p.devid == devid}
        if not kept:
            devids = ", ".join(sorted({p.devid for p in self._pipelines.values()}))
            raise SettingError(f"no channels with devid {devid} (cabinet has {devids})")
        self._pipelines = kept
        self._devid_filter = devid

    def pipeline_ids(self) -> list[str]:
        """Channel addresses ``devid-subdevid-chlid`` in the cabinet's order."""
        return list(self._pipelines)

    def pipeline(self, pipeline_id: str) -> Pipeline:
        try:
            return self._pipelines[pipeline_id]
        except KeyError:
            known = ", ".join(self._pipelines) or "none"
            raise SettingError(
                f"no channel {pipeline_id!r} on the cabinet (known: {known})"
            ) from None

    def channel(self, pipeline_id: str) -> NewareChannel:
        """The channel object for ``devid-subdevid-chlid`` (one object per channel)."""
        if pipeline_id not in self._channels:
            self._channels[pipeline_id] = NewareChannel(self, self.pipeline(pipeline_id))
        return self._channels[pipeline_id]

    def channels(self) -> list[NewareChannel]:
        return [self.channel(pid) for pid in self._pipelines]

    # -- commands ------------------------------------------------------------------------------

    def inquire(self, pipelines: Sequence[Pipeline]) -> list[InquireRecord]:
        reply = self.request(inquire_body(pipelines), "inquire_resp", resend=True)
        records = reply.records()
        # Replies are mapped back by position (the cabinet may misreport subdevid).
        if len(records) != len(pipelines):
            raise ProtocolError(
                f"inquire answered {len(records)} channels for {len(pipelines)}",
                address=self.address,
            )
        return [self._inquire_record(element) for element in records]

    def _inquire_record(self, e: ET.Element) -> InquireRecord:
        a = self.address
        step_id = e.get("step_id")
        return InquireRecord(
            workstatus=_attr(e, "workstatus", address=a),
            barcode=e.get("barcode", ""),
            step_id=int(step_id) if step_id and step_id.isdigit() else None,
            step_type=e.get("step_type", "--"),
            current_a=_float(e, "current", address=a),
            voltage_v=_float(e, "voltage", address=a),
            capacity_ah=_float(e, "capacity", address=a),
            energy_wh=_float(e, "energy", address=a),
            total_time_s=_float(e, "totaltime", address=a),
            step_time_s=_float(e, "relativetime", address=a),
            log_code=e.get("log_code", "0"),
        )

    def prefetch_round(self, channels: Sequence[object]) -> None:
        """Read the state of every channel of this cabinet in ``channels`` in ONE ``inquire``.

        The BTS API takes a list of ``<inquire .../>`` elements in one request and answers each
        in order (``../shared/reference/instruments.md`` section 2.5), so a poll round over N
        channels costs one exchange for their states instead of N. Each channel's next
        :meth:`NewareChannel.poll` in this round uses its record; a later round's prefetch
        makes it stale. Other objects in ``channels`` are ignored. A failed read is logged and
        left to the channels, whose own ``inquire`` then reports the fault through their poll.
        """
        self.poll_round += 1
        mine = [
            channel
            for channel in channels
            if isinstance(channel, NewareChannel) and channel._cabinet is self
        ]
        if not mine:
            return
        try:
            records = self.inquire([channel._pipeline for channel in mine])
        except InstrumentError as exc:
            log.warning(
                "%s: batched inquire failed, channels ask one by one: %s", self.address, exc
            )
            return
        for channel, record in zip(mine, records, strict=True):
            channel._prefetched = (self.poll_round, record)

    def getchlstatus(self, pipelines: Sequence[Pipeline]) -> list[str]:
        reply = self.request(getchlstatus_body(pipelines), "getchlstatus_resp", resend=True)
        return [(element.text or "").strip() for element in reply.records()]

    def start(self, pipeline: Pipeline, step_file: str, barcode: str) -> bool:
        """Start a step file; never re-sent (a lost reply raises; ask ``inquire`` instead)."""
        reply = self.request(
            start_body(pipeline, step_file, barcode, self.backup_dir), "start_resp", resend=False
        )
        return self._single_result(reply, "start")

    def stop(self, pipelines: Sequence[Pipeline]) -> list[bool]:
        reply = self.request(stop_body(pipelines), "stop_resp", resend=True)
        return [(element.text or "").strip() == "ok" for element in reply.records()]

    def light(self, pipelines: Sequence[Pipeline], on: bool = True) -> list[bool]:
        reply = self.request(light_body(pipelines, on), "light_resp", resend=True)
        return [(element.text or "").strip() == "ok" for element in reply.records()]

    def _single_result(self, reply: NewareReply, tag: str) -> bool:
        records = reply.records()
        if len(records) != 1 or records[0].tag != tag:
            raise ProtocolError(f"{tag} reply does not hold one <{tag}>", address=self.address)
        return (records[0].text or "").strip() == "ok"

    def download(self, pipeline: Pipeline, startpos: int, count: int) -> tuple[int, list[DataRow]]:
        """The latest test's id and its rows ``startpos`` .. ``startpos+count-1`` (1-based)."""
        if not 0 < count <= MAX_DOWNLOAD_ROWS:
            raise SettingError(f"download count must be 1..{MAX_DOWNLOAD_ROWS}, got {count}")
        reply = self.request(download_body(pipeline, startpos, count), "download_resp", resend=True)
        header = reply.root.find("download")
        testid = _int(header, "testid", address=self.address) if header is not None else 0
        rows = []
        for e in reply.records():
            a = self.address
            rows.append(
                DataRow(
                    seqid=_int(e, "seqid", address=a),
                    step_id=_int(e, "stepid", address=a),
                    step_type=e.get("steptype", "--"),
                    testtime_s=_float(e, "testtime", address=a) / 1000.0,
                    voltage_v=_float(e, "volt", address=a),
                    current_a=_float(e, "curr", address=a),
                    capacity_ah=_float(e, "cap", address=a),
                    energy_wh=_float(e, "eng", address=a),
                    temperature_c=(
                        _float(e, "temp", address=a) if e.get("temp") is not None else None
                    ),
                )
            )
        return testid, rows

    def downloadlog(self, pipeline: Pipeline) -> list[tuple[int, str]]:
        """The latest test's log as ``(seqid, log_code)`` pairs."""
        reply = self.request(downloadlog_body(pipeline), "downloadlog_resp", resend=True)
        return [
            (_int(e, "seqid", address=self.address), _attr(e, "log_code", address=self.address))
            for e in reply.records()
        ]


_SAFE = str.maketrans(dict.fromkeys('\\/:*?"<>| ', "_"))


class NewareChannel:
    """One cabinet channel as a :class:`station.instruments.CyclerChannel`."""

    def __init__(self, cabinet: NewareBtsCabinet, pipeline: Pipeline) -> None:
        self._cabinet = cabinet
        self._pipeline = pipeline
        self._protection: ProtectionLimits | None = None
        self._indices = itertools.count()
        self._barcode: str | None = None
        self._step_index = -1
        self._sign = 1.0
        self._position = 0
        self._testid: int | None = None
        self._offset_s = 0.0
        self._last_step_time_s = 0.0
        self._pending: list[CyclerSample] = []
        self._prefetched: tuple[int, InquireRecord] | None = None

    @property
    def identity(self) -> InstrumentIdentity:
        return self._cabinet.identity

    @property
    def channel_id(self) -> str:
        return self._pipeline.id

    @property
    def barcode(self) -> str | None:
        """Barcode of the step started last (``<run_id>/<step_index>``)."""
        return self._barcode

    def arm_protection(self, limits: ProtectionLimits) -> ProtectionLimits:
        """Keep the limits; they go into every step file's whole-programme protection.

        BTS has no API to write or read protection outside a step file, so what the cabinet
        holds is what the next file carries: the limits are returned as kept.
        """
        validate_protection(limits)
        self._protection = limits
        return limits

    def start_step(self, step: CyclerStep) -> None:
        if self._protection is None:
            raise SettingError(f"{self.channel_id}: arm_protection() before start_step()")
        validate_step(step)
        # A state read before this start names the previous barcode: never use it after.
        self._prefetched = None
        if self._barcode is not None:
            # Collect what the previous step recorded before the cabinet starts a new test.
            self._collect()
            self._offset_s += self._last_step_time_s
        index = next(self._indices)
        barcode = f"{self._cabinet.run_id}/{index}"
        name = f"{self._cabinet.run_id}_{self.channel_id}_{index}.xml".translate(_SAFE)
        path = write_step_file(self._cabinet.step_dir / name, step, self._protection)
        remote = self._cabinet.step_dir_remote
        step_file = f"{remote.rstrip(chr(92))}\\{name}" if remote else str(path.resolve())
        try:
            ok = self._cabinet.start(self._pipeline, step_file, barcode)
        except _RECOVERABLE as exc:
            record = self._inquire()
            if record.barcode != barcode:
                raise InstrumentError(
                    f"{self.channel_id}: start of {barcode} unconfirmed after {exc}; "
                    f"channel shows barcode {record.barcode!r} ({record.workstatus})",
                    address=self._cabinet.address,
                ) from exc
            log.warning("%s: start reply lost, found %s by barcode", self.channel_id, barcode)
            ok = True
        if not ok:
            raise InstrumentReportedError(
                f"{self.channel_id}: cabinet refused to start {step_file}",
                address=self._cabinet.address,
                code="false",
            )
        self._barcode = barcode
        self._step_index = index
        self._sign = step_sign(step)
        self._position = 0
        self._testid = None
        self._last_step_time_s = 0.0

    def _inquire(self) -> InquireRecord:
        return self._cabinet.inquire([self._pipeline])[0]

    def _collect(self) -> None:
        """Download every row after the position into the pending samples."""
        while True:
            testid, rows = self._cabinet.download(
                self._pipeline, self._position + 1, MAX_DOWNLOAD_ROWS
            )
            if rows and self._testid is not None and testid != self._testid:
                raise ProtocolError(
                    f"{self.channel_id}: test id changed from {self._testid} to {testid}",
                    address=self._cabinet.address,
                )
            for row in rows:
                if row.seqid <= self._position:
                    continue
                if row.seqid != self._position + 1:
                    raise ProtocolError(
                        f"{self.channel_id}: download skipped from seqid {self._position} "
                        f"to {row.seqid}",
                        address=self._cabinet.address,
                    )
                self._pending.append(self._sample(row))
                self._position = row.seqid
                self._last_step_time_s = row.testtime_s
            if rows:
                self._testid = testid
            if len(rows) < MAX_DOWNLOAD_ROWS:
                return

    def _sample(self, row: DataRow) -> CyclerSample:
        return CyclerSample(
            t_s=self._offset_s + row.testtime_s,
            step_index=self._step_index,
            step_time_s=row.testtime_s,
            voltage_v=row.voltage_v,
            current_a=row.current_a,
            temperature_c=row.temperature_c,
            step_capacity_ah=self._sign * row.capacity_ah,
            step_energy_wh=self._sign * row.energy_wh,
        )

    def _poll_record(self) -> InquireRecord:
        """This round's prefetched state (used once), else a fresh ``inquire``."""
        prefetched, self._prefetched = self._prefetched, None
        if prefetched is not None and prefetched[0] == self._cabinet.poll_round:
            return prefetched[1]
        return self._inquire()

    def poll(self) -> ChannelStatus:
        record = self._poll_record()
        state = WORKSTATUS_STATES.get(record.workstatus, ChannelState.FAULT)
        message = ""
        if state is ChannelState.FAULT:
            message = f"unknown workstatus {record.workstatus!r}"
        if self._barcode is not None:
            if record.barcode != self._barcode:
                state = ChannelState.FAULT
                message = f"channel runs barcode {record.barcode!r}, expected {self._barcode!r}"
            else:
                self._collect()
        samples, self._pending = tuple(self._pending), []
        return ChannelStatus(
            state=state,
            samples=samples,
            step_index=max(self._step_index, 0),
            protect_code=record.log_code if state is ChannelState.PROTECTED else None,
            message=message,
        )

    def stop(self) -> None:
        self._prefetched = None
        (ok,) = self._cabinet.stop([self._pipeline])
        if not ok and self._inquire().workstatus in ("working", "pause"):
            raise InstrumentReportedError(
                f"{self.channel_id}: cabinet refused to stop", address=self._cabinet.address
            )

    def light(self, on: bool = True) -> bool:
        (ok,) = self._cabinet.light([self._pipeline], on)
        return ok


def step_sign(step: CyclerStep) -> float:
    """+1 for charging steps, -1 for discharging ones (rest counts as +1)."""
    return -1.0 if step.mode is not StepMode.REST and step.current_a < 0 else 1.0


def open_neware_bts(
    address: str,
    *,
    step_dir: Path,
    timeout_s: float = 5.0,
    max_consecutive_timeouts: int = 3,
    **options: Any,
) -> NewareBtsCabinet:
    """Open ``address`` (e.g. ``tcp://10.0.0.7:502``), log in and read the channel list.

    ``options`` go to :class:`NewareBtsCabinet` (``run_id``, ``step_dir_remote``, ``username``,
    ``password``, ``backup_dir``, ``reconnect_attempts``, ``reconnect_backoff_s``, ``sleep``).
    """
    transport = open_transport(
        address,
        read_termination=TERMINATOR,
        write_termination=TERMINATOR,
        timeout_s=timeout_s,
        encoding="utf-8",
        max_consecutive_timeouts=max_consecutive_timeouts,
        max_line_bytes=MAX_FRAME_BYTES,
    )
    cabinet = NewareBtsCabinet(transport, step_dir=step_dir, address=address, **options)
    try:
        cabinet.connect()
    except Exception:
        transport.close()
        raise
    return cabinet


SETTING_KEYS = frozenset(
    {
        "step_dir",
        "step_dir_remote",
        "run_id",
        "username",
        "password",
        "backup_dir",
        "reconnect_attempts",
        "reconnect_backoff_s",
        "timeout_s",
        "max_consecutive_timeouts",
        "devid",
    }
)


def default_step_dir() -> Path:
    """Where step files go when the bench config names no ``step_dir``: right for a simulator or
    a BTS PC on the same machine; a remote cabinet needs a share (``step_dir`` +
    ``step_dir_remote``)."""
    return Path(tempfile.gettempdir()) / "cell-grading-station" / "neware-steps"


def open_from_settings(address: str, settings: Mapping[str, Any]) -> NewareBtsCabinet:
    """Registry entry: bench-config ``settings`` -> a connected cabinet.

    ``step_dir`` defaults to :func:`default_step_dir`; ``devid`` (optional) keeps only the
    channels of that device id. Samples carry the cabinet's own timestamps, so the station
    clock is not needed; the reconnect backoff is wall time (it waits for a link, not a cell).
    """
    unknown = sorted(set(settings) - SETTING_KEYS)
    if unknown:
        raise SettingError(
            f"neware-bts: unknown setting {unknown[0]!r}; "
            f"accepted: {', '.join(sorted(SETTING_KEYS))}"
        )
    options = dict(settings)
    step_dir = Path(options.pop("step_dir", default_step_dir()))
    devid = options.pop("devid", None)
    cabinet = open_neware_bts(address, step_dir=step_dir, **options)
    if devid is not None:
        try:
            cabinet.keep_devid(str(int(devid)))
        except (SettingError, ValueError, TypeError) as exc:
            cabinet.close()
            raise SettingError(f"neware-bts: setting 'devid': {exc}") from exc
    return cabinet
