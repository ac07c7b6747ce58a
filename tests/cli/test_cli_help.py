"""Every command and sub-command says what it does, and every option what it sets."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from edgekit.cli import build_parser, main


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ("edgekit",)
) -> Iterator[tuple[tuple[str, ...], str | None, argparse.ArgumentParser]]:
    """(command path, its one-line help, its parser) for every sub-command, depth first."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                yield (*path, name), helps.get(name), sub
                yield from _commands(sub, (*path, name))


COMMANDS = list(_commands(build_parser()))


def test_the_walk_finds_the_commands_of_the_issue() -> None:
    names = {" ".join(path) for path, _, _ in COMMANDS}
    for command in ("predict", "train", "evaluate", "data", "data synth", "registry list"):
        assert f"edgekit {command}" in names
    assert len(names) > 40


@pytest.mark.parametrize(
    ("path", "help_text", "parser"), COMMANDS, ids=[" ".join(p) for p, _, _ in COMMANDS]
)
def test_every_command_has_help_and_a_description(
    path: tuple[str, ...], help_text: str | None, parser: argparse.ArgumentParser
) -> None:
    name = " ".join(path)
    assert help_text and help_text.strip(), f"{name}: no one-line help"
    assert parser.description and parser.description.strip(), f"{name}: no description"
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) or action.dest == "help":
            continue
        label = "/".join(action.option_strings) or action.dest
        assert action.help, f"{name} {label}: no help text"


@pytest.mark.parametrize("command", ["predict", "train", "evaluate", "data"])
def test_the_help_of_the_model_commands_has_a_description(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    description = dict((p[-1], s.description) for p, _, s in COMMANDS if len(p) == 2)[command]
    assert " ".join(description.split()[:4]) in " ".join(text.split())
