"""export's parity gate, fast (the real export is in test_onnx_export.py): a graph that differs from PyTorch by the
tolerance or more is removed and refused with the numbers; under it, the line says how close it was."""

from __future__ import annotations

import pytest

from dogbreed.cli.export import export_command
from dogbreed.core.errors import ConfigError
from dogbreed.export import onnx_export


@pytest.fixture
def stand_in_export(monkeypatch, tmp_path):
    def export_onnx(model_dir, output):
        output.write_bytes(b"onnx")
        return output

    monkeypatch.setattr(onnx_export, "export_onnx", export_onnx)
    return tmp_path / "m.onnx"


def test_an_unfaithful_graph_is_removed_and_refused_with_the_numbers(tiny_model_dir, stand_in_export, monkeypatch):
    monkeypatch.setattr(onnx_export, "parity", lambda output, model_dir, images: 1e-4)  # the tolerance itself
    with pytest.raises(ConfigError) as caught:
        export_command(["--model-dir", str(tiny_model_dir), "--output", str(stand_in_export)])
    assert str(caught.value) == (f"{stand_in_export}: onnxruntime differs from PyTorch by 1.00e-04 (tolerance 0.0001); "
                                 "the export is not faithful and was removed")
    assert not stand_in_export.exists()


def test_a_faithful_graph_says_how_close_on_how_many_images(tiny_model_dir, stand_in_export, monkeypatch):
    seen = []
    monkeypatch.setattr(onnx_export, "parity", lambda output, model_dir, images: seen.append(images) or 9.9e-5)
    line = export_command(["--model-dir", str(tiny_model_dir), "--output", str(stand_in_export)])
    assert line == f"{stand_in_export} (onnxruntime parity on 2 image(s): max |delta probability| 9.90e-05)"
    # without --check-images: two generated demo images at the resize size (32 px model: round(32 * 232 / 224) = 33)
    assert stand_in_export.exists() and [image.size for image in seen[0]] == [(33, 33), (33, 33)]


def test_an_int8_graph_that_disagrees_with_fp32_is_removed_and_refused(tmp_path, monkeypatch):
    """export_int8's gate with stand-ins for the quantizer, the comparison and the reference predictor: below 99.5%
    top-1 agreement the written file is removed and the refusal gives the numbers."""
    from dogbreed.export import onnx_int8
    from dogbreed.serving.precision_check import Agreement, PrecisionRefused

    output = tmp_path / "m.int8.onnx"
    monkeypatch.setattr(onnx_int8.Predictor, "from_model_dir", staticmethod(lambda *args, **kwargs: None))
    monkeypatch.setattr(onnx_int8, "image_batches", lambda reference, paths: iter(()))
    monkeypatch.setattr(onnx_int8, "quantize_onnx", lambda fp32, out, batches: out.write_bytes(b"int8 graph"))
    monkeypatch.setattr(onnx_int8, "onnx_agreement",
                        lambda path, model_dir, images: Agreement("int8 ONNX", 200, 198, 0.25))
    with pytest.raises(PrecisionRefused) as refused:
        onnx_int8.export_int8(tmp_path / "m.onnx", output, tmp_path, calibration=[], evaluation=[])
    assert str(refused.value) == ("refused: int8 ONNX vs fp32 on 200 held-out image(s): top-1 agreement 99.00% "
                                  "(198/200), max |delta p| 0.2500, below the 99.5% required; serve fp32 (package "
                                  "--precision fp32) or check the model")
    assert not output.exists()
    monkeypatch.setattr(onnx_int8, "onnx_agreement",  # 199 of 200 = 99.5%: kept
                        lambda path, model_dir, images: Agreement("int8 ONNX", 200, 199, 0.25))
    assert onnx_int8.export_int8(tmp_path / "m.onnx", output, tmp_path, [], []).agreeing == 199
    assert output.read_bytes() == b"int8 graph"
