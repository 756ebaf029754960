"""``export --precision int8``: ONNX Runtime's static quantization, checked against fp32 on the validation split."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from dogbreed.cli.export import export_command
from dogbreed.core.errors import ConfigError
from dogbreed.core.network import build_resnet50
from dogbreed.core.transforms import Preprocessing
from dogbreed.export import onnx_int8
from dogbreed.serving.artifact import ModelConfig, save_artifact
from dogbreed.serving.precision_check import Agreement, PrecisionRefused
from tests.helpers.builders import write_tree


@pytest.fixture(scope="module")
def decisive_model_dir(tmp_path_factory):
    """32 px, random backbone, head scaled up: decisive logits that a faithful int8 graph keeps."""
    torch.manual_seed(0)
    net = build_resnet50(3).eval()
    with torch.no_grad():
        net.fc.weight.mul_(200.0)
    config = ModelConfig(class_names=["a", "b", "c"], preprocessing=Preprocessing(image_size=32))
    return save_artifact(tmp_path_factory.mktemp("onnx_int8") / "model", net, config)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_tree(tmp_path_factory.mktemp("onnx_int8_data") / "data", {"train": 4, "valid": 3}, seed=3)


def test_int8_needs_the_data_dir(decisive_model_dir, tmp_path) -> None:
    with pytest.raises(ConfigError) as caught:
        export_command(["--model-dir", str(decisive_model_dir), "--output", str(tmp_path / "m.onnx"),
                        "--precision", "int8"])
    assert str(caught.value) == ("--precision int8 needs --data-dir DIR (with train/ and valid/): int8 is calibrated "
                                 "on its training images and checked against fp32 on its validation split")


@pytest.mark.slow
def test_int8_export_is_quantized_checked_and_labelled(decisive_model_dir, data_dir, tmp_path) -> None:
    output = tmp_path / "m.onnx"
    summary = export_command(["--model-dir", str(decisive_model_dir), "--output", str(output),
                              "--precision", "int8", "--data-dir", str(data_dir)])
    assert summary == f"{output} (int8 ONNX vs fp32 on 9 held-out image(s): top-1 agreement 100.00% (9/9), " \
                      f"max |delta p| {summary.rsplit(' ', 1)[1]}"
    model = onnx.load(str(output))
    assert {"QuantizeLinear", "DequantizeLinear"} <= {node.op_type for node in model.graph.node}
    metadata = {entry.key: entry.value for entry in model.metadata_props}
    assert metadata["dogbreed.precision"] == "int8" and metadata["dogbreed.class_names"] == '["a", "b", "c"]'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]  # the fp32 intermediate is gone


@pytest.mark.slow
def test_a_disagreeing_int8_export_is_removed(decisive_model_dir, data_dir, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(onnx_int8, "onnx_agreement", lambda *args: Agreement("int8 ONNX", 9, 8, 0.6))
    output = tmp_path / "m.onnx"
    with pytest.raises(PrecisionRefused) as refused:
        export_command(["--model-dir", str(decisive_model_dir), "--output", str(output),
                        "--precision", "int8", "--data-dir", str(data_dir)])
    assert str(refused.value) == ("refused: int8 ONNX vs fp32 on 9 held-out image(s): top-1 agreement 88.89% (8/9), "
                                  "max |delta p| 0.6000, below the 99.5% required; serve fp32 (package --precision "
                                  "fp32) or check the model")
    assert list(tmp_path.iterdir()) == []


def test_the_agreement_counts_every_batch_and_the_largest_probability_gap(decisive_model_dir, monkeypatch) -> None:
    """ONNX stood in by the reference's own probabilities, one answer changed: 5 images over two batches, 4
    agreeing, and the gap is that changed row's largest |delta p|."""
    from dogbreed.serving.predictor import Predictor

    reference = Predictor.from_model_dir(decisive_model_dir, device="cpu", tta="none", precision="fp32")
    batches = [torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1)),
               torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))]
    changed = {}

    def onnx_probabilities(path, batch):
        got = reference.predict_proba(batch).numpy().copy()
        if len(batch) == 2:  # the second batch: its first answer moves to another breed
            moved = np.eye(3, dtype=got.dtype)[(int(got[0].argmax()) + 1) % 3]
            changed["gap"] = float(np.abs(got[0] - moved).max())
            got[0] = moved
        return got

    monkeypatch.setattr(onnx_int8, "image_batches", lambda predictor, images: iter(batches))
    monkeypatch.setattr(onnx_int8, "onnx_probabilities", onnx_probabilities)
    agreement = onnx_int8.onnx_agreement(decisive_model_dir / "model.onnx", decisive_model_dir, [])
    assert (agreement.images, agreement.agreeing) == (5, 4)
    assert agreement.max_abs_delta_p == pytest.approx(changed["gap"]) and changed["gap"] > 0.5
