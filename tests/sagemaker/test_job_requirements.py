"""What a training job pip-installs resolves together with the training toolkit's own requirements: no protobuf
downgrade, no pip "ERROR: ... requires protobuf>=5.28.1". And smdebug, installed by the Debugger job with
--no-deps, really works on the toolkit's protobuf through the pure-Python implementation.

The resolution is ``pip install --dry-run --report`` into an empty environment that holds only the container's
torch/torchvision (stub metadata, so pip keeps them as the container built them), against
``tests/sagemaker/training_container_constraints.txt``. It needs PyPI (sagemaker-training is not in the local index).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from packaging.version import Version

from dogbreed.sagemaker.debug_runtime import PROTOBUF_IMPLEMENTATION, prepare_smdebug

REPO = Path(__file__).resolve().parents[2]
ENTRY_POINTS = REPO / "entry_points"
CONSTRAINTS = Path(__file__).resolve().parent / "training_container_constraints.txt"
CONTAINER_FRAMEWORK = {"torch": "2.8.0", "torchvision": "0.23.0"}  # the PyTorch 2.8 training DLC


def _container_like_env(root: Path) -> Path:
    venv.EnvBuilder(with_pip=False).create(root)
    python = root / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    for name, version in CONTAINER_FRAMEWORK.items():
        info = site / f"{name}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        (info / "INSTALLER").write_text("pip\n")
        (info / "RECORD").write_text("")
    return python


def _dry_run(tmp_path: Path, *requirements: str) -> subprocess.CompletedProcess:
    python = _container_like_env(tmp_path / "container")
    args = [a for r in requirements for a in (["-r", r] if r.endswith(".txt") else [r])]
    return subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--dry-run",
                           "--quiet", "--report", str(tmp_path / "report.json"), "-c", str(CONSTRAINTS),
                           "sagemaker-training", *args], capture_output=True, text=True, timeout=600)


def _resolved(tmp_path: Path) -> dict[str, str]:
    report = json.loads((tmp_path / "report.json").read_text())
    return {item["metadata"]["name"].lower().replace("_", "-"): item["metadata"]["version"]
            for item in report["install"]}


@pytest.mark.slow
@pytest.mark.parametrize("job", ["training", "debug"])
def test_job_requirements_resolve_with_the_training_toolkit(tmp_path, job):
    files = [str(ENTRY_POINTS / "requirements.txt")]
    if job == "debug":
        files.append(str(ENTRY_POINTS / "requirements-debug.txt"))
    proc = _dry_run(tmp_path, *files)
    assert proc.returncode == 0, proc.stderr[-3000:]
    resolved = _resolved(tmp_path)
    assert resolved["sagemaker-training"] == "5.1.4"
    assert Version(resolved["protobuf"]) >= Version("5.28.1")  # what the toolkit needs, not smdebug's 3.20.3
    assert "torch" not in resolved and "torchvision" not in resolved  # the container's framework stays
    assert "smdebug" not in resolved
    if job == "debug":
        assert resolved["pyinstrument"] == "3.4.2" and Version(resolved["numpy"]) < Version("2.3")


@pytest.mark.slow
def test_smdebug_with_its_own_dependencies_cannot_join_the_toolkit(tmp_path):
    # Why the Debugger job installs smdebug with --no-deps: with its metadata it cannot resolve at all.
    proc = _dry_run(tmp_path, "smdebug==1.0.34")
    assert proc.returncode != 0 and "ResolutionImpossible" in proc.stderr


SMDEBUG_ROUND_TRIP = """
import importlib.metadata, json, sys, torch
import smdebug.pytorch as smd
from smdebug.trials import create_trial
out = sys.argv[1]
hook = smd.Hook(out_dir=out, save_config=smd.SaveConfig(save_interval=1), include_collections=["losses", "gradients"])
torch.manual_seed(0)
net, loss_fn = torch.nn.Linear(4, 3), torch.nn.CrossEntropyLoss()
hook.register_module(net); hook.register_loss(loss_fn)
for _ in range(3):
    loss_fn(net(torch.randn(8, 4)), torch.randint(0, 3, (8,))).backward()
hook.close()
trial = create_trial(out)
print(json.dumps({"protobuf": importlib.metadata.version("protobuf"), "steps": trial.steps(),
                  "tensors": sorted(trial.tensor_names())}))
"""


@pytest.mark.slow
def test_smdebug_writes_and_reads_a_trial_on_the_toolkits_protobuf_in_pure_python(tmp_path):
    target = tmp_path / "protobuf6"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
                              str(target), "protobuf==6.33.6"], capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-2000:]
    env = dict(os.environ, PYTHONPATH=str(target), SMDEBUG_LOG_LEVEL="error")
    env.pop(PROTOBUF_IMPLEMENTATION, None)
    script = [sys.executable, "-c", SMDEBUG_ROUND_TRIP, str(tmp_path / "trial")]
    native = subprocess.run(script, env=env, capture_output=True, text=True, timeout=300)
    assert native.returncode != 0 and "regenerated with protoc >= 3.19.0" in native.stderr  # the failure we avoid
    pure = subprocess.run(script, env={**env, PROTOBUF_IMPLEMENTATION: "python"}, capture_output=True, text=True,
                          timeout=300)
    assert pure.returncode == 0, pure.stderr[-3000:]
    result = json.loads(pure.stdout.strip().splitlines()[-1])
    assert result["protobuf"] == "6.33.6" and result["steps"] == [0, 1, 2]
    assert result["tensors"] == ["CrossEntropyLoss_output_0", "gradient/Linear_bias", "gradient/Linear_weight"]


def _debug_job_env(tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "ml" / "input" / "config"
    config.mkdir(parents=True)
    (config / "debughookconfig.json").write_text("{}")
    return {"SM_MODEL_DIR": str(tmp_path / "ml" / "model"), "TRAINING_JOB_NAME": "dogbreed-debug"}


def test_the_debugger_job_installs_smdebug_without_its_dependencies(tmp_path, monkeypatch):
    commands: list[list[str]] = []
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None if name == "smdebug" else object())
    monkeypatch.setattr("dogbreed.sagemaker.debug_runtime.protobuf_major", lambda: 6)
    environ = _debug_job_env(tmp_path)
    assert prepare_smdebug(environ, run=lambda args: commands.append(list(args)) or 0) is True
    assert commands == [["install", "--no-deps", "--no-cache-dir", "smdebug==1.0.34"]]
    assert environ[PROTOBUF_IMPLEMENTATION] == "python"


def test_outside_a_debugger_job_nothing_is_installed(tmp_path, monkeypatch):
    commands: list = []
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    plain_job = {"SM_MODEL_DIR": str(tmp_path / "ml" / "model"), "TRAINING_JOB_NAME": "dogbreed-train"}
    assert prepare_smdebug(plain_job, run=lambda args: commands.append(args) or 0) is False
    assert prepare_smdebug({}, run=lambda args: commands.append(args) or 0) is False
    assert commands == [] and PROTOBUF_IMPLEMENTATION not in plain_job


def test_a_failed_smdebug_install_stops_the_debugger_job(tmp_path, monkeypatch):
    from dogbreed.core.errors import DogBreedError

    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(DogBreedError, match="pip could not install smdebug==1.0.34 for the Debugger job"):
        prepare_smdebug(_debug_job_env(tmp_path), run=lambda args: 1)
