"""model_fn places each TorchServe worker's model on the GPU TorchServe gave that worker (``gpu_id``)."""

from __future__ import annotations

from inspect import signature

import pytest
import torch
from sagemaker_inference.transformer import Transformer
from ts.context import Context

from dogbreed.serving import handlers
from dogbreed.serving.predictor import Predictor


@pytest.fixture
def loaded_on(monkeypatch):
    """Record the device model_fn asks for (no GPU here: the load itself is done on the CPU)."""
    devices: list[torch.device] = []
    original = Predictor.from_model_dir.__func__

    def from_model_dir(cls, model_dir, device=None, **options):
        devices.append(torch.device(device))
        return original(cls, model_dir, device="cpu", **options)

    monkeypatch.setattr(Predictor, "from_model_dir", classmethod(from_model_dir))
    monkeypatch.setattr(Transformer, "handle_error", Transformer.__dict__["handle_error"])  # model_fn swaps it
    return devices


def _gpus(monkeypatch, count: int) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


def _context(model_dir, gpu_id):
    return Context("model", str(model_dir), None, 1, gpu_id, "0.12.0")


@pytest.mark.parametrize("gpu_id,expected", [(0, "cuda:0"), (1, "cuda:1"), (3, "cuda:3"), ("2", "cuda:2")])
def test_each_worker_gets_the_gpu_torchserve_assigned(tiny_model_dir, monkeypatch, loaded_on, gpu_id, expected):
    _gpus(monkeypatch, 4)
    handlers.model_fn(str(tiny_model_dir), _context(tiny_model_dir, gpu_id))
    assert loaded_on == [torch.device(expected)]


def test_without_cuda_or_without_a_context_the_old_placement_stays(tiny_model_dir, monkeypatch, loaded_on):
    _gpus(monkeypatch, 0)
    handlers.model_fn(str(tiny_model_dir), _context(tiny_model_dir, None))
    _gpus(monkeypatch, 2)
    handlers.model_fn(str(tiny_model_dir))
    handlers.model_fn(str(tiny_model_dir), _context(tiny_model_dir, None))  # a CPU worker on a GPU host
    assert loaded_on == [torch.device("cpu"), torch.device("cuda"), torch.device("cuda")]


def test_the_toolkit_passes_the_worker_context_to_model_fn(tiny_model_dir, monkeypatch, loaded_on):
    # The toolkit counts parameters: model_fn(model_dir, context=None) takes one more than it passes, so it
    # appends the worker's context (sagemaker_inference.transformer._run_handler_function).
    assert len(signature(handlers.model_fn).parameters) == 2
    _gpus(monkeypatch, 2)
    transformer = Transformer()
    transformer._context = _context(tiny_model_dir, 1)
    predictor = transformer._run_handler_function(handlers.model_fn, str(tiny_model_dir))
    assert loaded_on == [torch.device("cuda:1")] and predictor.class_names[0] == "Affenpinscher"


@pytest.mark.parametrize("gpu_id, expected", [(5, "cuda:1"), (2, "cuda:0"), ("3", "cuda:1"), ("", "cuda"),
                                              (" ", "cuda")])
def test_a_gpu_id_beyond_the_visible_gpus_wraps_around_them(monkeypatch, gpu_id, expected):
    """TorchServe numbers workers' GPUs over the host; with fewer visible (CUDA_VISIBLE_DEVICES) the id wraps."""
    from types import SimpleNamespace

    _gpus(monkeypatch, 2)
    assert handlers.worker_device(SimpleNamespace(system_properties={"gpu_id": gpu_id})) == torch.device(expected)
