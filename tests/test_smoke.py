"""Smoke tests: the CLI answers, versions agree, the window opens, the layer contracts hold."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from importlib import metadata

import pytest

import station
from station.cli.main import build_parser, main
from tests.conftest import PROJECT_ROOT


def test_version_agrees_between_package_and_installed_metadata() -> None:
    assert metadata.version("cell-grading-station") == station.__version__


def test_cli_version_prints_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"station {station.__version__}"


def test_cli_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("demo", "gui"):
        assert command in out


def test_every_command_and_option_has_help_text() -> None:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    assert subparsers.choices, "no commands registered"
    helps = {choice.dest: choice.help for choice in subparsers._choices_actions}
    for name, sub in subparsers.choices.items():
        assert helps.get(name), f"command {name!r} has no help"
        for action in sub._actions:
            if action.dest == "help":
                continue
            assert action.help, (
                f"option {action.option_strings or action.dest} of {name!r} has no help"
            )


def test_console_script_runs_in_a_fresh_process() -> None:
    exe = shutil.which("station") or str(PROJECT_ROOT / ".venv" / "bin" / "station")
    result = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "demo" in result.stdout


def test_station_core_imports_without_qt() -> None:
    code = (
        "import sys, station, station.instruments, station.events, station.clock, "
        "station.cli.main, drivers.readings, drivers.errors\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('PySide6', 'shiboken6', 'pyqtgraph', 'hardware_sim'))\n"
        "print(','.join(bad))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == ""


def test_import_contracts_hold() -> None:
    exe = shutil.which("lint-imports") or str(PROJECT_ROOT / ".venv" / "bin" / "lint-imports")
    result = subprocess.run([exe], capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    config = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    assert f"Contracts: {len(contracts)} kept, 0 broken." in result.stdout
