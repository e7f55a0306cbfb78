"""Every command and option is documented in ``--help``, and every read command has ``--json``."""

from __future__ import annotations

import argparse

import pytest

from station.cli.main import build_parser

READ_COMMANDS = ("analyze", "eis-fit", "match", "doctor", "verify", "grade", "followups")


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(subparsers.choices)


def test_every_command_is_listed_with_help() -> None:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helped = {choice.dest for choice in subparsers._choices_actions if choice.help}
    assert helped == set(subparsers.choices)


@pytest.mark.parametrize("name", sorted(_commands()))
def test_every_option_has_help(name: str) -> None:
    command = _commands()[name]
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


@pytest.mark.parametrize("name", READ_COMMANDS)
def test_read_command_has_json(name: str) -> None:
    commands = _commands()
    if name not in commands:
        pytest.skip(f"{name} is not registered on this branch")
    assert "--json" in commands[name]._option_string_actions
