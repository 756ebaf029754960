"""The layers as behaviour: serving runs without the training stack, option parsing without torch, thin entry
points, one declaration of every dependency, and docs that match the tree."""

from __future__ import annotations

import ast
import itertools
import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from dogbreed.serving.packaging import build_model_archive
from tests.helpers.builders import save_image
from tests.helpers.option_lists import TRAIN_OPTIONS

REPO = Path(__file__).resolve().parent.parent
TRAINING_STACK = ("pytorch_lightning", "lightning", "lightning_fabric", "torchmetrics", "matplotlib", "scipy")
HEAVY = ("torch", "torchvision", "numpy", "PIL", "pytorch_lightning", "lightning", "torchmetrics", "matplotlib")

SERVE_WITH_BLOCKER = """
import importlib.abc, json, sys
BLOCKED = set(sys.argv[1].split(","))

class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"blocked in this test: {name}")
        return None

sys.meta_path.insert(0, Blocker())
code_dir, model_dir, image = sys.argv[2], sys.argv[3], sys.argv[4]
sys.path.insert(0, code_dir)
import inference
import dogbreed
predictor = inference.model_fn(model_dir)
request = inference.input_fn(open(image, "rb").read(), "image/jpeg")
body, content_type = inference.output_fn(inference.predict_fn(request, predictor), "application/json")
print(json.dumps({"body": json.loads(body), "content_type": content_type, "dogbreed": dogbreed.__file__,
                  "loaded": sorted({m.split(".")[0] for m in sys.modules} & BLOCKED)}))
"""


@pytest.mark.slow  # subprocesses importing the serving and training stacks: make test, not test-quick
def test_packaged_handlers_serve_with_the_training_stack_blocked(tiny_model_dir, tmp_path):
    archive = build_model_archive(tiny_model_dir, tmp_path / "model.tar.gz")
    extracted = tmp_path / "extracted"
    with tarfile.open(archive) as tar:
        tar.extractall(extracted, filter="data")
    image = save_image(tmp_path / "dog.jpg", size=(64, 48), fmt="JPEG")
    proc = subprocess.run([sys.executable, "-c", SERVE_WITH_BLOCKER, ",".join(TRAINING_STACK), str(extracted / "code"),
                           str(extracted), str(image)], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    answer = json.loads(proc.stdout.strip().splitlines()[-1])
    assert Path(answer["dogbreed"]).parent.parent == extracted / "code"  # the archive's copy, not this checkout
    assert answer["content_type"] == "application/json" and answer["loaded"] == []
    assert answer["body"]["confident"] is None and "no abstention rule" in answer["body"]["abstention"]
    rows = answer["body"]["predictions"]
    assert {row["breed"] for row in rows} == {"Affenpinscher", "Afghan hound", "Airedale terrier"}
    assert sum(row["probability"] for row in rows) == pytest.approx(1.0, abs=1e-4)


def _imported_modules(args: list[str]) -> tuple[subprocess.CompletedProcess, set[str]]:
    proc = subprocess.run([sys.executable, "-X", "importtime", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=120)
    imported = {line.split("|")[-1].strip().split(".")[0] for line in proc.stderr.splitlines()
                if line.startswith("import time:") and "|" in line}
    return proc, imported


@pytest.mark.parametrize("command", ["train", "hpo", "profiled_train", "predict", "package", "serve", "debug_report",
                                     "export", "profile_report"])
def test_help_imports_neither_torch_nor_lightning(command):
    proc, imported = _imported_modules(["-m", f"entry_points.{command}", "--help"])
    assert proc.returncode == 0 and f"python -m entry_points.{command}" in proc.stdout
    assert "dogbreed" in imported and imported.isdisjoint(HEAVY), sorted(imported & set(HEAVY))


def test_a_mistyped_option_is_one_line_with_a_suggestion_before_torch_loads():
    proc, imported = _imported_modules(["-m", "entry_points.train", "--batchsize", "64"])
    errors = [line for line in proc.stderr.splitlines() if not line.startswith("import time:")]
    assert proc.returncode == 2 and len(errors) == 1
    assert errors[0] == ("error: unknown option(s) --batchsize (did you mean --batch-size?). Options of python -m "
                         f"entry_points.train: {TRAIN_OPTIONS} (hyphens or underscores)")
    assert imported.isdisjoint(HEAVY)


def test_parse_config_help_path_loads_nothing_heavy():
    snippet = ("import sys\nfrom dogbreed.config.parser import parse_config\n"
               "try:\n    parse_config(['--help'])\nexcept SystemExit:\n    pass\n"
               f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))")
    proc = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip().splitlines()[-1] == "[]"


def test_hpo_help_documents_its_own_options():
    proc = subprocess.run([sys.executable, "-m", "entry_points.hpo", "--help"], capture_output=True, text=True,
                          cwd=REPO, timeout=60)
    flat = " ".join(proc.stdout.split())
    for option in ("--local", "--trials", "--tuning-dir", "--batch-size"):
        assert option in flat
    assert "number of trials with --local (default: 8)" in flat and "(default: outputs/hpo)" in flat


def test_no_option_help_states_its_default_twice():
    proc = subprocess.run([sys.executable, "-m", "entry_points.train", "--help"], capture_output=True, text=True,
                          cwd=REPO, timeout=60)
    flat = " ".join(proc.stdout.split())
    for option in re.split(r"\s(?=--[a-z])", flat):
        assert len(re.findall(r"default(?: here)?:", option)) <= 1, option  # statements: --augment has a "default"
    assert "(default: 32)" in flat and "(default: None)" not in flat


ENTRY_POINTS = sorted(p for p in (REPO / "entry_points").glob("*.py") if p.name != "__init__.py")


@pytest.mark.parametrize("path", ENTRY_POINTS, ids=lambda p: p.name)
def test_entry_points_are_thin_shims(path):
    assert len(path.read_text().splitlines()) <= 15
    imports = {node.module for node in ast.walk(ast.parse(path.read_text()))
               if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dogbreed")}
    expected = {"dogbreed.serving.handlers"} if path.stem == "inference" else {f"dogbreed.cli.{path.stem}"}
    assert imports == expected


def _pyproject() -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _requirements(lines: list[str]) -> dict[str, Requirement]:
    parsed = [Requirement(line.split("#")[0].strip()) for line in lines if line.split("#")[0].strip()]
    return {r.name.lower().replace("_", "-"): r for r in parsed}


@pytest.mark.parametrize("requirements_file", ["requirements.txt"])  # requirements-smdebug.txt: test_smdebug_image
def test_training_job_requirements_agree_with_the_declared_dependencies(requirements_file):
    project = _pyproject()["project"]
    declared: dict[str, set[str]] = {}
    for group in [project["dependencies"], *project["optional-dependencies"].values()]:
        for name, requirement in _requirements(group).items():
            declared.setdefault(name, set()).add(str(requirement.specifier))
    lines = (REPO / "entry_points" / requirements_file).read_text().splitlines()
    job = _requirements(lines)
    assert job, f"entry_points/{requirements_file} lists nothing"
    assert "torch" not in job and "torchvision" not in job  # the container's own build must stay
    assert "protobuf" not in job  # sagemaker-training>=5 needs protobuf>=5.28.1: never pin it in a job
    for name, requirement in job.items():
        assert name in declared, f"{name} is in entry_points/{requirements_file} but not in pyproject.toml"
        assert str(requirement.specifier) in declared[name], (name, requirement.specifier, declared[name])


def test_plain_training_jobs_install_no_debugger_pins():
    job = _requirements((REPO / "entry_points" / "requirements.txt").read_text().splitlines())
    assert set(job) == {"pytorch-lightning", "torchmetrics", "matplotlib", "tqdm", "psutil", "tensorboard"}


def test_the_dev_extra_is_composed_of_the_others():
    extras = _pyproject()["project"]["optional-dependencies"]
    (dev,) = extras["dev"]
    assert Requirement(dev).name == "dogbreed"
    # mutation (mutmut, `make mutation`) is on demand only: not a dev or CI dependency
    assert Requirement(dev).extras == set(extras) - {"dev", "mutation"}


SUBPACKAGES = sorted(p.parent for p in (REPO / "dogbreed").glob("*/__init__.py"))


@pytest.mark.parametrize("package", SUBPACKAGES, ids=lambda p: p.name)
def test_every_subpackage_says_what_it_owns(package):
    docstring = ast.get_docstring(ast.parse((package / "__init__.py").read_text()))
    assert docstring and len(docstring.split()) >= 12


PACKAGES = [package.name for package in SUBPACKAGES]
TEST_FOLDERS = sorted(p.name for p in (REPO / "tests").iterdir() if p.is_dir() and (p / "__init__.py").is_file())


def test_tests_mirror_the_package():
    """One test folder per subpackage of dogbreed/, plus the helpers; no test module loose in a helper folder."""
    assert TEST_FOLDERS == sorted([*PACKAGES, "helpers"])
    assert not list((REPO / "tests" / "helpers").glob("test_*.py"))


def _layout_folders(top: str) -> set[str]:
    """The folders listed under ``top/`` in the README's Project structure block: lines indented by two spaces
    that start with ``name/`` (one folder and what it holds, or several folders in a row)."""
    layout = (REPO / "README.md").read_text().split("## Project structure", 1)[1].split("```", 2)[1]
    listed, inside = set(), False
    for line in layout.splitlines():
        if not line.startswith(" "):
            inside = line.startswith(f"{top}/")
        elif inside and re.match(r"^  [a-z_]+/", line):
            listed.update(word[:-1] for word in itertools.takewhile(lambda w: re.fullmatch(r"[a-z_]+/", w),
                                                                      line.split()))
    return listed


def test_readme_layout_lists_the_folders_of_the_package_and_the_tests():
    assert _layout_folders("dogbreed") == set(PACKAGES)
    assert _layout_folders("tests") == set(TEST_FOLDERS)


MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


@pytest.mark.parametrize("path", sorted((REPO / "dogbreed").rglob("*.py")), ids=lambda p: str(p.relative_to(REPO)))
def test_modules_and_functions_stay_within_the_limits(path):
    text = path.read_text()
    assert len(text.splitlines()) <= MAX_MODULE_LINES
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)" for node in ast.walk(ast.parse(text))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert long == []
