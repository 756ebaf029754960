"""A checkpoint's weights are checked like any import, and the refusal names the checkpoint: fast, on a synthetic
Lightning checkpoint (a random 3-class ResNet50 under ``net.``, a dogbreed fingerprint), no training run."""

from __future__ import annotations

import pytest
import torch

from dogbreed.core.errors import ArtifactError, CheckpointError
from dogbreed.core.network import build_resnet50
from dogbreed.training.checkpoint_model import import_checkpoint

CLASS_DIRS = ["001.Affenpinscher", "002.Afghan_hound", "003.Airedale_terrier"]


def write_checkpoint(path, *, class_dirs=CLASS_DIRS, damage=None):
    torch.manual_seed(0)
    state = {f"net.{k}": v for k, v in build_resnet50(3).state_dict().items()}
    if damage:
        damage(state)
    torch.save({"state_dict": state, "dogbreed": {"epoch": 2, "fingerprint": {
        "class_dirs": class_dirs, "options": {"image_size": 48, "epochs": 4}}}}, path)
    return path


def test_a_checkpoint_with_a_non_finite_weight_is_refused_by_name_and_nothing_is_written(tmp_path):
    def nan(state):
        state["net.fc.bias"] = state["net.fc.bias"].clone()
        state["net.fc.bias"][1] = float("nan")

    checkpoint = write_checkpoint(tmp_path / "epoch=2.ckpt", damage=nan)
    with pytest.raises(ArtifactError) as caught:
        import_checkpoint(checkpoint, tmp_path / "model")
    assert str(caught.value) == f"--checkpoint {checkpoint} contains NaN or infinite weights: nothing was imported"
    assert not (tmp_path / "model").exists()


def test_a_head_that_disagrees_with_the_class_folders_is_a_damaged_checkpoint(tmp_path):
    checkpoint = write_checkpoint(tmp_path / "epoch=2.ckpt", class_dirs=CLASS_DIRS[:2])
    with pytest.raises(CheckpointError) as caught:
        import_checkpoint(checkpoint, tmp_path / "model")
    assert str(caught.value) == (f"--checkpoint {checkpoint}: its fingerprint names 2 class folders but its head has "
                                 "3 outputs: the checkpoint is damaged")
