"""GPU smoke tests: train one epoch with bf16 autocast and predict on the GPU. They run wherever CUDA is present;
without it they are skipped (``gpu`` marker, see conftest.py): the only skip the suite accepts."""

from __future__ import annotations

import json

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from dogbreed.serving.predictor import Predictor
from dogbreed.training.run import train
from dogbreed.training.setup import resolve_precision
from tests.helpers.builders import BREED_DIRS, fast_config

pytestmark = pytest.mark.gpu


class RecordsTheRun(Callback):
    """Where and in which dtype the training steps really ran."""

    def __init__(self) -> None:
        self.precision: str | None = None
        self.devices: set[str] = set()
        self.output_dtypes: set[torch.dtype] = set()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.precision = str(trainer.precision)
        pl_module.per_batch_module().register_forward_hook(self._record)

    def _record(self, module: torch.nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        if module.training:
            self.devices.add(output.device.type)
            self.output_dtypes.add(output.dtype)


def test_auto_precision_is_bf16_mixed_on_this_gpu():
    assert torch.cuda.is_bf16_supported()  # every GPU SageMaker's training instances offer since A10G/A100
    assert resolve_precision("auto", "gpu") == "bf16-mixed"
    assert resolve_precision("auto", "cpu") == "32-true"


@pytest.mark.parametrize("finetune, cached_views", [("full", 0), ("head", 1)], ids=["full", "head-feature-cache"])
def test_one_bf16_epoch_on_the_gpu_then_predict_on_the_gpu(tmp_path, tiny_tree, finetune, cached_views):
    record = RecordsTheRun()
    config = fast_config(tmp_path, tiny_tree, accelerator="gpu", precision="bf16-mixed", epochs=1,
                         finetune=finetune, cached_views=cached_views, batch_size=4)
    result = train(config, extra_callbacks=[record])
    assert record.precision == "bf16-mixed"
    assert record.devices == {"cuda"}
    assert record.output_dtypes == {torch.bfloat16}  # autocast really ran the network in bf16
    assert len(result.history) == 1 and torch.isfinite(torch.tensor(result.history[0]["train_loss"]))
    assert json.loads((config.outputs.model_dir / "model_config.json").read_text())["hyperparameters"]["precision"] == \
        "bf16-mixed"

    # The artifact holds float32 weights and serves on the GPU and the CPU alike.
    state = torch.load(config.outputs.model_dir / "model.pth", weights_only=True, map_location="cpu")
    assert state["fc.weight"].dtype == torch.float32
    images = sorted(p for p in (tiny_tree / "test").rglob("*") if p.is_file())
    gpu = Predictor.from_model_dir(config.outputs.model_dir, device="cuda")
    cpu = Predictor.from_model_dir(config.outputs.model_dir, device="cpu")
    assert next(gpu.net.parameters()).device.type == "cuda"
    on_gpu = gpu.predict_proba(gpu.preprocess(images))
    on_cpu = cpu.predict_proba(cpu.preprocess(images))
    assert on_gpu.shape == (len(images), len(BREED_DIRS))
    torch.testing.assert_close(on_gpu.sum(dim=1), torch.ones(len(images)), rtol=0, atol=1e-5)
    torch.testing.assert_close(on_gpu, on_cpu, rtol=0, atol=2e-2)  # TF32 convolutions on the GPU
    top = gpu.predict(images[:1], k=2)[0]
    assert [p.breed for p in top] == [gpu.class_names[p.index] for p in top]
