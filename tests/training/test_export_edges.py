"""export_run's record on hand-built inputs (the artifact writer and reports replaced by recorders): what goes into
model_config.json beside the weights, and the checkpoint dir's finished marker, without a training run."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from dogbreed.core.transforms import Preprocessing
from dogbreed.training import export
from dogbreed.training.checkpoints import ResumePlan
from dogbreed.training.serving_fit import ServingFit


def _export(monkeypatch, tmp_path: Path, *, resume: ResumePlan, split_record: dict | None) -> tuple[dict, list]:
    saved: dict = {}
    reports: list = []
    monkeypatch.setattr(export, "save_artifact", lambda model_dir, net, config: saved.update(
        model_dir=model_dir, net=net, config=config))
    monkeypatch.setattr(export, "write_reports", lambda *args, **kwargs: reports.append((args, kwargs)) or
                        [tmp_path / "out" / "metrics.json"])
    images = SimpleNamespace(class_names=["a", "b"], preprocessing=Preprocessing(image_size=32),
                             split_record=split_record)
    history = [{"epoch": 1, "val_acc": 0.5}, {"epoch": 2, "val_acc": 0.75}]
    written = export.export_run(
        SimpleNamespace(net="the network"), images, hyperparameters={"lr": 0.01}, model_dir=tmp_path / "model",  # type: ignore[arg-type]
        output_dir=tmp_path / "out", checkpoint_dir=tmp_path / "ckpt", tta="flip", history=history,
        test_metrics={"acc": 0.9}, outcome=None, timing={"fit_s": 1.5}, resume=resume,
        fit=ServingFit(temperature=1.25, report={"calibration": {"applied": True}}),
        best={"epoch": 2, "monitor": "val_acc", "value": 0.75})
    assert written == [tmp_path / "out" / "metrics.json"]
    return saved, reports


def test_the_artifact_records_the_split_recipe_without_its_file_lists_and_where_the_run_resumed(monkeypatch, tmp_path):
    (tmp_path / "ckpt").mkdir()
    record = {"valid_pct": 0.2, "test_pct": 0.1, "seed": 7, "files": {"train": ["a/1.jpg"], "valid": ["b/2.jpg"]}}
    saved, reports = _export(monkeypatch, tmp_path, resume=ResumePlan(path=tmp_path / "ckpt" / "epoch=1.ckpt", epoch=1),
                             split_record=record)
    config = saved["config"]
    assert (saved["model_dir"], saved["net"]) == (tmp_path / "model", "the network")
    assert config.hyperparameters == {"lr": 0.01, "splits": {"valid_pct": 0.2, "test_pct": 0.1, "seed": 7},
                                      "resumed_from": {"checkpoint": "epoch=1.ckpt", "epochs_done": 1,
                                                       "differences": []}}
    assert "files" in record  # the data module's record is left as it was
    assert config.metrics == {"test": {"acc": 0.9}, "final_epoch": {"epoch": 2, "val_acc": 0.75},
                              "timing": {"fit_s": 1.5}, "best": {"epoch": 2, "monitor": "val_acc", "value": 0.75},
                              "calibration": {"applied": True}}
    assert (config.temperature, config.tta, config.abstention) == (1.25, "flip", None)
    # the reports get the same sections (best, calibration) as the artifact's metrics
    (args, kwargs), = reports
    assert kwargs["extra"] == {"best": {"epoch": 2, "monitor": "val_acc", "value": 0.75},
                               "calibration": {"applied": True}}
    assert json.loads((tmp_path / "ckpt" / "finished.json").read_text()) == {"epochs": 2,
                                                                             "model_dir": str(tmp_path / "model")}


def test_a_run_from_scratch_on_given_splits_records_neither(monkeypatch, tmp_path):
    (tmp_path / "ckpt").mkdir()
    saved, _ = _export(monkeypatch, tmp_path, resume=ResumePlan(), split_record=None)
    assert saved["config"].hyperparameters == {"lr": 0.01}
