"""Run an entry point the way SageMaker's training toolkit does, without a container.

A temp dir is laid out like /opt/ml; the toolkit's own ``Environment`` (pointed there through
SAGEMAKER_BASE_DIR) produces the SM_* variables and the argv (``mapping.to_cmd_args``); the script runs
from a copy of the source bundle (entry point + requirements.txt + dogbreed/), as `python <script>`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]

_TOOLKIT_SNIPPET = """
import json
from sagemaker_training import environment
env = environment.Environment()
print(json.dumps({"env": env.to_env_vars(), "argv": env.to_cmd_args()}))
"""


def make_source_bundle(dest: Path) -> Path:
    """What build_estimator uploads: entry_points/* at the root, with dogbreed/ beside them."""
    shutil.copytree(REPO / "entry_points", dest, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "dogbreed", dest / "dogbreed", ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def layout_opt_ml(base: Path, hyperparameters: dict[str, Any], channels: dict[str, Path],
                  checkpoints: bool = False) -> Path:
    """Create base/ml like a training container: config files, channel dirs (copied), model, output."""
    ml = base / "ml"
    config = ml / "input" / "config"
    config.mkdir(parents=True)
    # The SageMaker SDK JSON-encodes every hyperparameter value (EstimatorBase._json_encode_hyperparameters).
    encoded = {k: json.dumps(v) for k, v in hyperparameters.items()}
    encoded.update({"sagemaker_program": json.dumps("train.py"),
                    "sagemaker_submit_directory": json.dumps("s3://bucket/sourcedir.tar.gz")})
    (config / "hyperparameters.json").write_text(json.dumps(encoded))
    (config / "resourceconfig.json").write_text(
        json.dumps({"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0"}))
    (config / "inputdataconfig.json").write_text(json.dumps(
        {name: {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated"} for name in channels}))
    for name, source in channels.items():
        shutil.copytree(source, ml / "input" / "data" / name)
    for sub in ("model", "output/data"):
        (ml / sub).mkdir(parents=True, exist_ok=True)
    if checkpoints:
        (ml / "checkpoints").mkdir()
    return ml


def toolkit_env_and_argv(ml: Path) -> tuple[dict[str, str], list[str]]:
    env = dict(os.environ, SAGEMAKER_BASE_DIR=str(ml))
    out = subprocess.run([sys.executable, "-c", _TOOLKIT_SNIPPET], env=env, capture_output=True, text=True,
                         check=True)
    payload = json.loads(out.stdout.strip().splitlines()[-1])
    return payload["env"], payload["argv"]


def run_like_sagemaker(base: Path, hyperparameters: dict[str, Any], channels: dict[str, Path], *,
                       script: str = "train.py", checkpoints: bool = False,
                       timeout: int = 600) -> tuple[subprocess.CompletedProcess, Path]:
    ml = layout_opt_ml(base, hyperparameters, channels, checkpoints)
    sm_env, argv = toolkit_env_and_argv(ml)
    code = make_source_bundle(base / "code")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(sm_env)
    env.update(TRAINING_JOB_NAME="dogbreed-test-job", PYTHONUNBUFFERED="1")
    proc = subprocess.run([sys.executable, script, *argv], cwd=code, env=env, capture_output=True, text=True,
                          timeout=timeout)
    return proc, ml
