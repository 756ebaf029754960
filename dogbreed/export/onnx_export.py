"""ONNX export of a model dir, and the onnxruntime parity check.

The graph takes ``image``: float32 (N, 3, S, S), already preprocessed (resize the short side to
``resize_size``, centre-crop ``image_size``, scale to [0, 1], normalise with mean/std; all in the metadata), any
N. It returns ``logits`` (N, C) and ``probabilities`` = ``softmax(logits / temperature)`` (the artifact's
temperature is inside the graph; do not apply it again). Test-time augmentation is not in the graph: the
metadata names the artifact's mode, and averaging the logits of the views is the client's to do. The graph is
opset 17 (``OPSET``): the onnxruntime that runs it must support that opset.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from dogbreed import __version__
from dogbreed.core.errors import ConfigError
from dogbreed.core.images import ImageSource
from dogbreed.serving.artifact import ModelConfig, load_artifact
from dogbreed.serving.predictor import Predictor

OPSET = 17
INPUT_NAME, OUTPUT_NAMES = "image", ("logits", "probabilities")
PARITY_TOLERANCE = 1e-4
INPUT_DESCRIPTION = ("float32 NCHW RGB: resize the short side to resize_size (bilinear, antialiased), centre-crop "
                     "image_size, scale to [0, 1], subtract mean and divide by std (see dogbreed.preprocessing)")


def require_export_extra() -> None:
    missing = [name for name in ("onnx", "onnxruntime") if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(f"ONNX export needs {' and '.join(missing)}: pip install -e '.[export]'")


class CalibratedNet(nn.Module):
    """The network plus the artifact's temperature: (logits, calibrated probabilities)."""

    def __init__(self, net: nn.Module, temperature: float) -> None:
        super().__init__()
        self.net = net
        self.temperature = temperature

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.net(image)
        return logits, torch.softmax(logits / self.temperature, dim=1)


def preprocessing_record(config: ModelConfig) -> dict[str, object]:
    """The serving inputs, plus the training crop range as trained (the artifact keeps it in ``hyperparameters``;
    without it, none is claimed)."""
    record: dict[str, object] = dict(config.preprocessing.eval_dict())
    trained = config.hyperparameters.get("crop_scale") if isinstance(config.hyperparameters, dict) else None
    if isinstance(trained, (int, float)) and not isinstance(trained, bool):
        record["crop_scale"] = [float(trained), 1.0]
    return record


def metadata(config: ModelConfig) -> dict[str, str]:
    """The ONNX ``metadata_props``: everything a client needs to preprocess, name and trust the outputs."""
    return {
        "dogbreed.version": __version__,
        "dogbreed.input": INPUT_DESCRIPTION,
        "dogbreed.preprocessing": json.dumps(preprocessing_record(config)),
        "dogbreed.class_names": json.dumps(config.class_names),
        "dogbreed.temperature": repr(config.temperature),
        "dogbreed.probabilities": "softmax(logits / temperature): the temperature is already applied",
        "dogbreed.abstention": json.dumps(config.abstention.to_dict() if config.abstention else None),
        "dogbreed.tta": config.tta,
    }


def export_onnx(model_dir: Path | str, output: Path | str, *, opset: int = OPSET) -> Path:
    """Write ``output`` (.onnx) from a model dir: dynamic batch size, the metadata of :func:`metadata`."""
    require_export_extra()
    import onnx

    output = Path(output)
    if output.is_dir():
        raise ConfigError(f"--output {output} is a directory: give a file name such as model.onnx")
    net, config = load_artifact(model_dir, map_location="cpu")
    wrapped = CalibratedNet(net.to(memory_format=torch.contiguous_format).eval(), config.temperature).eval()
    size = config.preprocessing.image_size
    example = torch.zeros(2, 3, size, size)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.partial")
    try:
        torch.onnx.export(wrapped, (example,), str(partial), input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
                          dynamic_axes={name: {0: "batch"} for name in (INPUT_NAME, *OUTPUT_NAMES)},
                          opset_version=opset, dynamo=False)
        model = onnx.load(str(partial))
        for key, value in metadata(config).items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.checker.check_model(model)
        onnx.save(model, str(partial))
        partial.replace(output)
    finally:
        partial.unlink(missing_ok=True)
    return output


def onnx_probabilities(onnx_path: Path | str, batch: torch.Tensor) -> np.ndarray:
    """Run the exported graph in onnxruntime (CPU) on a preprocessed batch."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    _, probabilities = session.run(list(OUTPUT_NAMES), {INPUT_NAME: batch.numpy().astype(np.float32)})
    return probabilities


def parity(onnx_path: Path | str, model_dir: Path | str, images: Sequence[ImageSource]) -> float:
    """Max |probability difference| between onnxruntime and the PyTorch Predictor (no TTA) on ``images``,
    decoded and preprocessed once by dogbreed and fed to both as one batch."""
    predictor = Predictor.from_model_dir(model_dir, device="cpu", tta="none", precision="fp32")
    batch = predictor.preprocess(images)
    expected = predictor.predict_proba(batch).numpy()
    return float(np.abs(onnx_probabilities(onnx_path, batch) - expected).max())
