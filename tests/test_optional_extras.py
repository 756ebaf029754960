"""Each optional extra, when it is not installed, is one line naming the extra to install (issue 24: every refusal
read back). The import machinery is told the package is absent; nothing is uninstalled."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from dogbreed.core.errors import ConfigError


@pytest.fixture
def absent(monkeypatch):
    """``absent("captum", ...)``: find_spec answers None and import raises ImportError for those names."""
    def hide(*names: str) -> None:
        real = importlib.util.find_spec
        monkeypatch.setattr(importlib.util, "find_spec",
                            lambda name, *args: None if name in names else real(name, *args))
        for name in names:
            monkeypatch.setitem(sys.modules, name, None)  # `import name` raises ImportError
    return hide


def _refusal(call, *args) -> str:
    with pytest.raises(ConfigError) as refused:
        call(*args)
    return str(refused.value)


def test_explain_without_captum(absent):
    from dogbreed.explain.gradcam import require_captum

    absent("captum")
    assert _refusal(require_captum) == "--explain needs Captum: pip install -e '.[explain]' (or pip install captum)"


@pytest.mark.parametrize("missing, message", [
    (("onnxruntime",), "ONNX export needs onnxruntime: pip install -e '.[export]'"),
    (("onnx", "onnxruntime"), "ONNX export needs onnx and onnxruntime: pip install -e '.[export]'"),
])
def test_export_without_onnx(absent, missing, message):
    from dogbreed.export.onnx_export import require_export_extra

    absent(*missing)
    assert _refusal(require_export_extra) == message


def test_the_profiler_without_psutil(absent):
    from dogbreed.diagnostics.profiling import SystemMonitor

    absent("psutil")
    assert _refusal(SystemMonitor) == ("--profiler needs psutil for the system monitor: pip install psutil (it comes "
                                       "with pip install -e '.[debug]')")


@pytest.mark.parametrize("kind, message", [
    ("tensorboard", "--logger tensorboard needs the tensorboard package: pip install -e '.[tracking]' (or pip "
                    "install tensorboard), or choose --logger csv"),
    ("mlflow", "--logger mlflow needs the mlflow-skinny package: pip install -e '.[tracking]' (or pip install "
               "mlflow-skinny), or choose --logger csv"),
])
def test_a_logger_without_its_package(absent, kind, message):
    from dogbreed.training.setup import _EXTRA_FOR, _require

    absent(_EXTRA_FOR[kind][0])
    assert _refusal(_require, kind) == message


def test_mps_where_apple_gpus_are_not(monkeypatch):
    import torch

    from dogbreed.training.setup import check_accelerator

    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert _refusal(check_accelerator, "mps") == ("--accelerator mps: Apple's MPS is not available here: use "
                                                  "--accelerator cpu or auto")
    check_accelerator("cpu")
