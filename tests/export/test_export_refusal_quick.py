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
