"""The argv parser of the training commands: one option per ``TrainConfig`` option, plus a command's own.

The same parser serves a terminal (``--batch-size 64`` or ``--batch_size 64``) and both SageMaker launchers:
the legacy training toolkit (tuning child jobs: keys sorted, ``--demo False``, launcher keys filtered) and SDK v3's
driver (keys in dict order, JSON values ``--demo false``, nothing filtered). Options a launcher adds
(``--_tuning_objective_metric``, ``--sagemaker_program`` ...: a leading underscore or ``sagemaker_``) are dropped
with one logged line. Other unknown, abbreviated or malformed options raise :class:`ConfigError` with one line
naming the option, a "did you mean" and the command's valid options.
The options are grouped by section in ``--help`` (one argparse group per section of
:mod:`dogbreed.config.sections`, titled by its name). Standard library only: ``--help`` and mistakes are answered
before anything heavy is imported.
"""

from __future__ import annotations

import argparse
import difflib
import logging
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from dogbreed.config.options import (
    DEMO_OVERRIDES,
    TrainConfig,
    option_fields,
    option_sections,
    section_descriptions,
    validate_config,
)
from dogbreed.core.errors import ConfigError
from dogbreed.core.jsontext import JsonTextError, parse_json

TRAIN_PROG = "python -m entry_points.train"
TRAIN_DESCRIPTION = "Fine-tune ResNet50 on a dog-breed ImageFolder dataset (locally or in a SageMaker job)."
CONFIG_OPTION = "config_file"  # --config FILE: not a TrainConfig field, read by parse_command
# Hyperparameters SageMaker itself adds to a job (the tuner's objective, the legacy toolkit's script-mode keys):
# never options of ours, so a launcher that passes them through (SDK v3's driver) must not fail the job.
LAUNCHER_OPTION = re.compile(r"^--(_|sagemaker_)")
logger = logging.getLogger(__name__)
_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}


def str2bool(value: str | bool) -> bool:
    """Parse the booleans SageMaker sends (the strings 'True'/'False') and the usual spellings."""
    if isinstance(value, bool):
        return value
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (true/false), got {value!r}")


@dataclass(frozen=True)
class ExtraOption:
    """An option of one command beyond the training options (e.g. ``hpo --trials``)."""

    name: str  # field-style name: "tuning_dir" -> --tuning-dir / --tuning_dir
    help: str
    type: Callable[[str], Any] = str
    default: Any = None
    flag: bool = False  # a switch without a value (store_true)


@dataclass(frozen=True)
class ParsedCommand:
    config: TrainConfig
    extras: dict[str, Any]
    explicit: frozenset[str]  # TrainConfig option names given on the command line


# argparse takes "-1e-9" for an option name (its own pattern knows only -1 and -0.5): a value in scientific
# notation after a flag ("--weight-decay -1e-9") would be "expected one argument" instead of a range error. The
# same for -inf and -nan, which float() reads: they reach the range checks, which name them.
NEGATIVE_NUMBER = re.compile(r"^-((\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|inf|infinity|nan)$", re.IGNORECASE)


# Names other tools use for an option, and the option of ours that means the same. A "did you mean" is chosen
# among these and the command's own options, so a misspelt alias leads to the option too (--lerning-rate -> --lr).
# An alias applies only where its option exists (predict has --device, train --accelerator).
ALIASES: dict[str, str] = {
    "--learning-rate": "--lr", "--lrate": "--lr", "--base-lr": "--lr",
    "--topk": "--top-k", "--k": "--top-k",
    "--num-epochs": "--epochs", "--n-epochs": "--epochs", "--max-epochs": "--epochs", "--epoch": "--epochs",
    "--bs": "--batch-size", "--batch": "--batch-size", "--train-batch-size": "--batch-size",
    "--wd": "--weight-decay", "--img-size": "--image-size", "--resolution": "--image-size",
    "--data": "--data-dir", "--dataset": "--data-dir", "--data-path": "--data-dir",
    "--model": "--model-dir", "--model-path": "--model-dir", "--output": "--output-dir", "--out": "--output-dir",
    "--gpu": "--accelerator", "--gpus": "--accelerator", "--device": "--accelerator",
    "--workers": "--num-workers", "--smoothing": "--label-smoothing", "--checkpoint": "--checkpoint-dir",
    "--cuda": "--device", "--host-port": "--port", "--http-port": "--port",
}


def did_you_mean(token: str, known: Sequence[str]) -> str | None:
    """The option of ``known`` (dashed spellings) that ``token`` most likely meant, directly or through an alias."""
    name = token.split("=", 1)[0].replace("_", "-").lower()
    aliases = {alias: option for alias, option in ALIASES.items() if option in known and alias not in known}
    if name in aliases:
        return aliases[name]
    # Compared without the leading dashes, which every name shares: with them, "--colour" was 0.6 alike "--out"
    bare = {candidate.lstrip("-"): candidate for candidate in [*known, *aliases]}
    close = difflib.get_close_matches(name.lstrip("-"), list(bare), n=1, cutoff=0.6)
    return aliases.get(bare[close[0]], bare[close[0]]) if close else None


def unknown_options(args: Sequence[str], parser: argparse.ArgumentParser) -> list[str]:
    """The ``--options`` in ``args`` this parser does not know (values after ``--`` are never options)."""
    known = {s for action in parser._actions for s in action.option_strings}
    unknown = []
    for token in args:
        if token == "--":
            break
        if token.startswith("--") and token.split("=", 1)[0] not in known:
            unknown.append(token)
    return unknown


class CommandParser(argparse.ArgumentParser):
    """argparse that raises ConfigError (one line) instead of printing usage and exiting, reads negative
    numbers in any notation as values, and answers an unknown option with a "did you mean" before any other
    complaint (a misspelt required option is a typo, not a missing option)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # '--batch 64' must never mean '--batch-size 64': unknown_options refuses any --option not spelled out,
        # and argparse's own prefix matching is off too, for every command
        super().__init__(*args, **{**kwargs, "allow_abbrev": False})
        self._negative_number_matcher = NEGATIVE_NUMBER

    def error(self, message: str) -> Any:  # argparse's signature says NoReturn; raising satisfies it
        raise ConfigError(f"{message} (see {self.prog} --help)")

    def parse_known_args(self, *args: Any, **kwargs: Any) -> Any:  # (args=None, namespace=None), as argparse
        given = args[0] if args else kwargs.get("args")
        argv = list(sys.argv[1:] if given is None else given)
        unknown = unknown_options(argv, self)
        if unknown:
            raise ConfigError(_unknown_message(unknown, self))
        return super().parse_known_args(argv, *args[1:], **{k: v for k, v in kwargs.items() if k != "args"})


def option_names() -> list[str]:
    """Every valid training option, as spelled on the command line and as a SageMaker hyperparameter."""
    return [f.name.replace("_", "-") for f in option_fields()]


def _spellings(name: str) -> list[str]:
    dashed, underscored = f"--{name.replace('_', '-')}", f"--{name}"
    return [dashed] if dashed == underscored else [dashed, underscored]


def _arg_type(type_name: str) -> Callable[[str], Any]:
    if "bool" in type_name:
        return str2bool
    if "int" in type_name:
        return int
    if "float" in type_name:
        return float
    if "Path" in type_name:
        return Path
    return str


def _help_text(help_text: str, default: Any) -> str:
    """The help with its default appended once (a help that already explains its default keeps its own)."""
    if "default" in help_text or default is None or default == "":
        return help_text
    return f"{help_text} (default: {default})"


def build_parser(prog: str = TRAIN_PROG, description: str | None = None,
                 extra_options: Sequence[ExtraOption] = (),
                 help_overrides: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    """An argparse parser for TrainConfig (+ ``extra_options``); defaults are None so explicit options show.
    ``help_overrides`` replaces the help of training options whose default differs in this command."""
    parser = CommandParser(prog=prog, description=description or TRAIN_DESCRIPTION)
    parser.add_argument("--config", dest=CONFIG_OPTION, type=Path, default=None, metavar="FILE",
                        help="a JSON file of training options, e.g. best_hyperparameters.json written by "
                             "hpo --local (its \"config\"); options given on the command line win")
    if extra_options:
        group = parser.add_argument_group("command options")
        for extra in extra_options:
            if extra.flag:
                group.add_argument(*_spellings(extra.name), dest=extra.name, action="store_true", help=extra.help)
            else:
                group.add_argument(*_spellings(extra.name), dest=extra.name, type=extra.type, default=extra.default,
                                   help=_help_text(extra.help, extra.default))
    descriptions, by_name = section_descriptions(), {f.name: f for f in option_fields()}
    for section, options in option_sections().items():  # one --help group per section of TrainConfig
        group = parser.add_argument_group(section, descriptions[section])
        for f in (by_name[option.replace("-", "_")] for option in options):
            arg_type = f.metadata.get("parse") or _arg_type(str(f.type))
            kwargs: dict[str, Any] = {"nargs": "?", "const": True} if arg_type is str2bool else {}
            if "choices" in f.metadata:
                kwargs["choices"] = f.metadata["choices"]
            help_text = (help_overrides or {}).get(f.name, f.metadata["help"])
            group.add_argument(*_spellings(f.name), dest=f.name, type=arg_type, default=None,
                               help=_help_text(help_text, f.default), **kwargs)
    return parser


def _unknown_message(unknown: Sequence[str], parser: argparse.ArgumentParser) -> str:
    known = sorted({s for action in parser._actions for s in action.option_strings if s.startswith("--")})
    dashed = sorted({s for s in known if "_" not in s})
    options = [token for token in unknown if token.startswith("-")]
    if not options:  # only stray values: argparse takes no positional arguments here
        return (f"unexpected argument(s) {' '.join(unknown)}: every value follows its --option "
                f"(see {parser.prog} --help)")
    shown = []
    for token in options:
        close = did_you_mean(token, dashed)
        shown.append(f"{token} (did you mean {close}?)" if close else token)
    return (f"unknown option(s) {', '.join(shown)}. Options of {parser.prog}: {', '.join(dashed)} "
            "(hyphens or underscores)")


def _parsers() -> dict[str, Callable[[str], Any]]:
    """Options read by a parser of their own (``--lr auto``)."""
    return {f.name: f.metadata["parse"] for f in option_fields() if "parse" in f.metadata}


def split_launcher_options(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """``argv`` without the options a SageMaker launcher adds (``--_x v``, ``--sagemaker_x v``, ``--_x=v``), and
    the names of those dropped. A user's own misspelling (``--learning_rate``) is kept, so it is still refused."""
    kept: list[str] = []
    dropped: list[str] = []
    tokens = list(argv)
    position = 0
    while position < len(tokens):
        token = tokens[position]
        position += 1
        if not LAUNCHER_OPTION.match(token):
            kept.append(token)
            continue
        dropped.append(token.split("=", 1)[0])
        if "=" not in token and position < len(tokens) and not tokens[position].startswith("--"):
            position += 1  # its value
    return kept, dropped


def _file_value(name: str, value: Any, source: Path) -> Any:
    """A value from a config file, converted like the same option on the command line."""
    field_types = {f.name: str(f.type) for f in option_fields()}
    option = name.replace("_", "-")  # as the user knows it from --help
    if value is None:
        if "None" not in field_types[name]:
            raise ConfigError(f"--config {source}: option {option} cannot be null")
        return None
    convert = _parsers().get(name) or _arg_type(field_types[name])
    if not isinstance(value, (str, int, float)):
        raise ConfigError(f"--config {source}: option {option} expects a single value, got {value!r}")
    if isinstance(value, bool) and convert is not str2bool:
        raise ConfigError(f"--config {source}: option {option} expects a value, not {value}")
    try:
        if convert is str2bool:
            return str2bool(value if isinstance(value, bool) else str(value))
        if convert is int and isinstance(value, float) and not value.is_integer():
            raise ValueError(f"{value} is not an integer")
        return int(value) if convert is int else convert(str(value))
    except (argparse.ArgumentTypeError, TypeError, ValueError) as exc:
        raise ConfigError(f"--config {source}: option {option}: {exc}") from exc


def load_config_file(path: Path) -> dict[str, Any]:
    """Training options from a JSON file: a flat ``{"option": value}`` object, or an object whose ``"config"``
    holds one (what ``hpo --local`` writes). Option names take hyphens or underscores; unknown ones are errors."""
    try:
        payload = parse_json(Path(path).read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"--config {path}: no such file") from None
    except (OSError, JsonTextError) as exc:
        raise ConfigError(f"--config {path}: not a readable JSON file ({exc})") from exc
    if isinstance(payload, dict) and isinstance(payload.get("config"), dict):
        payload = payload["config"]
    if not isinstance(payload, dict):
        raise ConfigError(f"--config {path}: expected a JSON object of training options")
    known = {f.name for f in option_fields()}
    values = {str(key).replace("-", "_"): value for key, value in payload.items()}
    unknown = sorted(key.replace("_", "-") for key in values if key not in known)
    if unknown:
        raise ConfigError(f"--config {path}: unknown option(s) {', '.join(unknown)}; valid: "
                          f"{', '.join(option_names())}")
    return {name: _file_value(name, value, Path(path)) for name, value in values.items()}


def parse_command(
    argv: Sequence[str] | None = None,
    *,
    prog: str = TRAIN_PROG,
    description: str | None = None,
    extra_options: Sequence[ExtraOption] = (),
    environment_defaults: dict[str, Any] | None = None,
    help_overrides: Mapping[str, str] | None = None,
) -> ParsedCommand:
    """Parse argv. Precedence: explicit options > ``--config FILE`` > ``environment_defaults`` (SageMaker's
    channel dirs...) > --demo presets > field defaults (an unset ``--backbone-lr-scale`` follows ``--weights``:
    :class:`TrainConfig` resolves it). Raises ConfigError (one line) for any mistake."""
    parser = build_parser(prog, description, extra_options, help_overrides)
    argv, dropped = split_launcher_options(sys.argv[1:] if argv is None else argv)
    if dropped:
        logger.info("ignored %s (added by the SageMaker launcher, not options of %s)", " ".join(dropped), prog)
    namespace, unknown = parser.parse_known_args(argv)
    if unknown:
        raise ConfigError(_unknown_message(unknown, parser))
    parsed = vars(namespace)
    config_file = parsed.pop(CONFIG_OPTION)
    extras = {extra.name: parsed.pop(extra.name) for extra in extra_options}
    given = {**(load_config_file(config_file) if config_file else {}),
             **{k: v for k, v in parsed.items() if v is not None}}
    environment_defaults = environment_defaults or {}
    values: dict[str, Any] = {f.name: f.default for f in option_fields()}
    if given.get("demo"):
        values.update(DEMO_OVERRIDES)
    values.update(environment_defaults)
    values.update(given)
    config = TrainConfig(**values)
    validate_config(config)
    return ParsedCommand(config=config, extras=extras, explicit=frozenset(given))


def parse_config(argv: Sequence[str] | None = None, *, prog: str = TRAIN_PROG,
                 environment_defaults: dict[str, Any] | None = None) -> TrainConfig:
    """Parse argv into a TrainConfig (see :func:`parse_command`)."""
    return parse_command(argv, prog=prog, environment_defaults=environment_defaults).config
