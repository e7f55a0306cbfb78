"""``station doctor``: check the installation and say what to fix.

Checks: the Qt platform plugin loads (in a child process, so a broken plugin cannot take this
process down), the pyvisa-py VISA backend opens, serial ports are visible, the database path is
writable and not on a network share (the rule :class:`station.storage.Storage` enforces), and
the station signing key has owner-only permissions (:mod:`station.passport.signing`). Nothing is
created: a missing database or key is fine when its directory can be created.

Exit code 0 when nothing failed (warnings allowed), 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from station.cli.common import default_db_path, print_json

OK, WARN, FAIL = "ok", "warn", "fail"

_QT_PROBE = (
    "from PySide6.QtWidgets import QApplication\n"
    "app = QApplication([])\n"
    "print(app.platformName())\n"
)


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | warn | fail
    detail: str
    fix: str = ""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="check the installation (Qt, VISA, serial ports, database path, key) and say what "
        "to fix",
        description=(
            "Check that the GUI's Qt platform plugin loads, the VISA backend opens, serial ports "
            "are visible, the database path is writable and local, and the station signing key "
            "is private. Exit 0 when nothing failed."
        ),
    )
    parser.add_argument(
        "--db", type=Path, help="database file to check (default: $STATION_DB or user data dir)"
    )
    parser.add_argument("--key", type=Path, help="signing key file (default: $STATION_KEY_FILE)")
    parser.add_argument("--json", action="store_true", help="print the checks as JSON")
    parser.set_defaults(handler=run)


def check_qt(timeout_s: float = 60.0) -> Check:
    try:
        done = subprocess.run(
            [sys.executable, "-c", _QT_PROBE], capture_output=True, text=True, timeout=timeout_s
        )
    except subprocess.TimeoutExpired:
        return Check("qt", FAIL, "the Qt probe hung", "check the display and QT_QPA_PLATFORM")
    if done.returncode == 0:
        return Check("qt", OK, f"platform plugin {done.stdout.strip()!r} loads")
    last = (done.stderr.strip().splitlines() or ["no output"])[-1]
    return Check(
        "qt",
        FAIL,
        f"the Qt platform plugin does not load: {last}",
        "install the xcb libraries (e.g. libxcb-cursor0) or set QT_QPA_PLATFORM=offscreen for "
        "headless use",
    )


def check_visa() -> Check:
    try:
        import pyvisa

        manager = pyvisa.ResourceManager("@py")
        manager.close()
    except Exception as error:  # noqa: BLE001 - any failure is the finding
        return Check(
            "visa", FAIL, f"pyvisa-py backend does not open: {error}", "pip install pyvisa-py"
        )
    return Check("visa", OK, "pyvisa-py ResourceManager opens")


def check_serial(comports: Callable[[], list[object]] | None = None) -> Check:
    try:
        if comports is None:
            from serial.tools.list_ports import comports as list_ports

            comports = list_ports
        ports = comports()
    except Exception as error:  # noqa: BLE001
        return Check("serial", FAIL, f"cannot list serial ports: {error}", "pip install pyserial")
    if not ports:
        return Check(
            "serial",
            WARN,
            "no serial ports visible",
            "connect the USB-serial adapters; on Linux add the user to the dialout group",
        )
    names = ", ".join(str(getattr(p, "device", p)) for p in ports)
    return Check("serial", OK, f"{len(ports)} serial port(s): {names}")


def check_database(path: Path, mounts_text: str | None = None) -> Check:
    from station.storage.db import NETWORK_FILESYSTEMS, filesystem_type

    text = str(path)
    if text.startswith(("\\\\", "//")):
        return Check("database", FAIL, f"{path} is a network share path", "use a local disk")
    directory = path.parent
    while not directory.exists() and directory != directory.parent:
        directory = directory.parent
    fs_type = filesystem_type(path, mounts_text)
    if fs_type in NETWORK_FILESYSTEMS:
        return Check(
            "database",
            FAIL,
            f"{path} is on a network filesystem ({fs_type}); SQLite WAL corrupts there",
            "put the database on a local disk (--db or STATION_DB)",
        )
    target = path if path.exists() else directory
    if not target.is_dir() and not path.exists():
        return Check("database", FAIL, f"{directory} is not a directory", "choose another --db")
    if not os.access(target, os.W_OK):
        return Check(
            "database", FAIL, f"{target} is not writable", "fix its permissions or choose --db"
        )
    state = "exists" if path.exists() else "will be created"
    return Check("database", OK, f"{path} ({state}, filesystem {fs_type or 'unknown'})")


def check_key(path: Path | None = None) -> Check:
    from station.passport.signing import SigningError, StationKey, default_key_path

    path = path or default_key_path()
    if not path.exists():
        return Check("key", OK, f"{path} does not exist yet; it is created on first signing")
    if sys.platform != "win32":
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            return Check(
                "key",
                FAIL,
                f"{path}: mode {mode:o} lets others read the signing key",
                f"chmod 600 {path}",
            )
    try:
        key = StationKey.load_or_create(path)
    except SigningError as error:
        return Check("key", FAIL, str(error), "restore the key from backup or remove it")
    return Check("key", OK, f"{path} (fingerprint {key.fingerprint})")


def run(args: argparse.Namespace) -> int:
    checks = [
        check_qt(),
        check_visa(),
        check_serial(),
        check_database(args.db or default_db_path()),
        check_key(args.key),
    ]
    failed = any(c.status == FAIL for c in checks)
    if args.json:
        print_json({"ok": not failed, "checks": [asdict(c) for c in checks]})
    else:
        for c in checks:
            print(f"{c.status.upper():4} {c.name:9} {c.detail}")
            if c.fix and c.status != OK:
                print(f"     {'':9} fix: {c.fix}")
    return 1 if failed else 0
