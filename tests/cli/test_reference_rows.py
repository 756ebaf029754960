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


def test_a_positional_is_required_unless_it_may_be_left_out():
    parser = argparse.ArgumentParser()
    rows = [option_row(parser.add_argument(name, nargs=nargs, **default), "p") for name, nargs, default in
            (("images", "+", {}), ("extras", "*", {"default": []}), ("maybe", "?", {}), ("one", None, {}))]
    # ("*" without a default is marked required by argparse itself, so it would say "required")
    assert [(row.names, row.type, row.default) for row in rows] == [
        ("`IMAGES ...`", "str ...", "required"), ("`EXTRAS ...`", "str ...", "`[]`"), ("`MAYBE`", "str", "–"),
        ("`ONE`", "str", "required")]


def test_the_generator_takes_one_folder_and_no_option(tmp_path, capsys):
    from dogbreed.cli.reference import main

    usage = "usage: python -m dogbreed.cli.reference docs  (writes options.md and modules.md into the folder given)\n"
    for argv in (["--help"], ["-h"], [], [str(tmp_path), str(tmp_path)]):
        assert main(argv) == 2, argv
        assert capsys.readouterr().err == usage
    (tmp_path / "notes.md").write_text("x")
    assert main([str(tmp_path / "notes.md")]) == 2
    assert capsys.readouterr().err == (f"error: {tmp_path / 'notes.md'} is not a folder: pass the docs folder, e.g. "
                                       "python -m dogbreed.cli.reference docs\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.md"]
