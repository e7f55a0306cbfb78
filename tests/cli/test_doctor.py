"""``station doctor``: each check finds what it should on this machine and on staged faults."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from station.cli.cmd_doctor import FAIL, OK, WARN, check_database, check_key, check_serial
from tests.cli.conftest import station

MOUNTS = "/dev/sda1 / ext4 rw 0 0\nserver:/export /mnt/lab nfs4 rw 0 0\n"


def test_doctor_json_reports_every_check(tmp_path: Path) -> None:
    done = station("doctor", "--json", "--db", tmp_path / "st.db", "--key", tmp_path / "k.pem")
    report = json.loads(done.stdout)
    by_name = {c["name"]: c for c in report["checks"]}
    assert set(by_name) == {"qt", "visa", "serial", "database", "key"}
    # the suite runs with QT_QPA_PLATFORM=offscreen and pyvisa-py installed
    assert by_name["qt"]["status"] == OK and "offscreen" in by_name["qt"]["detail"]
    assert by_name["visa"]["status"] == OK
    assert (
        by_name["database"]["status"] == OK and "will be created" in by_name["database"]["detail"]
    )
    assert by_name["key"]["status"] == OK
    assert report["ok"] is (done.returncode == 0)
    assert not (tmp_path / "st.db").exists() and not (tmp_path / "k.pem").exists()


def test_database_on_network_filesystem_fails() -> None:
    bad = check_database(Path("/mnt/lab/station.db"), MOUNTS)
    assert bad.status == FAIL and "nfs4" in bad.detail and bad.fix
    good = check_database(Path("/tmp/station.db"), MOUNTS)
    assert good.status == OK
    unc = check_database(Path("//server/share/station.db"), MOUNTS)
    assert unc.status == FAIL


@pytest.mark.skipif(os.name == "nt" or os.geteuid() == 0, reason="root ignores permissions")
def test_database_in_read_only_directory_fails(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    assert check_database(locked / "st.db").status == FAIL


def test_database_under_a_file_fails(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = check_database(blocker / "st.db")
    assert result.status == FAIL and "not a directory" in result.detail


@pytest.mark.skipif(os.name == "nt", reason="POSIX permissions")
def test_world_readable_key_fails_with_chmod_fix(tmp_path: Path) -> None:
    from station.passport.signing import StationKey

    key_path = tmp_path / "key.pem"
    created = StationKey.load_or_create(key_path)
    ok = check_key(key_path)
    assert ok.status == OK and created.fingerprint in ok.detail
    key_path.chmod(0o644)
    bad = check_key(key_path)
    assert bad.status == FAIL and bad.fix == f"chmod 600 {key_path}"
    done = station("doctor", "--db", tmp_path / "st.db", "--key", key_path)
    assert done.returncode == 1 and "chmod 600" in done.stdout


def test_no_serial_ports_is_a_warning() -> None:
    assert check_serial(list).status == WARN
    found = check_serial(lambda: ["COM3"])
    assert found.status == OK and "COM3" in found.detail
