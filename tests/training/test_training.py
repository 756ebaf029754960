"""Real training runs on generated data: learning, artifact, reports."""

import json

import pytest
import torch

from dogbreed.core.constants import CONFIG_FILENAME, WEIGHTS_FILENAME
from dogbreed.core.errors import ArtifactError, DataError
from dogbreed.data.datamodule import DogBreedDataModule
from dogbreed.data.demo import generate_demo_dataset, holdout_images
from dogbreed.data.splits import SplitDirs
from dogbreed.serving.artifact import load_artifact, read_model_config
from dogbreed.serving.predictor import Predictor
from dogbreed.training.run import train
from tests.helpers.builders import BREED_DIRS, fast_config


@pytest.mark.slow  # the shared `trained` fixture: a real training run (make test, not test-quick)
def test_short_training_learns_fake_data(trained):
    _, result = trained
    chance = 1 / len(BREED_DIRS)
    assert result.test_metrics["acc"] >= 0.8 > chance + 0.4
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


@pytest.mark.slow  # the shared `trained` fixture: a real training run (make test, not test-quick)
def test_artifact_is_self_describing(trained):
    config, _ = trained
    model_config = json.loads((config.outputs.model_dir / CONFIG_FILENAME).read_text())
    assert model_config["class_names"] == ["Affenpinscher", "Afghan hound", "Airedale terrier"]
    assert model_config["architecture"] == "resnet50"
    assert model_config["preprocessing"] == {"image_size": 48, "resize_size": 50, "mean": [0.485, 0.456, 0.406],
                                             "std": [0.229, 0.224, 0.225], "interpolation": "bilinear"}
    assert model_config["hyperparameters"]["lr"] == config.optimisation.lr
    assert model_config["metrics"]["test"]["acc"] > 0
    assert {"torch", "torchvision", "pytorch_lightning", "dogbreed"} <= set(model_config["versions"])


@pytest.mark.slow  # the shared `trained` fixture: a real training run (make test, not test-quick)
def test_weights_load_with_weights_only(trained):
    config, _ = trained
    state = torch.load(config.outputs.model_dir / WEIGHTS_FILENAME, weights_only=True)
    assert state["fc.weight"].shape == (3, 2048)


@pytest.mark.slow  # the shared `trained` fixture: a real training run (make test, not test-quick)
def test_artifact_round_trip_gives_identical_predictions(trained, learnable_tree):
    config, _ = trained
    images = sorted((learnable_tree / "test").rglob("*.jpg"))[:6]
    first = Predictor.from_model_dir(config.outputs.model_dir, device="cpu")
    second = Predictor.from_model_dir(config.outputs.model_dir, device="cpu")
    batch = first.preprocess(images)
    assert torch.equal(first.predict_proba(batch), second.predict_proba(batch))
    assert first.predict(images, k=3) == second.predict(images, k=3)


@pytest.mark.slow  # the shared `trained` fixture: a real training run (make test, not test-quick)
def test_training_and_serving_preprocess_identically(trained, learnable_tree):
    config, _ = trained
    predictor = Predictor.from_model_dir(config.outputs.model_dir, device="cpu")
    dm = DogBreedDataModule(SplitDirs.from_data_dir(learnable_tree), preprocessing=predictor.config.preprocessing)
    dm.setup()
    for index in (0, 5, 17):
        path, _ = dm.datasets["test"].samples[index]
        from_training = dm.datasets["test"][index][0]
        assert torch.equal(from_training, predictor.preprocess([path])[0])
        assert torch.equal(from_training, predictor.preprocess([path.read_bytes()])[0])


@pytest.mark.slow  # the shared `trained` fixture: a real training run (make test, not test-quick)
def test_predictions_name_breeds_best_first(trained, learnable_tree):
    config, _ = trained
    predictor = Predictor.from_model_dir(config.outputs.model_dir, device="cpu")
    path = sorted((learnable_tree / "test" / BREED_DIRS[1]).iterdir())[0]
    top = predictor.predict([path], k=5)[0]
    assert len(top) == 3  # k is capped at the number of classes
    assert [p.probability for p in top] == sorted((p.probability for p in top), reverse=True)
    assert sum(p.probability for p in top) == pytest.approx(1.0, abs=1e-5)
    assert top[0].breed == predictor.class_names[top[0].index]


def test_incomplete_model_dir_is_reported(tmp_path):
    with pytest.raises(ArtifactError) as refused:
        load_artifact(tmp_path)
    assert str(refused.value) == (f"{tmp_path / 'model_config.json'} not found: a model dir needs model.pth and "
                                  "model_config.json, as written by python -m entry_points.train --model-dir")


@pytest.mark.slow  # the shared `trained` fixture: a real training run (make test, not test-quick)
def test_model_dir_config_without_weights(trained, tmp_path):
    config, _ = trained
    (tmp_path / CONFIG_FILENAME).write_text((config.outputs.model_dir / CONFIG_FILENAME).read_text())
    assert read_model_config(tmp_path).num_classes == 3
    with pytest.raises(ArtifactError) as refused:
        load_artifact(tmp_path)
    assert str(refused.value) == (f"{tmp_path / 'model.pth'} not found: the model dir is incomplete, re-export the "
                                  "model")


def test_training_rejects_bad_data_before_building_a_model(tmp_path, tiny_tree):
    (tiny_tree / "train" / BREED_DIRS[0] / "bad.jpg").write_bytes(b"junk")
    with pytest.raises(DataError) as refused:
        train(fast_config(tmp_path, tiny_tree))
    bad = tiny_tree / "train" / BREED_DIRS[0] / "bad.jpg"
    assert str(refused.value) == (f"1 unreadable image file(s):\n  {bad}: UnidentifiedImageError: cannot identify "
                                  f"image file '{bad}'\nFix or delete them, or pass --skip-bad-images to train "
                                  "without them")
    assert not (tmp_path / "model").exists()


def test_demo_dataset_is_generated_once_and_learnable_shape(tmp_path):
    root = generate_demo_dataset(tmp_path / "demo", seed=3)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    mtimes = [p.stat().st_mtime_ns for p in files]
    generate_demo_dataset(tmp_path / "demo", seed=3)
    assert [p.stat().st_mtime_ns for p in files] == mtimes
    assert len(holdout_images(root)) == 5
    suffixes = {p.suffix for p in files if "train" in p.parts}
    assert {".jpg", ".png"} <= suffixes
