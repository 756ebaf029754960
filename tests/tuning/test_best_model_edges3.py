"""evaluate_model_dir, third pass: the tested network is the model dir's (its weights, not a fresh initialisation),
its logits are the plain view (no TTA), and the training options reach the test's model and Trainer."""

from __future__ import annotations

import shutil

import torch

from dogbreed.data.splits import SplitDirs
from dogbreed.serving.artifact import load_artifact, save_artifact
from dogbreed.training.runtime import Runtime
from dogbreed.tuning import best_model
from dogbreed.tuning.best_model import evaluate_model_dir
from tests.helpers.builders import fast_config


def _always_the_third_breed(tiny_model_dir, tmp_path):
    """The tiny model with a head that ignores the features: logits (0, 0, 50) for every image."""
    model_dir = shutil.copytree(tiny_model_dir, tmp_path / "model")
    net, config = load_artifact(model_dir)
    with torch.no_grad():
        net.fc.weight.zero_()
        net.fc.bias.copy_(torch.tensor([0.0, 0.0, 50.0]))
    save_artifact(model_dir, net, config)
    return model_dir


def test_the_model_dirs_own_weights_are_tested(tiny_model_dir, tiny_tree, tmp_path):
    model_dir = _always_the_third_breed(tiny_model_dir, tmp_path)
    tested = evaluate_model_dir(fast_config(tmp_path, tiny_tree, logger="none"), model_dir,
                                splits=SplitDirs.from_data_dir(tiny_tree), runtime=Runtime.local())
    assert torch.equal(tested.logits.logits, torch.tensor([[0.0, 0.0, 50.0]] * 6))
    assert tested.logits.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert abs(tested.metrics["acc"] - 2 / 6) < 1e-6  # the two Airedale terrier images only


def test_the_test_logits_are_the_plain_view_and_the_options_reach_the_model_and_trainer(tiny_model_dir, tiny_tree,
                                                                                       tmp_path, monkeypatch):
    seen: dict[str, object] = {}
    real_logits, real_model, real_trainer = best_model.image_logits, best_model.DogBreedClassifier, \
        best_model.build_trainer

    def image_logits(*args, **kwargs):
        seen["tta"] = kwargs["tta"]
        return real_logits(*args, **kwargs)

    def classifier(*args, **kwargs):
        seen["model"] = kwargs
        return real_model(*args, **kwargs)

    def build_trainer(config, callbacks, *, runtime):
        seen["bar"] = runtime.progress_bar
        return real_trainer(config, callbacks, runtime=runtime)

    monkeypatch.setattr(best_model, "image_logits", image_logits)
    monkeypatch.setattr(best_model, "DogBreedClassifier", classifier)
    monkeypatch.setattr(best_model, "build_trainer", build_trainer)
    config = fast_config(tmp_path, tiny_tree, logger="none", finetune="head", tta="flip")
    evaluate_model_dir(config, shutil.copytree(tiny_model_dir, tmp_path / "model"),
                       splits=SplitDirs.from_data_dir(tiny_tree), runtime=Runtime(cpu_count=1, progress_bar=True))
    # the reliability diagram shows the model as served per image, whatever TTA the training run validated with
    assert seen["tta"] == "none"
    assert seen["model"] == {"num_classes": 3, "finetune": "head"}
    assert seen["bar"] is False  # one test pass at the end of a sweep: no live bar
