"""``export --precision int8``: the fp32 ONNX graph quantized by ONNX Runtime's ``quantize_static`` (QDQ, per-channel
int8 weights), calibrated on training images and checked against the PyTorch fp32 Predictor on the validation
split: below 99.5% top-1 agreement the file is removed and the export fails with the numbers.

The ``export`` extra only: the serving container never imports onnxruntime.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from dogbreed.export.onnx_export import INPUT_NAME, onnx_probabilities
from dogbreed.serving.precision_check import MIN_AGREEMENT, Agreement, image_batches
from dogbreed.serving.predictor import Predictor


def quantize_onnx(fp32_path: Path, output: Path, calibration: Iterator[torch.Tensor]) -> Path:
    """Write ``output``: ``fp32_path`` with int8 weights (per channel) and activations (ranges from ``calibration``),
    its ``metadata_props`` kept and ``dogbreed.precision`` set to int8."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Batches(CalibrationDataReader):
        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(calibration, None)
            return None if batch is None else {INPUT_NAME: batch.numpy().astype(np.float32)}

    quantize_static(str(fp32_path), str(output), Batches(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    source, model = onnx.load(str(fp32_path)), onnx.load(str(output))
    del model.metadata_props[:]
    for entry in source.metadata_props:
        model.metadata_props.add(key=entry.key, value=entry.value)
    model.metadata_props.add(key="dogbreed.precision", value="int8")
    onnx.save(model, str(output))
    return output


def onnx_agreement(onnx_path: Path, model_dir: Path | str, images: Sequence[Path]) -> Agreement:
    """Top-1 agreement and max |delta p| of the ONNX graph against the PyTorch fp32 Predictor on ``images``."""
    reference = Predictor.from_model_dir(model_dir, device="cpu", tta="none", precision="fp32")
    count = agreeing = 0
    worst = 0.0
    for batch in image_batches(reference, images):
        expected = reference.predict_proba(batch).numpy()
        got = onnx_probabilities(onnx_path, batch)
        agreeing += int((expected.argmax(1) == got.argmax(1)).sum())
        worst = max(worst, float(np.abs(expected - got).max()))
        count += batch.shape[0]
    return Agreement("int8 ONNX", count, agreeing, worst)


def export_int8(fp32_path: Path, output: Path, model_dir: Path | str, calibration: Sequence[Path],
                evaluation: Sequence[Path]) -> Agreement:
    """Quantize, then check on ``evaluation``; the file is removed when it disagrees with fp32 (raises)."""
    reference = Predictor.from_model_dir(model_dir, device="cpu", tta="none", precision="fp32")
    quantize_onnx(fp32_path, output, image_batches(reference, calibration))
    try:
        return onnx_agreement(output, model_dir, evaluation).require(MIN_AGREEMENT)
    except Exception:
        output.unlink(missing_ok=True)
        raise
