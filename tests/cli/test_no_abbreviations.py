"""No command takes an abbreviated option: '--model /tmp/m' must not silently mean '--model-dir /tmp/m' (argparse's
default), and '--batch 64' must not mean '--batch-size 64'. Each command's parser, with its longest option cut by one
letter."""

from __future__ import annotations

import importlib

import pytest

from dogbreed.config.parser import CommandParser, build_parser
from dogbreed.core.errors import ConfigError

COMMANDS = ["debug_report", "export", "import_model", "package", "predict", "prepare", "profile_report", "serve"]


def _parsers():
    yield "train", build_parser()
    for name in COMMANDS:
        yield name, importlib.import_module(f"dogbreed.cli.{name}").build_parser()


@pytest.mark.parametrize("name, parser", list(_parsers()), ids=lambda value: value if isinstance(value, str) else "")
def test_a_cut_option_is_refused_with_the_full_one_suggested(name, parser):
    longest = max((s for action in parser._actions for s in action.option_strings if s.startswith("--")), key=len)
    cut = longest[:-1]
    with pytest.raises(ConfigError) as refused:
        parser.parse_args([cut, "1"])
    first = str(refused.value).split(". Options of ")[0]
    assert first == f"unknown option(s) {cut} (did you mean {longest}?)", name


def test_the_parser_never_matches_prefixes_even_when_asked():
    parser = CommandParser(prog="x", allow_abbrev=True)
    parser.add_argument("--model-dir")
    assert parser.allow_abbrev is False
    # past the unknown-option check too (argparse's own matching): parse_known_args of the base class
    namespace, rest = super(CommandParser, parser).parse_known_args(["--model", "m"])
    assert (namespace.model_dir, rest) == (None, ["--model", "m"])


def test_every_command_parser_is_covered():
    """A new command with its own build_parser joins COMMANDS (written out, not discovered)."""
    import pathlib

    import dogbreed.cli

    folder = pathlib.Path(dogbreed.cli.__file__).parent
    found = sorted(p.stem for p in folder.glob("*.py") if "def build_parser" in p.read_text(encoding="utf-8"))
    assert found == COMMANDS


def test_several_unknown_options_are_listed_in_one_message():
    parser = build_parser()
    with pytest.raises(ConfigError) as refused:
        parser.parse_args(["--batch", "64", "--epoch", "3", "--colour", "red"])
    first = str(refused.value).split(". Options of ")[0]
    assert first == ("unknown option(s) --batch (did you mean --batch-size?), --epoch (did you mean --epochs?), "
                     "--colour")


@pytest.mark.parametrize("typed, meant", [
    ("--colour", None), ("--out", "--output-dir"), ("--epcohs", "--epochs"), ("--batch_szie", "--batch-size"),
    ("--LR", "--lr"), ("--wd", "--weight-decay"), ("--seeds", "--seed"), ("--xyz", None), ("--lr=0.1", "--lr"),
])
def test_a_suggestion_is_made_on_the_name_not_on_the_dashes_every_option_shares(typed, meant):
    from dogbreed.config.parser import did_you_mean

    known = sorted({s for action in build_parser()._actions for s in action.option_strings if "_" not in s})
    assert did_you_mean(typed, known) == meant
