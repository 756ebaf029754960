"""The documentation: a short README that points into docs/, and generated pages that cannot go stale (the options
reference from the commands' own parsers, the module index from the docstrings)."""

from __future__ import annotations

import argparse
import itertools
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dogbreed.cli import reference
from dogbreed.cli.reference import PAGES, Command, render_command, render_module_index

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text(encoding="utf-8")
OPTIONS_PAGE = (REPO / "docs" / "options.md").read_text(encoding="utf-8")
HEAVY = ("torch", "torchvision", "numpy", "PIL", "pytorch_lightning", "lightning", "torchmetrics", "matplotlib")


def _section(page: str, heading: str) -> str:
    """The text under ``heading`` up to the next heading of the same level."""
    level = heading.split(" ", 1)[0]
    after = page.split(f"\n{heading}\n", 1)[1]
    return re.split(rf"\n{level} ", after, maxsplit=1)[0]


def test_readme_is_at_most_300_lines():
    assert len(README.splitlines()) <= 300


def test_readme_quick_start_says_to_activate_the_venv():
    quick_start = _section(README, "## Quick start")
    assert "make demo" in quick_start and "make test" in quick_start
    assert "\n. .venv/bin/activate\n" in quick_start


def test_readme_links_into_docs_resolve():
    links = re.findall(r"\]\((docs/[^)#]+)(?:#[^)]*)?\)", README)
    assert len(links) >= 10
    missing = sorted({link for link in links if not (REPO / link).is_file()})
    assert not missing, f"README links to missing pages: {missing}"


def test_readme_project_structure_lists_the_top_level_folders():
    """The package's and the tests' own folders: tests/test_architecture.py."""
    block = _section(README, "## Project structure").split("```", 2)[1]
    for folder in ("dogbreed", "entry_points", "tests", "bench", "docs", "notebooks", "tools"):
        assert re.search(rf"^{folder}/ +\S", block, flags=re.MULTILINE), folder


@pytest.mark.parametrize("name", sorted(PAGES))
def test_generated_page_is_current(name):
    committed = (REPO / "docs" / name).read_text(encoding="utf-8")
    assert committed == PAGES[name](), f"docs/{name} is stale: regenerate it with `{reference.REGENERATE}`"


def test_every_command_of_entry_points_has_a_section():
    scripts = {p.stem for p in (REPO / "entry_points").glob("*.py")} - {"__init__", "inference"}
    assert {command.name for command in reference.COMMANDS} == scripts
    for name in scripts:
        assert f"\n## {name}\n\n`python -m entry_points.{name}`: " in OPTIONS_PAGE


@pytest.mark.parametrize("command", ["train", "hpo", "profiled_train", "predict", "serve", "prepare"])
def test_every_option_in_help_is_on_the_page(command):
    """What the command's own --help offers (the parser it really uses) is on the page: in its section, or in
    train's for the training options hpo and profiled_train share."""
    proc = subprocess.run([sys.executable, "-m", f"entry_points.{command}", "--help"], capture_output=True,
                          text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr
    offered = set(re.findall(r"^  (--[a-z][a-z0-9-]*)", proc.stdout, flags=re.MULTILINE)) - {"--help"}
    assert len(offered) >= 2
    section = _section(OPTIONS_PAGE, f"## {command}")
    shared = _section(OPTIONS_PAGE, "## train") if command in ("hpo", "profiled_train") else ""
    rows = set(re.findall(r"^\| `(--[a-z0-9-]+)", section + "\n" + shared, flags=re.MULTILINE))
    assert offered <= rows, sorted(offered - rows)


def test_training_option_rows_carry_type_default_choices_and_help():
    train = _section(OPTIONS_PAGE, "## train")
    assert "| `--epochs` | int | `5` |  | number of training epochs |" in train
    assert ("| `--finetune` | str | `head` | `head`, `full`, `gradual` | head: train the new classifier only (frozen "
            "backbone); full: train everything; gradual: the head alone for --freeze-epochs, then everything with "
            "discriminative learning rates and a fresh schedule |") in train
    assert "| `--augment` | str | `default` | `none`, `default`, `trivialaugment`, `randaugment` | " in train
    assert "| `--early-stopping` | int | `0` |  | stop when --monitor has not improved" in train
    assert ("| `--backbone-lr-scale` | float | 0.1 with pretrained --weights, 1.0 with --weights none |  | backbone "
            "learning rate as a fraction of --lr (with --finetune full) |") in train
    assert "| `--cache-dir` | path | `<output-dir>/../feature_cache` |  | where the feature cache lives |" in train
    assert "| `--skip-bad-images` | bool | `False` |  | train without unreadable images instead of failing |" in train
    assert "| `--config FILE` | path | – |  | a JSON file of training options" in train


def test_commands_sharing_the_training_options_list_only_their_own():
    hpo = _section(OPTIONS_PAGE, "## hpo")
    assert re.findall(r"^\| `(--[a-z-]+)", hpo, flags=re.MULTILINE) == ["--local", "--trials", "--tuning-dir"]
    assert "| `--trials` | int | `8` |  | number of trials with --local |" in hpo
    assert "Also takes every option of [train](#train), as listed there (62 options)" in hpo
    profiled = _section(OPTIONS_PAGE, "## profiled_train")
    assert re.findall(r"^\| `(--[a-z-]+)", profiled, flags=re.MULTILINE) == ["--debug-dir", "--profiler"]
    assert "| `--profiler` | str | `pytorch` | `\"\"`, `simple`, `advanced`, `pytorch` |" in profiled


def test_exclusive_and_required_options_are_stated():
    serve = _section(OPTIONS_PAGE, "## serve")
    assert "Exactly one of `--model-dir`, `--model-data`." in serve
    assert ("| `--port` | int | `8080` |  | HTTP port on 127.0.0.1 (TorchServe behind it uses port+1, metrics and "
            "gRPC port+2..port+4) |") in serve
    predict = _section(OPTIONS_PAGE, "## predict")
    assert "At most one of `--json`, `--jsonl`." in predict
    assert ("| `--model-dir` | path | outputs/model, where python -m entry\\_points.train writes it |  | a model dir "
            "written by training |") in predict
    assert "| `IMAGE ...` | str ... | required |" in predict


def _sectioned_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m entry_points.fake", description="A fake command.")
    data = parser.add_argument_group("data")
    data.add_argument("--data-dir", "--data_dir", type=Path, help="dataset root with <split>/ folders")
    data.add_argument("--batch-size", type=int, help="images per batch (default: 32)")
    optimisation = parser.add_argument_group("optimisation")
    optimisation.add_argument("--lr", type=float, default=0.001, help="head learning rate; 100%% of it *here*")
    optimisation.add_argument("--schedule", choices=("cosine", "step"), default="cosine", help="lr | schedule")
    return parser


def test_each_argument_group_becomes_a_section_of_the_page():
    lines = render_command(Command("fake", _sectioned_parser))
    assert lines == [
        "## fake", "", "`python -m entry_points.fake`: A fake command.", "",
        "### Data", "", "| option | type | default | choices | description |", "|---|---|---|---|---|",
        "| `--data-dir` | path | – |  | dataset root with &lt;split&gt;/ folders |",
        "| `--batch-size` | int | `32` |  | images per batch |", "",
        "### Optimisation", "", "| option | type | default | choices | description |", "|---|---|---|---|---|",
        "| `--lr` | float | `0.001` |  | head learning rate; 100% of it \\*here\\* |",
        "| `--schedule` | str | `cosine` | `cosine`, `step` | lr \\| schedule |", "",
    ]


def test_a_command_sharing_options_lists_what_it_adds_or_changes():
    def derived() -> argparse.ArgumentParser:
        parser = _sectioned_parser()
        parser.add_argument_group("command options").add_argument("--trials", type=int, default=4, help="trials")
        parser._option_string_actions["--lr"].help = "head learning rate (default here: 0.01)"
        return parser

    base = {reference._identity(action) for action in _sectioned_parser()._actions}
    lines = render_command(Command("derived", derived, shares_options_of="fake"), base)
    rows = [line for line in lines if line.startswith("| `")]
    assert rows == ["| `--lr` | float | `0.01` |  | head learning rate |", "| `--trials` | int | `4` |  | trials |"]
    assert lines[-2] == ("Also takes every option of [fake](#fake), as listed there (3 options); only what derived "
                         "adds or changes is above.")


def test_module_index_lists_each_package_and_module_with_its_docstring(tmp_path):
    package = tmp_path / "pkg"
    (package / "inner").mkdir(parents=True)
    (package / "__init__.py").write_text('"""The top package."""\n')
    (package / "inner" / "__init__.py").write_text('"""Inner things: ``load`` and\nfriends.\n\nMore detail."""\n')
    (package / "inner" / "b_mod.py").write_text('"""Second; see :mod:`pkg.inner.a_mod` for <the> rest."""\n')
    (package / "inner" / "a_mod.py").write_text("x = 1\n")
    page = render_module_index(package)
    assert page.split("\n", 6)[6] == (
        "## pkg/\n\nThe top package.\n\n"
        "## pkg/inner/\n\nInner things: `load` and friends.\n\n| module | what it is |\n|---|---|\n"
        "| `a_mod.py` | (no docstring) |\n"
        "| `b_mod.py` | Second; see `pkg.inner.a_mod` for &lt;the&gt; rest. |\n"
    )


def test_generating_the_pages_loads_no_torch(tmp_path):
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "dogbreed.cli.reference", str(tmp_path)],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = {line.split("|")[-1].strip().split(".")[0] for line in proc.stderr.splitlines()
                if line.startswith("import time:") and "|" in line}
    assert imported.isdisjoint(HEAVY), sorted(imported & set(HEAVY))
    assert proc.stdout.split() == ["wrote", f"{tmp_path}/options.md", "wrote", f"{tmp_path}/modules.md"]
    assert (tmp_path / "options.md").read_text(encoding="utf-8") == OPTIONS_PAGE


def test_the_generator_refuses_a_missing_docs_folder(tmp_path, capsys):
    assert reference.main([]) == 2
    assert "usage: python -m dogbreed.cli.reference docs" in capsys.readouterr().err
    assert reference.main([str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.strip() == (f"error: {tmp_path / 'nowhere'} is not a folder: pass the docs folder, "
                                               "e.g. python -m dogbreed.cli.reference docs")
    assert list(tmp_path.iterdir()) == []


def _shell_command(page: str, marker: str) -> str:
    return next(line for line in page.splitlines() if marker in line)


@pytest.mark.slow  # subprocesses importing the serving and training stacks: make test, not test-quick
def test_the_serving_isolation_check_prints_0_and_would_catch_the_training_stack():
    command = _shell_command((REPO / "docs" / "sagemaker.md").read_text(encoding="utf-8"), "-X importtime")
    command = command.split("   # ")[0].replace("python ", f"{sys.executable} ", 1)
    run = subprocess.run(["bash", "-c", command], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert run.stdout.strip() == "0"
    heavy = command.replace("dogbreed.serving.handlers", "dogbreed.training.run")
    run = subprocess.run(["bash", "-c", heavy], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert int(run.stdout.strip()) > 100  # the same grep counts Lightning, torchmetrics and matplotlib there


def test_a_command_run_without_the_environment_says_so_in_one_line():
    # torch made unimportable, as in a Python without dogbreed's dependencies
    script = ("import sys, runpy\nsys.modules['torch'] = None\nsys.argv = ['predict', 'x.jpg']\n"
              "import entry_points\nrunpy.run_module('entry_points.predict', run_name='__main__')\n")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert run.stderr.strip() == (
        f"error: Python module torch is not installed for {sys.executable}: activate dogbreed's environment first "
        "(. .venv/bin/activate), or create it with make install")


def test_readme_layout_lists_each_folder_once():
    block = _section(README, "## Project structure").split("```", 2)[1]
    listed: dict[str, list[str]] = {}
    top = ""
    for line in block.splitlines():
        words = line.split()
        if not words:
            continue
        if not line.startswith(" "):
            top = words[0]
            listed.setdefault("", []).append(top)
        else:
            listed.setdefault(top, []).extend(itertools.takewhile(lambda w: re.fullmatch(r"[a-z_]+/", w), words))
    for folder, names in listed.items():
        twice = sorted({name for name in names if names.count(name) > 1})
        assert not twice, f"{folder or 'top level'} lists {twice} more than once"
    assert "training/" in listed["dogbreed/"] and "helpers/" in listed["tests/"]
