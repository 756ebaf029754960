"""Run an entry point the way SageMaker starts it, without a container, with each launcher's own code.

Legacy training toolkit (tuning child jobs): a temp dir is laid out like /opt/ml; the toolkit's own
``Environment`` (pointed there through SAGEMAKER_BASE_DIR) produces the SM_* variables and the argv
(``mapping.to_cmd_args``); the script runs from a copy of the source bundle, as `python <script>`.

SDK v3 driver (``ModelTrainer`` jobs): the driver's own ``scripts/environment.py`` (``set_env``) writes the SM_*
variables for the job's config files, the basic script driver's ``hyperparameters_to_cli_args`` builds the argv
from ``SM_HPS``, and the script runs from the code channel (``input/data/code``, the driver's cwd). The driver's
fixed ``/opt/ml`` paths are mapped onto the temp dir.
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
    """What build_trainer uploads (dogbreed.sagemaker.jobs.stage_source_dir): entry points, requirements.txt and
    dogbreed/ beside them."""
    from dogbreed.sagemaker.jobs import stage_source_dir

    return stage_source_dir(dest)


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


_V3_DRIVER_SNIPPET = """
import json, sys
from scripts import environment  # the driver dir is on PYTHONPATH, as in the container
environment.read_source_code_json = lambda: {"entry_script": sys.argv[2]}
environment.read_distributed_json = lambda: {}
config = json.loads(sys.argv[1])
environment.set_env(config["resource"], config["inputs"], config["hyperparameters"], output_file=sys.argv[3])
"""

_V3_RUN_SNIPPET = """
import os, sys
from common.utils import execute_commands
os.environ.pop("PYTHONPATH")
sys.exit(execute_commands(sys.argv[1:])[0])
"""


def v3_driver_env_and_argv(ml: Path, hyperparameters: dict[str, Any], channels: list[str],
                           entry_script: str = "train.py") -> tuple[dict[str, str], list[str]]:
    """The environment the v3 driver exports (``/opt/ml`` mapped onto ``ml``) and the argv it gives the script."""
    from sagemaker.train.container_drivers.common.utils import hyperparameters_to_cli_args, safe_serialize

    config = {"resource": {"current_host": "algo-1", "current_instance_type": "ml.m5.large", "hosts": ["algo-1"],
                           "network_interface_name": "eth0"},
              "inputs": {name: {"TrainingInputMode": "File"} for name in channels},
              # What CreateTrainingJob carries: ModelTrainer sends every value through safe_serialize.
              "hyperparameters": {key: safe_serialize(value) for key, value in hyperparameters.items()}}
    env_file = ml / "input" / "sm_training.env"
    drivers = _driver_dir()
    subprocess.run([sys.executable, "-c", _V3_DRIVER_SNIPPET, json.dumps(config), entry_script, str(env_file)],
                   env=dict(os.environ, TRAINING_JOB_NAME="dogbreed-test-job", PYTHONPATH=str(drivers)),
                   capture_output=True, text=True, check=True)
    exported = {}
    for line in env_file.read_text().splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        exported[key] = value[1:-1].replace("/opt/ml", str(ml))  # export KEY='value'
    return exported, hyperparameters_to_cli_args(json.loads(exported["SM_HPS"]))


def run_like_v3_driver(base: Path, hyperparameters: dict[str, Any], channels: dict[str, Path], *,
                       script: str = "train.py", timeout: int = 600) -> tuple[subprocess.CompletedProcess, Path]:
    """Start ``script`` as a ModelTrainer job's basic script driver does: code and drivers arrive as channels,
    the cwd is the code channel, argv in dict order with JSON values."""
    ml = base / "ml"
    for sub in ("input/config", "model", "output/data"):
        (ml / sub).mkdir(parents=True, exist_ok=True)
    for name, source in channels.items():
        shutil.copytree(source, ml / "input" / "data" / name)
    code = make_source_bundle(ml / "input" / "data" / "code")
    (ml / "input" / "data" / "sm_drivers").mkdir()
    sm_env, argv = v3_driver_env_and_argv(ml, hyperparameters, [*channels, "code", "sm_drivers"], script)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(sm_env)
    env.update(TRAINING_JOB_NAME="dogbreed-test-job", PYTHONUNBUFFERED="1")
    # The driver's own execute_commands: the script's stdout and stderr re-logged line by line, as in CloudWatch.
    env["PYTHONPATH"] = str(_driver_dir())
    proc = subprocess.run([sys.executable, "-c", _V3_RUN_SNIPPET, sys.executable, script, *argv], cwd=code,
                          env=env, capture_output=True, text=True, timeout=timeout)
    return proc, ml


def _driver_dir() -> Path:
    from sagemaker.train.container_drivers import scripts

    return Path(scripts.__file__).resolve().parents[1]
