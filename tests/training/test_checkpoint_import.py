"""Models out of a checkpoint: epoch=N.ckpt of a real run becomes a model dir holding that epoch's weights."""

from __future__ import annotations

import pytest
import torch

from dogbreed.cli import import_model
from dogbreed.serving.artifact import load_artifact
from dogbreed.training.run import train
from tests.helpers.builders import fast_config

pytestmark = pytest.mark.slow  # one short real training run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from tests.helpers.builders import write_tree

    root = tmp_path_factory.mktemp("ckpt_import")
    data = write_tree(root / "data", {"train": 4, "valid": 2, "test": 2})
    config = fast_config(root, data, epochs=2, checkpoint_dir=root / "ckpt", calibrate=False, logger="none",
                         image_size=40)
    train(config)
    return root


def _import(argv, capsys):
    status = import_model.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def _best_epoch(run) -> int:
    """The epoch the run exported (the best by val_acc, ties to the earlier: 1 or 2)."""
    epoch = load_artifact(run / "model")[1].metrics["best"]["epoch"]
    assert epoch in (1, 2)
    return epoch


def test_the_best_epochs_checkpoint_imports_the_exported_weights(run, tmp_path, capsys):
    best = _best_epoch(run)
    checkpoint = run / "ckpt" / f"epoch={best}.ckpt"
    status, out, err = _import(["--checkpoint", checkpoint, "--model-dir", tmp_path / "m"], capsys)
    assert status == 0, err
    assert out.startswith(f"model dir {tmp_path / 'm'}: epoch {best} (of 2) from {checkpoint} (3 classes;")
    assert "not calibrated" in out
    imported, config = load_artifact(tmp_path / "m")
    exported, exported_config = load_artifact(run / "model")
    assert all(torch.equal(imported.state_dict()[k], v) for k, v in exported.state_dict().items())
    assert config.class_names == exported_config.class_names == ["Affenpinscher", "Afghan hound", "Airedale terrier"]
    assert config.preprocessing == exported_config.preprocessing  # image size 40 from the run, not a default
    record = config.hyperparameters["imported_from"]
    assert (record["checkpoint"], record["epoch"], record["of_epochs"], record["calibrated"]) == (
        f"epoch={best}.ckpt", best, 2, False)
    assert config.metrics["final_epoch"]["epoch"] == best and "val_acc" in config.metrics["final_epoch"]
    assert config.hyperparameters["epochs"] == 2 and config.temperature == 1.0 and config.abstention is None


def test_another_checkpoint_imports_that_epoch(run, tmp_path, capsys):
    other = 3 - _best_epoch(run)
    assert _import(["--checkpoint", run / "ckpt" / f"epoch={other}.ckpt", "--model-dir", tmp_path / "m"],
                   capsys)[0] == 0
    imported, config = load_artifact(tmp_path / "m")
    saved = torch.load(run / "ckpt" / f"epoch={other}.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    assert all(torch.equal(imported.state_dict()[k[4:]], v) for k, v in saved.items() if k.startswith("net."))
    exported, _ = load_artifact(run / "model")
    assert not torch.equal(imported.fc.weight, exported.fc.weight)
    assert config.hyperparameters["imported_from"]["epoch"] == other
    assert config.metrics["final_epoch"]["epoch"] == other


def test_a_checkpoint_without_a_dogbreed_fingerprint_is_refused(run, tmp_path, capsys):
    foreign = tmp_path / "foreign.ckpt"
    saved = torch.load(run / "ckpt" / "epoch=2.ckpt", map_location="cpu", weights_only=True)
    torch.save({"state_dict": saved["state_dict"], "epoch": 1}, foreign)
    status, out, err = _import(["--checkpoint", foreign, "--model-dir", tmp_path / "m"], capsys)
    assert status == 2 and not (tmp_path / "m").exists()
    assert err == (f"error: --checkpoint {foreign} records no dogbreed run fingerprint (class folders, options): it "
                   "was not written by python -m entry_points.train --checkpoint-dir\n")


def test_a_checkpoint_takes_no_classes_or_preprocessing(run, tmp_path, capsys):
    status, out, err = _import(["--checkpoint", run / "ckpt" / "epoch=2.ckpt", "--model-dir", tmp_path / "m",
                                "--classes", tmp_path / "c.txt", "--image-size", "64"], capsys)
    assert status == 2 and err == (
        "error: --image-size, --classes with --checkpoint: a checkpoint's classes and preprocessing come from its run "
        "(and it is always loaded weights-only); drop them\n")
