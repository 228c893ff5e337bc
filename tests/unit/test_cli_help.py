"""`ragq … --help` explains every option: each option and positional of every subcommand
(sub-subcommands included) has a help text, so a new option without one fails here."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from scripts.cli import build_parser


def _parsers(
    parser: argparse.ArgumentParser, name: str
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _parsers(sub, f"{name} {sub_name}")


def _undocumented(parser: argparse.ArgumentParser) -> list[str]:
    """Options shown without help, or with a default their help does not mention."""
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            continue
        text = action.help or ""
        silent_default = action.default not in (None, False) and "default" not in text
        if not text.strip() or silent_default:
            missing.append("/".join(action.option_strings) or action.dest)
    return missing


def test_every_option_of_every_subcommand_has_help() -> None:
    """No option or positional of any `ragq` subcommand is shown without a help text, and
    each one that has a default names it (`%(default)s`)."""
    parsers = dict(_parsers(build_parser(), "ragq"))
    missing = {name: _undocumented(p) for name, p in parsers.items() if _undocumented(p)}
    expected_commands = {
        "ragq serve",
        "ragq worker",
        "ragq dev",
        "ragq keys create",
        "ragq keys list",
        "ragq keys revoke",
        "ragq ingest",
        "ragq ask",
        "ragq eval",
    }
    assert expected_commands <= parsers.keys()
    assert missing == {}


def test_every_subcommand_has_a_summary() -> None:
    """`ragq --help` and `ragq keys --help` give each subcommand a one-line summary."""
    parser = build_parser()
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    keys = subs[0].choices["keys"]
    keys_subs = [a for a in keys._actions if isinstance(a, argparse._SubParsersAction)]
    unsummarised = [
        choice.dest
        for action in (*subs, *keys_subs)
        for choice in action._choices_actions
        if not (choice.help or "").strip()
    ]
    assert unsummarised == []


def test_help_shows_the_defaults() -> None:
    """An option with a default says it in its help (`%(default)s` expanded by argparse)."""
    parser = build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    shown = subs.choices["keys"]
    keys_sub = next(a for a in shown._actions if isinstance(a, argparse._SubParsersAction))
    create_help = " ".join(keys_sub.choices["create"].format_help().split())
    ask_help = " ".join(subs.choices["ask"].format_help().split())
    assert "(default: default)" in create_help  # --tier
    assert "(default: http://127.0.0.1:8000)" in ask_help  # --url
    assert "(default: 5)" in ask_help  # --top-k
