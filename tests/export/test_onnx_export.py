"""ONNX export: onnxruntime matches PyTorch on real decoded images, any batch size, metadata inside."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from dogbreed.cli.export import export_command
from dogbreed.core.abstention import AbstentionRule
from dogbreed.core.network import build_resnet50
from dogbreed.core.transforms import Preprocessing
from dogbreed.export.onnx_export import export_onnx, onnx_probabilities, parity
from dogbreed.serving.artifact import ModelConfig, save_artifact
from dogbreed.serving.predictor import Predictor
from tests.helpers.builders import write_tree


@pytest.fixture(scope="module")
def calibrated_model_dir(tmp_path_factory):
    torch.manual_seed(0)
    config = ModelConfig(class_names=["a", "b", "c"], preprocessing=Preprocessing(image_size=32), temperature=1.7,
                         abstention=AbstentionRule("energy", 2.5, 0.95), tta="flip")
    return save_artifact(tmp_path_factory.mktemp("onnx") / "model", build_resnet50(3).eval(), config)


@pytest.fixture(scope="module")
def exported(calibrated_model_dir, tmp_path_factory):
    return export_onnx(calibrated_model_dir, tmp_path_factory.mktemp("out") / "model.onnx")


def test_onnx_probabilities_match_pytorch_on_decoded_jpegs_and_pngs(exported, calibrated_model_dir, tmp_path):
    root = write_tree(tmp_path / "data", {"test": 5})  # JPEGs, a PNG and a grayscale JPEG per breed
    images = sorted(p for p in root.rglob("*") if p.is_file())
    assert {p.suffix for p in images} == {".jpg", ".png"}
    assert parity(exported, calibrated_model_dir, images) < 1e-4


def test_onnx_batch_size_is_dynamic_and_temperature_is_inside(exported, calibrated_model_dir, tmp_path):
    predictor = Predictor.from_model_dir(calibrated_model_dir, device="cpu", tta="none")
    for n in (1, 3):
        torch.manual_seed(n)
        batch = torch.randn(n, 3, 32, 32)
        got = onnx_probabilities(exported, batch)
        assert got.shape == (n, 3)
        with torch.no_grad():
            expected = torch.softmax(predictor.net(batch) / 1.7, dim=1).numpy()
        assert np.abs(got - expected).max() < 1e-4


def test_onnx_metadata_carries_preprocessing_classes_temperature_and_abstention(exported):
    props = {p.key: p.value for p in onnx.load(str(exported)).metadata_props}
    assert json.loads(props["dogbreed.preprocessing"])["image_size"] == 32
    assert json.loads(props["dogbreed.preprocessing"])["mean"] == [0.485, 0.456, 0.406]
    assert json.loads(props["dogbreed.class_names"]) == ["a", "b", "c"]
    assert float(props["dogbreed.temperature"]) == 1.7
    assert json.loads(props["dogbreed.abstention"]) == {"score": "energy", "threshold": 2.5, "target_accept_rate": 0.95}
    assert props["dogbreed.tta"] == "flip"
    graph = onnx.load(str(exported)).graph
    assert [i.name for i in graph.input] == ["image"] and [o.name for o in graph.output] == ["logits", "probabilities"]
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    # opset 17, as the module's docstring tells the consumers of the file
    assert [(o.domain, o.version) for o in onnx.load(str(exported)).opset_import] == [("", 17)]


def test_export_command_checks_parity_and_says_so(calibrated_model_dir, tmp_path):
    summary = export_command(["--model-dir", str(calibrated_model_dir), "--output", str(tmp_path / "m.onnx")])
    assert summary.startswith(f"{tmp_path / 'm.onnx'} (onnxruntime parity on 2 image(s): max |delta probability| ")
    assert (tmp_path / "m.onnx").stat().st_size > 1_000_000


def test_onnx_preprocessing_metadata_has_the_crop_scale_as_trained():
    from dogbreed.export.onnx_export import metadata

    trained = ModelConfig(class_names=["a", "b"], preprocessing=Preprocessing(image_size=32),
                          hyperparameters={"crop_scale": 0.35})
    assert json.loads(metadata(trained)["dogbreed.preprocessing"]) == {
        "image_size": 32, "resize_size": 33, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
        "interpolation": "bilinear", "crop_scale": [0.35, 1.0]}
    unknown = ModelConfig(class_names=["a", "b"], preprocessing=Preprocessing(image_size=32))
    assert "crop_scale" not in json.loads(metadata(unknown)["dogbreed.preprocessing"])  # never a default claimed
