"""Every command is documented: help text for each command and option, and a row in the README."""

from __future__ import annotations

import re

import click

from mailflow.cli import main

from .programme import REPO


def commands() -> dict[str, click.Command]:
    assert isinstance(main, click.Group)
    return dict(main.commands)


def test_every_command_and_option_has_help() -> None:
    for name, command in commands().items():
        assert command.help and len(command.help.split()) >= 5, f"mailflow {name} has no help text"
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"mailflow {name} {param.opts[0]} has no help text"


def test_every_command_is_in_the_readme_command_table() -> None:
    readme = (REPO / "README.md").read_text()
    table = readme.split("### Commands", 1)[1].split("\n\n", 2)[1]
    listed = set(re.findall(r"^\| `mailflow (\w+)", table, re.MULTILINE))
    assert listed == set(commands())
