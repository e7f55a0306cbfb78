"""``python -m hardware_sim``: JSON on stdout, talk to a device, control endpoint, SIGTERM."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import serial

from hardware_sim.bench import build_bench, load_description

ROOT = Path(__file__).resolve().parents[2]


def launch(*args: str) -> tuple[subprocess.Popen[str], dict[str, object]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "hardware_sim", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise AssertionError(f"no JSON from the launcher: {proc.communicate()[1]}")
    return proc, json.loads(line)


def control(port: int, request: dict[str, object]) -> dict[str, object]:
    with socket.create_connection(("127.0.0.1", port), timeout=5.0) as sock:
        sock.sendall(json.dumps(request).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            buf += sock.recv(4096)
    reply = json.loads(buf)
    assert isinstance(reply, dict)
    return reply


def test_demo_bench_serves_devices_and_exits_cleanly_on_sigterm() -> None:
    proc, doc = launch("--bench", "demo", "--speed", "1000", "--seed", "11")
    try:
        assert doc["simulated"] is True and doc["seed"] == 11
        clock = doc["clock"]
        assert isinstance(clock, dict) and clock["speed"] == 1000.0
        assert {"t0_s", "w0_s", "speed"} <= set(clock)
        devices = {d["name"]: d for d in doc["devices"]}  # type: ignore[attr-defined]
        assert {"acir", "eis", "smu"} <= set(devices)
        acir = devices["acir"]
        assert acir["visa"] == f"TCPIP::127.0.0.1::{acir['tcp_port']}::SOCKET"
        cells = doc["cells"]
        assert isinstance(cells, list)
        held = {c["id"]: c["held_by"] for c in cells}
        assert held[acir["fixture"]] == "acir/1"

        port = serial.serial_for_url(acir["pyserial"], timeout=2.0)
        port.write(b"*IDN?\r\n")
        assert port.read_until(b"\r\n") == b"HIOKI,BT3562,SIMULATED-11,V2.03\r\n"

        ctl = doc["control"]
        assert isinstance(ctl, dict)
        assert control(ctl["tcp_port"], {"cmd": "fault", "device": "acir", "fault": "garbage"})[
            "ok"
        ]
        port.write(b"*IDN?\r\n")
        junk = port.read_until(b"\r\n")
        assert junk.endswith(b"\r\n") and all(b >= 0x80 for b in junk[:-2])
        bad = control(ctl["tcp_port"], {"cmd": "fault", "device": "nope", "fault": "delay"})
        assert bad["ok"] is False and "nope" in str(bad["error"])
        shelf = next(c["id"] for c in cells if c["held_by"] is None)
        assert control(ctl["tcp_port"], {"cmd": "place", "device": "acir", "cell": shelf})["ok"]
        port.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert out == ""


def test_bad_bench_name_exits_2_naming_the_presets() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hardware_sim", "--bench", "no-such-bench"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "demo" in proc.stderr and "no-such-bench" in proc.stderr


def test_toml_bench_with_unknown_kind_names_it(tmp_path: Path) -> None:
    path = tmp_path / "bench.toml"
    path.write_text('[bench]\nseed = 3\n[[device]]\nkind = "bt9999"\nname = "x"\n')
    with pytest.raises(ValueError, match="bt9999.*known: .*bt3562"):
        build_bench(load_description(path))


def test_toml_bench_builds_devices_and_takes_cells_in_order(tmp_path: Path) -> None:
    path = tmp_path / "bench.toml"
    path.write_text(
        '[bench]\nseed = 3\nspeed = 5\n[lot]\npreset = "new-cells"\nchemistry = "lfp"\n'
        'cells = 4\n[[device]]\nkind = "bt3563"\nname = "m1"\n[[device]]\nkind = "keithley2460"\n'
    )
    bench = build_bench(load_description(path))
    assert bench.clock.speed == 5.0
    assert [d.name for d in bench.devices] == ["m1", "keithley2460-2"]
    assert bench.devices[0].cells[0] is bench.lot[0].cell
    assert bench.devices[1].cells[0] is bench.lot[1].cell
    assert bench.lot[0].cell.rated["chemistry"] == "lfp"


def test_bad_toml_names_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "bench.toml"
    path.write_text("[bench\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_description(path)
    path.write_text('[[device]]\nname = "x"\n')
    with pytest.raises(ValueError, match="device #1: 'kind'"):
        build_bench(load_description(path))
    path.write_text('[lot]\ncells = 1\n[[device]]\nkind = "bt3562"\n[[device]]\nkind = "bt4560"\n')
    with pytest.raises(ValueError, match="too few"):
        build_bench(load_description(path))


def test_running_bench_with_pty_and_control_commands() -> None:
    from hardware_sim.bench import build_bench as build
    from hardware_sim.launcher import RunningBench

    bench = build(
        {
            "bench": {"seed": 4},
            "lot": {"preset": "new-cells", "cells": 4},
            "device": [{"kind": "bt3562", "name": "acir"}],
        },
        speed=100.0,
    )
    running = RunningBench.start(bench, with_pty=True)
    try:
        doc = running.describe()
        acir = doc["devices"][0]
        assert acir["pty"].startswith("/dev/")
        port = serial.serial_for_url(acir["pty"], timeout=2.0)
        port.write(b"*IDN?\r\n")
        assert port.read_until(b"\r\n") == b"HIOKI,BT3562,SIMULATED-4,V2.03\r\n"
        port.close()
        ctl = doc["control"]["tcp_port"]
        assert control(ctl, {"cmd": "state"})["ok"]
        before = control(ctl, {"cmd": "state"})["t_s"]
        skipped = control(ctl, {"cmd": "skip", "s": 86400.0})
        assert skipped["ok"] and skipped["t_s"] >= before + 86400.0  # type: ignore[operator]
        assert not control(ctl, {"cmd": "skip", "s": -1})["ok"]
        assert control(ctl, {"cmd": "fault", "device": "acir", "fault": "drop_reply"})["ok"]
        state = control(ctl, {"cmd": "state"})
        assert state["devices"]["acir"]["active"] == ["drop_reply"]  # type: ignore[index]
        assert control(ctl, {"cmd": "clear", "device": "acir"})["ok"]
        with socket.create_connection(("127.0.0.1", acir["tcp_port"]), timeout=2.0) as sock:
            assert control(ctl, {"cmd": "disconnect", "device": "acir", "offline_s": 0.2})["ok"]
            assert sock.recv(10) == b""  # the server closed our link
        assert control(ctl, {"cmd": "place", "device": "acir", "cell": None})["ok"]
        assert bench.device("acir").personality.describe()["fixture"] is None
        assert not control(ctl, {"cmd": "melt", "device": "acir"})["ok"]
    finally:
        running.stop()


def test_printed_clock_builds_a_station_scaled_clock_on_the_same_time() -> None:
    from hardware_sim.bench import build_bench as build
    from hardware_sim.launcher import RunningBench
    from station.clock import ScaledClock

    bench = build({"device": [{"kind": "bt4560"}]}, speed=3600.0)
    running = RunningBench.start(bench)
    try:
        c = running.describe()["clock"]
        station_clock = ScaledClock(t0_s=c["t0_s"], w0_s=c["w0_s"], speed=c["speed"])
        before = bench.clock.now()
        seen = station_clock.now()
        after = bench.clock.now()
        # same formula and wall source: the station's reading falls between two of ours, put on
        # the calendar (Unix time; the launch is the wall clock's time by default)
        epoch = bench.clock.epoch_s
        assert abs(epoch - bench.clock.w0_s) < 0.1
        assert before + epoch <= seen <= after + epoch
    finally:
        running.stop()
