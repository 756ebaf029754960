"""``--logger``: Lightning's own loggers. ``csv`` (the default, no extra dependency) and ``tensorboard`` write
``<log-dir>/<kind>/version_N/``; ``mlflow`` records a run in ``$MLFLOW_TRACKING_URI``, else in the file store
``<log-dir>/mlruns``. ``<log-dir>`` defaults to ``<output-dir>/logs``; in a SageMaker job with a TensorBoard
output config it is that config's local path, which SageMaker syncs to S3 while the job runs."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from pytorch_lightning.loggers import CSVLogger, Logger, MLFlowLogger, TensorBoardLogger

from dogbreed.config.options import TrainConfig
from dogbreed.core.errors import ConfigError

LOG_SUBDIR = "logs"
EXPERIMENT_NAME = "dogbreed"
EXTRA_FOR = {"tensorboard": ("tensorboard", "tensorboard"), "mlflow": ("mlflow", "mlflow-skinny")}


def log_dir(config: TrainConfig) -> Path:
    return Path(config.log_dir) if config.log_dir else Path(config.output_dir) / LOG_SUBDIR


def _require(kind: str) -> None:
    module, distribution = EXTRA_FOR[kind]
    if importlib.util.find_spec(module) is None:
        raise ConfigError(f"--logger {kind} needs the {distribution} package: pip install -e '.[tracking]' "
                          f"(or pip install {distribution}), or choose --logger csv")


def build_logger(config: TrainConfig) -> Logger | bool:
    """The Trainer's ``logger`` argument for ``--logger`` (False for ``none``)."""
    kind = config.logger
    if kind == "none":
        return False
    root = log_dir(config)
    if kind == "csv":
        return CSVLogger(save_dir=root, name="csv")
    _require(kind)
    if kind == "tensorboard":
        return TensorBoardLogger(save_dir=root, name="tensorboard", default_hp_metric=False)
    tracking_uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not tracking_uri:
        # A local file store needs no server and no database driver; MLflow 3.x refuses it unless allowed
        # explicitly (it is in maintenance mode, still readable by `mlflow ui`). Set MLFLOW_TRACKING_URI for a server.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        tracking_uri = (root / "mlruns").resolve().as_uri()
    return MLFlowLogger(experiment_name=os.environ.get("MLFLOW_EXPERIMENT_NAME", EXPERIMENT_NAME),
                        tracking_uri=tracking_uri)
