"""The options reference, row by row: argparse's %-formatting applied to the help, an option without help left
blank (not a placeholder), the type, the default and the choices."""

from __future__ import annotations

import argparse

from dogbreed.cli.reference import option_row


def test_an_option_without_help_gets_an_empty_description():
    action = argparse.ArgumentParser().add_argument("--quiet-flag", type=int, default=3)
    row = option_row(action, "python -m entry_points.x")
    assert (row.names, row.type, row.default, row.choices, row.description) == ("`--quiet-flag`", "int", "`3`", "", "")


def test_the_help_is_expanded_like_help_prints_it():
    action = argparse.ArgumentParser().add_argument(
        "--mode", choices=["a", "b"], default="a", help="one of %(choices)s for %(prog)s,\n   default %(default)s")
    row = option_row(action, "python -m entry_points.x")
    assert (row.choices, row.description) == ("`a`, `b`", "one of a, b for python -m entry\\_points.x, default a")
