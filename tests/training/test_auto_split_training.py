"""A flat tree of class folders trains end to end: the splits are made, listed in splits.json and recorded."""

from __future__ import annotations

import json

import pytest

from dogbreed.cli.train import main
from tests.helpers.builders import BREED_DIRS, write_tree


@pytest.mark.slow
def test_a_flat_tree_trains_with_automatic_splits(tmp_path, capsys):
    data = write_tree(tmp_path / "flat", {"": 10}, seed=2)
    argv = ["--data-dir", str(data), "--valid-pct", "0.2", "--test-pct", "0.2", "--epochs", "2",
            "--model-dir", str(tmp_path / "model"), "--output-dir", str(tmp_path / "reports"), "--image-size", "32",
            "--weights", "none", "--finetune", "full", "--num-workers", "0", "--accelerator", "cpu",
            "--batch-size", "8", "--logger", "none", "--seed", "5", "--calibrate", "false"]
    assert main(argv) == 0
    record = json.loads((tmp_path / "reports" / "splits.json").read_text(encoding="utf-8"))
    assert record["counts"] == {"train": dict.fromkeys(BREED_DIRS, 6), "valid": dict.fromkeys(BREED_DIRS, 2),
                                "test": dict.fromkeys(BREED_DIRS, 2)}
    assert record["seed"] == 5 and record["carved"] == ["valid", "test"]
    lists = [set(record["files"][split]) for split in ("train", "valid", "test")]
    assert sum(map(len, lists)) == len(set().union(*lists)) == 30
    model_config = json.loads((tmp_path / "model" / "model_config.json").read_text(encoding="utf-8"))
    assert model_config["hyperparameters"]["valid_pct"] == 0.2
    assert model_config["hyperparameters"]["test_pct"] == 0.2
    assert model_config["hyperparameters"]["splits"] == {
        "root": str(data), "seed": 5, "valid_pct": 0.2, "test_pct": 0.2, "carved": ["valid", "test"],
        "counts": record["counts"]}
    metrics = json.loads((tmp_path / "reports" / "metrics.json").read_text(encoding="utf-8"))
    assert len(metrics["history"]) == 2
