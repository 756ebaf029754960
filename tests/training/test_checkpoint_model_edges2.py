"""What a model dir imported from a checkpoint records: the metrics of the checkpoint's own epoch (not the last one
its history holds) and the run's preprocessing and TTA, read from the fingerprint's options. Fast: a synthetic
checkpoint (a random 3-class ResNet50 under ``net.``), no training run."""

from __future__ import annotations

import torch

from dogbreed.core.network import build_resnet50
from dogbreed.serving.artifact import load_artifact
from dogbreed.training.checkpoint_model import import_checkpoint, read_checkpoint_model

CLASS_DIRS = ["001.Affenpinscher", "002.Afghan_hound", "003.Airedale_terrier"]
HISTORY = [{"epoch": 1, "val_acc": 0.25, "val_loss": 1.5}, {"epoch": 2, "val_acc": 0.5, "val_loss": 1.25},
           {"epoch": 3, "val_acc": 0.75, "val_loss": 1.0}]


def test_an_imported_checkpoint_records_its_own_epoch_and_the_runs_preprocessing(tmp_path):
    torch.manual_seed(0)
    state = {f"net.{k}": v for k, v in build_resnet50(3).state_dict().items()}
    checkpoint = tmp_path / "epoch=2.ckpt"  # its history runs on to epoch 3
    torch.save({"state_dict": state, "callbacks": {"EpochHistory": {"history": HISTORY}},
                "dogbreed": {"epoch": 2, "fingerprint": {"class_dirs": CLASS_DIRS, "options": {
                    "image_size": 48, "crop_scale": 0.6, "epochs": 4, "tta": "flip"}}}}, checkpoint)
    import_checkpoint(checkpoint, tmp_path / "model")
    _, config = load_artifact(tmp_path / "model")
    assert config.metrics["final_epoch"] == {"epoch": 2, "val_acc": 0.5, "val_loss": 1.25}  # not epoch 3's
    assert config.preprocessing.image_size == 48
    # the artifact keeps the serving fields only; the checkpoint's own view of the run has its --crop-scale too
    assert read_checkpoint_model(checkpoint).preprocessing.crop_scale == (0.6, 1.0)
    assert config.tta == "flip"
    record = config.hyperparameters["imported_from"]
    assert (record["checkpoint"], record["epoch"], record["of_epochs"], record["calibrated"]) == (
        "epoch=2.ckpt", 2, 4, False)
    assert config.class_names == ["Affenpinscher", "Afghan hound", "Airedale terrier"]
