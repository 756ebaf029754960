"""quantize_onnx on a two-layer graph, fast: weights are quantized per output channel (one scale per channel, not
one per tensor), activations from the calibration batches, and the source's metadata carried over."""

from __future__ import annotations

import onnx
import torch
from onnx import numpy_helper

from dogbreed.export.onnx_export import INPUT_NAME
from dogbreed.export.onnx_int8 import quantize_onnx


def test_conv_weights_get_one_scale_per_output_channel_and_metadata_is_kept(tmp_path):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 6, 1)).eval()
    fp32 = tmp_path / "fp32.onnx"
    torch.onnx.export(net, (torch.randn(1, 3, 8, 8),), str(fp32), input_names=[INPUT_NAME], output_names=["logits"],
                      dynamo=False)
    model = onnx.load(str(fp32))
    model.metadata_props.add(key="dogbreed.classes", value='["a", "b"]')
    onnx.save(model, str(fp32))
    out = quantize_onnx(fp32, tmp_path / "int8.onnx", iter([torch.randn(1, 3, 8, 8) for _ in range(3)]))
    quantized = onnx.load(str(out))
    weights = {init.name: numpy_helper.to_array(init) for init in quantized.graph.initializer}
    weight_scales = sorted(v.shape for k, v in weights.items() if k.endswith("weight_scale"))
    assert weight_scales == [(4,), (6,)]
    assert {(p.key, p.value) for p in quantized.metadata_props} == {("dogbreed.classes", '["a", "b"]'),
                                                                   ("dogbreed.precision", "int8")}
