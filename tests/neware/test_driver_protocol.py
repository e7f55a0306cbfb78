# ruff: noqa: E501  (wire-format strings are kept whole so the exact bytes stay readable)
"""Expected-protocol tests: the exact bytes the Neware driver sends and the replies it consumes."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.errors import (
    InstrumentError,
    InstrumentReportedError,
    LinkDown,
    ProtocolError,
    SettingError,
    TransportTimeout,
)
from drivers.neware_bts import NewareBtsCabinet
from drivers.readings import ChannelState, CyclerStep, EndConditions, ProtectionLimits, StepMode
from drivers.session import IdentityMismatch
from station.instruments import CyclerChannel
from tests.neware.scripted import ScriptedTransport, reply, request

LOGIN = (
    request(
        "<cmd>connect</cmd><username>admin</username><password>neware</password><type>bfgs</type>"
    ),
    reply("<cmd>connect_resp</cmd>", "<result>ok</result>"),
)
DEVINFO = (
    request("<cmd>getdevinfo</cmd>"),
    reply(
        "<cmd>getdevinfo_resp</cmd>",
        '<serverip count="1">',
        '  <server ip="127.0.0.1" port="3306" />',
        "</serverip>",
        '<middle count="2" serial="SIMULATED-7" version="8.0.0.sim">',
        '  <channel ip="127.0.0.1" devtype="27" devid="21" subdevid="1" Channelid="1">true</channel>',
        '  <channel ip="127.0.0.1" devtype="27" devid="21" subdevid="1" Channelid="2">true</channel>',
        "</middle>",
    ),
)
CHL = 'ip="127.0.0.1" devtype="27" devid="21" subdevid="1" chlid="1"'
INQUIRE = request(
    f'<cmd>inquire</cmd><list count = "1"><inquire {CHL} aux="0" barcode="1">true</inquire></list>'
)
LIMITS = ProtectionLimits(voltage_min_v=2.5, voltage_max_v=4.25, current_max_a=3.0)
STEP = CyclerStep(StepMode.CC, current_a=-1.0, end=EndConditions(voltage_below_v=2.75))


def inquire_reply(workstatus: str, barcode: str, log_code: str = "102000") -> str:
    return reply(
        "<cmd>inquire_resp</cmd>",
        '<list count="1">',
        f'  <inquire dev="27-21-1-1-0" cycle_id="1" step_id="1" step_type="dc" workstatus="{workstatus}" '
        f'barcode="{barcode}" current="-1" voltage="3.6" capacity="0.01" energy="0.036" '
        f'totaltime="36" relativetime="36" open_or_close="0" log_code="{log_code}" />',
        "</list>",
    )


def download(startpos: int) -> bytes:
    return request(
        '<cmd>download</cmd><download devtype="27" devid="21" subdevid="1" chlid="1" '
        f'auxid="0" testid="0" startpos="{startpos}" count="1000"/>'
    )


def download_reply(first: int, n: int, testid: int = 5) -> str:
    rows = [
        f'  <data seqid="{s}" stepid="1" cycleid="1" steptype="dc" testtime="{(s - 1) * 1000}" '
        f'atime="2026-11-22 04:00:00" volt="{3.7 - s * 1e-4:.6f}" curr="-1" cap="{s / 3600:.9f}" '
        f'eng="{3.6 * s / 3600:.9f}" />'
        for s in range(first, first + n)
    ]
    listing = [f'<list count="{n}">', *rows, "</list>"] if rows else ['<list count="0" />']
    return reply(
        "<cmd>donwload_resp</cmd>",
        f'<download devtype="27" devid="21" subdevid="1" chlid="1" testid="{testid}" '
        f'startpos="{first}" count="1000" auxid="0" />',
        *listing,
    )


def start_request(path: Path, barcode: str) -> bytes:
    return request(
        f'<cmd>start</cmd><list count = "1"><start {CHL} barcode="{barcode}">{path.resolve()}</start>'
        '<backup backupdir="C:\\Neware data\\" remotedir="" filenametype="0" customfilename="" '
        'addtimewhenrepeat="0" createdirbydate="0" filetype="0" backupontime="1" '
        'backupontimeinterval="720" backupfree="1" /></list>'
    )


def cabinet(script: list, tmp_path: Path) -> tuple[NewareBtsCabinet, ScriptedTransport]:
    transport = ScriptedTransport([LOGIN, DEVINFO, *script])
    cab = NewareBtsCabinet(transport, step_dir=tmp_path, run_id="r1", address="tcp://bts:502")
    return cab.connect(), transport


def test_connect_logs_in_lists_channels_and_detects_simulated(tmp_path: Path) -> None:
    cab, transport = cabinet([], tmp_path)
    assert cab.pipeline_ids() == ["21-1-1", "21-1-2"]
    assert cab.identity.serial == "SIMULATED-7"
    assert cab.identity.simulated
    assert cab.identity.make == "NEWARE"
    channel = cab.channel("21-1-2")
    assert isinstance(channel, CyclerChannel)
    assert channel.channel_id == "21-1-2"
    assert transport.done()


def test_refused_login_is_an_instrument_error(tmp_path: Path) -> None:
    transport = ScriptedTransport(
        [(LOGIN[0], reply("<cmd>connect_resp</cmd>", "<result>false</result>"))]
    )
    with pytest.raises(InstrumentReportedError, match="login refused"):
        NewareBtsCabinet(transport, step_dir=tmp_path).connect()


def test_start_step_writes_the_file_and_sends_start_with_a_unique_barcode(tmp_path: Path) -> None:
    path = tmp_path / "r1_21-1-1_0.xml"
    ok = reply("<cmd>start_resp</cmd>", '<list count="1">', f"  <start {CHL}>ok</start>", "</list>")
    cab, transport = cabinet([(start_request(path, "r1/0"), ok)], tmp_path)
    channel = cab.channel("21-1-1")
    with pytest.raises(SettingError, match="arm_protection"):
        channel.start_step(STEP)
    assert channel.arm_protection(LIMITS) == LIMITS
    channel.start_step(STEP)
    assert path.exists() and b'Step_Type="2"' in path.read_bytes()
    assert channel.barcode == "r1/0"
    assert transport.done()


def test_refused_start_raises(tmp_path: Path) -> None:
    path = tmp_path / "r1_21-1-1_0.xml"
    no = reply(
        "<cmd>start_resp</cmd>", '<list count="1">', f"  <start {CHL}>false</start>", "</list>"
    )
    cab, transport = cabinet([(start_request(path, "r1/0"), no)], tmp_path)
    channel = cab.channel("21-1-1")
    channel.arm_protection(LIMITS)
    with pytest.raises(InstrumentReportedError, match="refused to start"):
        channel.start_step(STEP)
    assert transport.done()


def test_lost_start_reply_is_recovered_by_barcode_not_resent(tmp_path: Path) -> None:
    path = tmp_path / "r1_21-1-1_0.xml"
    cab, transport = cabinet(
        [
            (start_request(path, "r1/0"), TransportTimeout("no reply")),
            LOGIN,
            DEVINFO,
            (INQUIRE, inquire_reply("working", "r1/0")),
        ],
        tmp_path,
    )
    channel = cab.channel("21-1-1")
    channel.arm_protection(LIMITS)
    channel.start_step(STEP)
    assert transport.reopened == 1
    assert transport.done(), "start sent exactly once"


def test_lost_start_reply_with_other_barcode_is_not_confirmed(tmp_path: Path) -> None:
    path = tmp_path / "r1_21-1-1_0.xml"
    cab, transport = cabinet(
        [
            (start_request(path, "r1/0"), TransportTimeout("no reply")),
            LOGIN,
            DEVINFO,
            (INQUIRE, inquire_reply("finish", "older")),
        ],
        tmp_path,
    )
    channel = cab.channel("21-1-1")
    channel.arm_protection(LIMITS)
    with pytest.raises(InstrumentError, match="unconfirmed"):
        channel.start_step(STEP)
    assert transport.done()


def _started(tmp_path: Path, script: list) -> tuple[NewareBtsCabinet, ScriptedTransport]:
    path = tmp_path / "r1_21-1-1_0.xml"
    ok = reply("<cmd>start_resp</cmd>", '<list count="1">', f"  <start {CHL}>ok</start>", "</list>")
    cab, transport = cabinet([(start_request(path, "r1/0"), ok), *script], tmp_path)
    channel = cab.channel("21-1-1")
    channel.arm_protection(LIMITS)
    channel.start_step(STEP)
    return cab, transport


def test_poll_downloads_every_row_across_chunks_and_keeps_position(tmp_path: Path) -> None:
    cab, transport = _started(
        tmp_path,
        [
            (INQUIRE, inquire_reply("working", "r1/0")),
            (download(1), download_reply(1, 1000)),
            (download(1001), download_reply(1001, 1000)),
            (download(2001), download_reply(2001, 3)),
            (INQUIRE, inquire_reply("finish", "r1/0", "100001")),
            (download(2004), download_reply(2004, 2)),
            (INQUIRE, inquire_reply("finish", "r1/0", "100001")),
            (download(2006), download_reply(2006, 0)),
        ],
    )
    channel = cab.channel("21-1-1")
    first = channel.poll()
    assert first.state is ChannelState.RUNNING
    assert [s.step_time_s for s in first.samples] == [float(i) for i in range(2003)]
    sample = first.samples[10]
    assert sample.current_a == -1.0
    assert sample.step_capacity_ah == pytest.approx(-11 / 3600, abs=1e-9)  # discharge: negative
    assert sample.step_energy_wh == pytest.approx(-3.6 * 11 / 3600, abs=1e-9)
    assert sample.voltage_v == pytest.approx(3.7 - 11e-4, abs=1e-9)
    assert sample.temperature_c is None, "rows without aux temperature (as captured) give None"
    second = channel.poll()
    assert second.state is ChannelState.FINISHED
    assert [s.step_time_s for s in second.samples] == [2003.0, 2004.0]
    third = channel.poll()
    assert third.samples == ()
    assert transport.done()


@pytest.mark.parametrize(
    ("workstatus", "state", "code"),
    [
        ("working", ChannelState.RUNNING, None),
        ("finish", ChannelState.FINISHED, None),
        ("stop", ChannelState.IDLE, None),
        ("protect", ChannelState.PROTECTED, "200101"),
        ("pause", ChannelState.PAUSED, None),
        ("weird", ChannelState.FAULT, None),
    ],
)
def test_workstatus_mapping(
    tmp_path: Path, workstatus: str, state: ChannelState, code: str | None
) -> None:
    cab, transport = _started(
        tmp_path,
        [
            (INQUIRE, inquire_reply(workstatus, "r1/0", "200101")),
            (download(1), download_reply(1, 0)),
        ],
    )
    status = cab.channel("21-1-1").poll()
    assert status.state is state
    assert status.protect_code == code
    assert transport.done()


def test_foreign_barcode_on_the_channel_is_a_fault(tmp_path: Path) -> None:
    cab, transport = _started(tmp_path, [(INQUIRE, inquire_reply("working", "someone-else"))])
    status = cab.channel("21-1-1").poll()
    assert status.state is ChannelState.FAULT
    assert "someone-else" in status.message
    assert transport.done()


def test_gap_in_seqid_is_a_protocol_error(tmp_path: Path) -> None:
    cab, _ = _started(
        tmp_path,
        [(INQUIRE, inquire_reply("working", "r1/0")), (download(1), download_reply(3, 2))],
    )
    with pytest.raises(ProtocolError, match="skipped"):
        cab.channel("21-1-1").poll()


def test_stop_sends_stop(tmp_path: Path) -> None:
    stop = request(f'<cmd>stop</cmd><list count = "1"><stop {CHL}>true</stop></list>')
    ok = reply("<cmd>stop_resp</cmd>", '<list count="1">', f"  <stop {CHL}>ok</stop>", "</list>")
    cab, transport = cabinet([(stop, ok)], tmp_path)
    cab.channel("21-1-1").stop()
    assert transport.done()


def test_light_and_downloadlog_bytes(tmp_path: Path) -> None:
    light = request(f'<cmd>light</cmd><list count = "1"><light {CHL}>true</light></list>')
    light_ok = reply(
        "<cmd>light_resp</cmd>", '<list count="1">', f"  <light {CHL}>ok</light>", "</list>"
    )
    log = request(
        '<cmd>downloadlog</cmd><download devtype="27" devid="21" subdevid="1" chlid="1" testid="0"/>'
    )
    log_reply = reply(
        "<cmd>donwloadlog_resp</cmd>",
        '<download devtype="27" devid="21" subdevid="1" chlid="1" testid="143" log_lever="0" />',
        '<list count="2">',
        '  <data seqid="1" log_code="100000" atime="2025-12-03 16:44:02" />',
        '  <data seqid="219585" log_code="100001" atime="2025-12-28 22:30:11" />',
        "</list>",
    )
    cab, transport = cabinet([(light, light_ok), (log, log_reply)], tmp_path)
    assert cab.channel("21-1-1").light(True)
    assert cab.downloadlog(cab.pipeline("21-1-1")) == [(1, "100000"), (219585, "100001")]
    assert transport.done()


def test_reply_to_another_command_is_a_protocol_error_then_resent(tmp_path: Path) -> None:
    cab, transport = cabinet(
        [
            (INQUIRE, reply("<cmd>stop_resp</cmd>")),
            LOGIN,
            DEVINFO,
            (INQUIRE, inquire_reply("stop", "")),
        ],
        tmp_path,
    )
    status = cab.channel("21-1-1").poll()
    assert status.state is ChannelState.IDLE
    assert transport.reopened == 1 and transport.done()


def test_unknown_channel_names_the_known_ones(tmp_path: Path) -> None:
    cab, _ = cabinet([], tmp_path)
    with pytest.raises(SettingError, match="21-1-1, 21-1-2"):
        cab.channel("9-9-9")


def test_a_different_cabinet_after_reconnect_is_refused(tmp_path: Path) -> None:
    other = (DEVINFO[0], DEVINFO[1].replace("SIMULATED-7", "BTS-0042"))
    cab, transport = cabinet([(INQUIRE, TransportTimeout("no reply")), LOGIN, other], tmp_path)
    with pytest.raises(IdentityMismatch, match="BTS-0042"):
        cab.channel("21-1-1").poll()
    assert transport.done()


def test_unreachable_cabinet_gives_link_down_after_the_attempts(tmp_path: Path) -> None:
    down = LinkDown("refused")
    transport = ScriptedTransport(
        [LOGIN, DEVINFO, (INQUIRE, down), (LOGIN[0], down), (LOGIN[0], down)]
    )
    waits: list[float] = []
    cab = NewareBtsCabinet(
        transport,
        step_dir=tmp_path,
        reconnect_attempts=3,
        reconnect_backoff_s=0.5,
        sleep=waits.append,
    ).connect()
    transport.script.append((LOGIN[0], down))
    with pytest.raises(LinkDown, match="after 3 attempts"):
        cab.channel("21-1-1").poll()
    assert transport.reopened == 3 and transport.done()
    assert waits == [0.5, 1.0], "exponential backoff between attempts, none before the first"


def test_getchlstatus_bytes_and_positional_mapping(tmp_path: Path) -> None:
    both = 'ip="127.0.0.1" devtype="27" devid="21" subdevid="1"'
    status = request(
        f'<cmd>getchlstatus</cmd><list count = "2"><status {both} chlid="1">true</status>'
        f'<status {both} chlid="2">true</status></list>'
    )
    # The capture's quirk: the reply may misreport subdevid, so results map back by position.
    answer = reply(
        "<cmd>getchlstatus_resp</cmd>",
        '<list count="2">',
        '  <status ip="127.0.0.1" devtype="27" devid="21" subdevid="1" chlid="1" reservepause="1">finish</status>',
        '  <status ip="127.0.0.1" devtype="27" devid="21" subdevid="9" chlid="2" reservepause="1">working</status>',
        "</list>",
    )
    cab, transport = cabinet([(status, answer)], tmp_path)
    pipelines = [cab.pipeline("21-1-1"), cab.pipeline("21-1-2")]
    assert cab.getchlstatus(pipelines) == ["finish", "working"]
    assert transport.done()


CHL2 = 'ip="127.0.0.1" devtype="27" devid="21" subdevid="1" chlid="2"'
INQUIRE_BOTH = request(
    f'<cmd>inquire</cmd><list count = "2"><inquire {CHL} aux="0" barcode="1">true</inquire>'
    f'<inquire {CHL2} aux="0" barcode="1">true</inquire></list>'
)
INQUIRE_2 = request(
    f'<cmd>inquire</cmd><list count = "1"><inquire {CHL2} aux="0" barcode="1">true</inquire></list>'
)


def _record(chl: int, workstatus: str, voltage: str, subdevid: int = 1) -> str:
    return (
        f'  <inquire dev="27-21-{subdevid}-{chl}-0" cycle_id="1" step_type="--" '
        f'workstatus="{workstatus}" barcode="" current="0" voltage="{voltage}" capacity="0" '
        'energy="0" totaltime="0" relativetime="0" open_or_close="0" log_code="0" />'
    )


def test_one_inquire_per_round_serves_every_channel_of_the_round(tmp_path: Path) -> None:
    # The real API answers a <list> of <inquire/> elements in one reply, one record per channel
    # in request order (instruments.md section 2.5); the reply's subdevid may be wrong (the
    # capture's quirk), so records map back by position.
    both = reply(
        "<cmd>inquire_resp</cmd>",
        '<list count="2">',
        _record(1, "stop", "3.61"),
        _record(2, "finish", "3.72", subdevid=9),
        "</list>",
    )
    only_2 = reply(
        "<cmd>inquire_resp</cmd>", '<list count="1">', _record(2, "finish", "3.73"), "</list>"
    )
    single = reply(
        "<cmd>inquire_resp</cmd>", '<list count="1">', _record(1, "stop", "3.62"), "</list>"
    )
    cab, transport = cabinet(
        [(INQUIRE_BOTH, both), (INQUIRE_2, only_2), (INQUIRE, single)], tmp_path
    )
    one, two = cab.channel("21-1-1"), cab.channel("21-1-2")
    cab.prefetch_round([one, two, object()])  # other objects are not this cabinet's channels
    assert one.poll().state is ChannelState.IDLE
    assert two.poll().state is ChannelState.FINISHED
    assert transport.script[0][0] == INQUIRE_2, "both polls were served by the one request"
    # A record is used in its own round only: channel 1 is not in the next round's request,
    # so its poll asks the cabinet itself rather than reusing the older reading.
    cab.prefetch_round([two])
    assert one.poll().state is ChannelState.IDLE
    assert transport.done()


def test_a_start_discards_the_prefetched_state(tmp_path: Path) -> None:
    # A state read before a start names the old barcode; used after it, the poll would report a
    # foreign barcode (a fault), so the poll after the start asks again.
    before = reply(
        "<cmd>inquire_resp</cmd>", '<list count="1">', _record(1, "stop", "3.61"), "</list>"
    )
    path = tmp_path / "r1_21-1-1_0.xml"
    ok = reply("<cmd>start_resp</cmd>", '<list count="1">', f"  <start {CHL}>ok</start>", "</list>")
    cab, transport = cabinet(
        [
            (INQUIRE, before),
            (start_request(path, "r1/0"), ok),
            (INQUIRE, inquire_reply("working", "r1/0")),
            (download(1), download_reply(1, 2)),
        ],
        tmp_path,
    )
    channel = cab.channel("21-1-1")
    cab.prefetch_round([channel])
    channel.arm_protection(LIMITS)
    channel.start_step(STEP)
    status = channel.poll()
    assert status.state is ChannelState.RUNNING
    assert len(status.samples) == 2
    assert transport.done()
