"""What a training job pip-installs resolves against the training image's own locked versions: the job's
``requirements.txt`` moves none of them (no numpy/protobuf downgrade under the image's toolkit).

The resolution is ``pip install --dry-run --report`` into an empty environment that holds only the image's
torch/torchvision (stub metadata, so pip keeps them as the image built them), constrained by the image's lock
(``tests/data/pytorch-2.13-sagemaker-lock.txt``). It needs PyPI. The environment runs this interpreter, not the
image's Python 3.12; every locked package used here supports both.
"""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from dogbreed.sagemaker import jobs

REPO = Path(__file__).resolve().parents[2]
ENTRY_POINTS = REPO / "entry_points"
LOCK = REPO / "tests" / "data" / "pytorch-2.13-sagemaker-lock.txt"
IMAGE_FRAMEWORK = {"torch": "2.13.0", "torchvision": "0.28.0"}  # the image's own builds (+cu130)


def _locked() -> dict[str, str]:
    pins = [line.split("==") for line in LOCK.read_text().splitlines() if line and not line.startswith("#")]
    return {name.lower(): version for name, version in pins}


def _image_like_env(root: Path) -> Path:
    venv.EnvBuilder(with_pip=False).create(root)
    python = root / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    for name, version in IMAGE_FRAMEWORK.items():
        info = site / f"{name}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        (info / "INSTALLER").write_text("pip\n")
        (info / "RECORD").write_text("")
    return python


def _dry_run(tmp_path: Path, *requirements: str) -> subprocess.CompletedProcess:
    python = _image_like_env(tmp_path / "image")
    args = [a for r in requirements for a in (["-r", r] if r.endswith(".txt") else [r])]
    return subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--dry-run",
                           "--quiet", "--report", str(tmp_path / "report.json"), "-c", str(LOCK),
                           "sagemaker-training", *args], capture_output=True, text=True, timeout=600)


def _resolved(tmp_path: Path) -> dict[str, str]:
    report = json.loads((tmp_path / "report.json").read_text())
    return {item["metadata"]["name"].lower().replace("_", "-"): item["metadata"]["version"]
            for item in report["install"]}


def test_the_default_image_is_the_one_whose_lock_is_checked():
    assert (jobs.IMAGE_FRAMEWORK, jobs.IMAGE_VERSION) == ("pytorch-amzn2023", "2.13")
    assert "pytorch:2.13-cu133-amzn2023-sagemaker" in LOCK.read_text().splitlines()[0]
    locked = _locked()
    assert (locked["numpy"], locked["protobuf"], locked["sagemaker-training"]) == ("2.4.3", "6.33.6", "5.1.1")


def test_the_default_image_uri_is_the_current_al2023_training_image():
    assert jobs.training_image("us-east-1", "ml.g5.xlarge") == (
        "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch:2.13-cu133-amzn2023-sagemaker")
    assert jobs.training_image("eu-west-1", "ml.g5.xlarge", version="2.14") == (
        "763104351884.dkr.ecr.eu-west-1.amazonaws.com/pytorch:2.14-cu133-amzn2023-sagemaker")


@pytest.mark.slow
def test_job_requirements_resolve_against_the_images_lock(tmp_path):
    proc = _dry_run(tmp_path, str(ENTRY_POINTS / "requirements.txt"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    resolved, locked = _resolved(tmp_path), _locked()
    moved = {name: (version, locked[name]) for name, version in resolved.items()
             if name in locked and locked[name] != version}
    assert moved == {}
    assert resolved["sagemaker-training"] == "5.1.1"
    assert resolved.get("numpy", "2.4.3") == "2.4.3" and resolved.get("protobuf", "6.33.6") == "6.33.6"
    assert "torch" not in resolved and "torchvision" not in resolved  # the image's framework stays
    assert "pytorch-lightning" in resolved and "smdebug" not in resolved


@pytest.mark.slow
def test_smdebug_cannot_join_the_current_image(tmp_path):
    # Why the smdebug callback runs on SageMaker only with an image that can hold it: numpy<2.3, protobuf<=3.20.3.
    proc = _dry_run(tmp_path, "smdebug==1.0.34", "numpy<2.3")
    assert proc.returncode != 0 and "ResolutionImpossible" in proc.stderr
