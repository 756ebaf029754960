"""--logger: Lightning's CSV, TensorBoard and MLflow loggers write their files; SageMaker's TensorBoard path."""

from __future__ import annotations

import csv
import json

import pytest

from dogbreed.config.parser import parse_config
from dogbreed.sagemaker.environment import config_defaults
from dogbreed.training.setup import build_logger, log_dir
from tests.helpers.builders import fast_config


def _csv_rows_by_epoch(path):
    merged: dict[int, dict[str, str]] = {}
    with path.open() as handle:
        for row in csv.DictReader(handle):
            merged.setdefault(int(row["epoch"]), {}).update({k: v for k, v in row.items() if v != ""})
    return merged


@pytest.mark.slow
def test_csv_logger_rows_per_epoch_match_metrics_json(trained):
    config, result = trained  # the session's run: --logger csv is the default
    (metrics_csv,) = (log_dir(config.tracking, config.outputs.output_dir) / "csv").glob("version_*/metrics.csv")
    rows = _csv_rows_by_epoch(metrics_csv)
    history = json.loads((result.output_dir / "metrics.json").read_text())["history"]
    assert len(history) == config.optimisation.epochs
    for record in history:
        row = rows[record["epoch"] - 1]  # Lightning counts epochs from 0
        for key in ("train_loss", "train_acc", "val_loss", "val_acc", "val_f1_macro"):
            assert float(row[key.replace("_", "/", 1)]) == pytest.approx(record[key], rel=1e-6), key
    test = json.loads((result.output_dir / "metrics.json").read_text())["test"]
    assert float(rows[config.optimisation.epochs]["test/acc"]) == pytest.approx(test["acc"], rel=1e-6)


def test_none_means_no_logger_and_csv_goes_under_the_output_dir(tmp_path, tiny_tree):
    def logger_of(**options):
        config = fast_config(tmp_path, tiny_tree, **options)
        return build_logger(config.tracking, config.outputs.output_dir)

    assert logger_of(logger="none") is False
    csv_logger = logger_of()
    assert type(csv_logger).__name__ == "CSVLogger"
    assert csv_logger.root_dir == str(tmp_path / "reports" / "logs" / "csv")
    custom = logger_of(log_dir=tmp_path / "tb", logger="tensorboard")
    assert type(custom).__name__ == "TensorBoardLogger" and custom.root_dir == str(tmp_path / "tb" / "tensorboard")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["tensorboard", "mlflow"])
def test_tensorboard_and_mlflow_loggers_write_their_runs(tmp_path, tiny_tree, kind, monkeypatch):
    from dogbreed.training.run import train

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)  # build_logger allows the local file store itself
    config = fast_config(tmp_path, tiny_tree, logger=kind, calibrate=False, abstention_score="none")
    train(config)
    root = tmp_path / "reports" / "logs"
    if kind == "tensorboard":
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        tags: set[str] = set()
        files = sorted(root.glob("tensorboard/version_0/events.out.tfevents.*"))  # one per fit/test writer
        assert files
        for events in files:
            accumulator = EventAccumulator(str(events))
            accumulator.Reload()
            tags |= set(accumulator.Tags()["scalars"])
        assert {"val/acc", "train/loss", "test/acc"} <= tags
    else:
        import mlflow

        client = mlflow.MlflowClient(tracking_uri=(root / "mlruns").resolve().as_uri())
        (experiment,) = [e for e in client.search_experiments() if e.name == "dogbreed"]
        (run,) = client.search_runs([experiment.experiment_id])
        assert {"val/acc", "train/loss", "test/acc"} <= set(run.data.metrics)
        assert run.data.params["lr"] == str(config.optimisation.lr)


def test_sagemaker_tensorboard_output_config_sets_the_log_dir(tmp_path):
    base = tmp_path / "opt" / "ml"
    (base / "model").mkdir(parents=True)
    environ = {"SM_MODEL_DIR": str(base / "model"), "SM_OUTPUT_DATA_DIR": str(base / "output" / "data")}
    assert "log_dir" not in config_defaults(environ)  # no TensorBoard config: <output-dir>/logs, uploaded at the end
    (base / "input" / "config").mkdir(parents=True)
    (base / "input" / "config" / "tensorboardoutputconfig.json").write_text(
        json.dumps({"LocalPath": "/opt/ml/output/tensorboard", "S3OutputPath": "s3://bucket/tb"}))
    defaults = config_defaults(environ)
    assert str(defaults["log_dir"]) == "/opt/ml/output/tensorboard"
    config = parse_config(["--logger", "tensorboard"], environment_defaults=defaults)
    assert str(log_dir(config.tracking, config.outputs.output_dir)) == "/opt/ml/output/tensorboard"
