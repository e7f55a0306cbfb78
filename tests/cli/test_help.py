"""Every option of the headless commands built here is documented in ``--help``."""

from __future__ import annotations

import argparse

import pytest

from station.cli.main import build_parser

COMMANDS = ("run", "match", "doctor", "import")


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_has_help(name: str) -> None:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    command = subparsers.choices[name]
    assert command.description
    undocumented = [
        a.dest
        for a in command._actions
        if not isinstance(a, argparse._HelpAction) and not (a.help and a.help.strip())
    ]
    assert undocumented == []
    text = command.format_help()
    for action in command._actions:
        for flag in action.option_strings:
            assert flag in text
