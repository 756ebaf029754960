"""Serving precision: fp32, bf16 (autocast) and int8 (eager-mode post-training static quantization).

Which precision serves: the caller's (``predict --precision``, ``DOGBREED_PRECISION`` in the handlers), else what
the artifact records (``package --precision``), else fp32. bf16 runs only where the hardware has it (on the CPU:
the ``avx512_bf16`` or ``amx_bf16`` flag); elsewhere fp32 serves and one log line says why. int8 is torchvision's
quantizable ResNet50 (fused conv-bn-relu, x86 qconfig: per-channel weights, calibrated activation ranges), saved as
``model_int8.pth`` next to ``model.pth`` and tied to it by hash through ``model_config.json``.

Torch and torchvision only, and no torch API newer than 2.6 (``torch.ao.quantization`` eager mode, the one post-
training quantization torch itself still ships: its PT2E quantizers moved to the torchao package).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import warnings
from pathlib import Path
from typing import Any, ContextManager, Iterable, Mapping

import torch
from torch import nn

from dogbreed.core.constants import CONFIG_FILENAME, INT8_WEIGHTS_FILENAME, PRECISIONS
from dogbreed.core.errors import ArtifactError, ConfigError, state_dict_mismatch, torch_load_reason
from dogbreed.core.fileio import atomic_write

logger = logging.getLogger(__name__)

PRECISION_ENV = "DOGBREED_PRECISION"
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
CPUINFO = Path("/proc/cpuinfo")
INT8_ENGINE = "x86"  # fbgemm + onednn kernels: AVX2 / AVX-512 VNNI
REPACKAGE = "rebuild it with python -m entry_points.package --precision int8 --data-dir DATA"


def check_precision(value: object, source: str = "--precision") -> str:
    """``value`` if it names a precision, else a :class:`ConfigError` naming the choices."""
    if value not in PRECISIONS:
        raise ConfigError(f"{source} {value!r} is not a precision: use one of {', '.join(PRECISIONS)}")
    return str(value)


def precision_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    """``DOGBREED_PRECISION`` (checked), or None when it is unset or empty."""
    value = (os.environ if environ is None else environ).get(PRECISION_ENV, "").strip().lower()
    return check_precision(value, PRECISION_ENV) if value else None


def cpu_flags(cpuinfo: Path | None = None) -> frozenset[str]:
    """The CPU feature flags Linux reports in /proc/cpuinfo (empty where there is none)."""
    try:
        text = (cpuinfo or CPUINFO).read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags") and ":" in line:
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def runnable_precision(precision: str, device: torch.device, flags: frozenset[str] | None = None) -> str:
    """``precision`` where this device runs it well, else fp32 with one log line saying why."""
    if precision == "bf16" and device.type == "cpu":
        flags = cpu_flags() if flags is None else flags
        if not flags & set(BF16_CPU_FLAGS):
            logger.warning("bf16 requested but this CPU has no %s flag: serving fp32", " or ".join(BF16_CPU_FLAGS))
            return "fp32"
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        logger.warning("bf16 requested but this GPU does not support it: serving fp32")
        return "fp32"
    if precision == "int8" and device.type != "cpu":
        logger.warning("int8 runs on the CPU only: serving fp32 on %s", device)
        return "fp32"
    if precision == "int8" and INT8_ENGINE not in torch.backends.quantized.supported_engines:
        logger.warning("int8 needs the %s quantized engine, which this torch build lacks: serving fp32", INT8_ENGINE)
        return "fp32"
    return precision


def recorded_precision(record: Mapping[str, Any] | None) -> str:
    """The precision an artifact records (``model_config.json`` "precision"), fp32 when it records none."""
    return str(record.get("mode", "fp32")) if record else "fp32"


def autocast(precision: str, device: torch.device) -> ContextManager[Any]:
    """The forward's context: bf16 autocast for bf16, nothing otherwise (int8 is in the weights)."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


# ---------------------------------------------------------------- int8


def _quantizable_resnet50(num_classes: int, state: Mapping[str, torch.Tensor] | None = None) -> nn.Module:
    """torchvision's quantizable ResNet50 with ``state`` (an fp32 ResNet50 state_dict) loaded before fusing,
    fused (conv-bn-relu) and prepared with observers (x86 qconfig: per-channel weights), in eval mode."""
    from torch.ao.quantization import get_default_qconfig, prepare
    from torchvision.models.quantization import resnet50 as quantizable_resnet50

    torch.backends.quantized.engine = INT8_ENGINE
    net = quantizable_resnet50(weights=None, quantize=False, num_classes=num_classes).eval()
    if state is not None:
        net.load_state_dict(state)
    net.fuse_model(is_qat=False)
    net.qconfig = get_default_qconfig(INT8_ENGINE)
    return prepare(net, inplace=True)


def _convert(net: nn.Module) -> nn.Module:
    from torch.ao.quantization import convert

    return convert(net, inplace=True).eval()


@contextlib.contextmanager
def _quiet_quantization() -> Any:
    """torch.ao's eager quantization warns about its own deprecation and about unused observers at every call."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def quantize_int8(net: nn.Module, calibration: Iterable[torch.Tensor]) -> nn.Module:
    """An int8 copy of the fp32 ResNet50 ``net``: activation ranges observed on the ``calibration`` batches."""
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    with _quiet_quantization():
        quantizable = _quantizable_resnet50(int(state["fc.weight"].shape[0]), state)
        seen = 0
        with torch.no_grad():
            for batch in calibration:
                quantizable(batch.float().contiguous())
                seen += batch.shape[0]
        if not seen:
            raise ConfigError("int8 calibration needs at least one image: pass a --data-dir whose train split has "
                              "images")
        return _convert(quantizable)


def int8_bytes(net: nn.Module) -> bytes:
    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)
    return buffer.getvalue()


def save_int8(model_dir: Path, net: nn.Module) -> str:
    """Write ``model_int8.pth`` atomically; returns its SHA-256 (recorded in the config)."""
    data = int8_bytes(net)
    atomic_write(model_dir / INT8_WEIGHTS_FILENAME, lambda fh: fh.write(data))
    return hashlib.sha256(data).hexdigest()


def precision_files(model_dir: Path | str, record: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The files besides model.pth and model_config.json the recorded precision serves from, hash-checked."""
    if recorded_precision(record) != "int8":
        return ()
    assert record is not None
    path = Path(model_dir) / INT8_WEIGHTS_FILENAME
    if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != record.get("weights_sha256"):
        raise ArtifactError(f"{path} is missing or does not belong to {CONFIG_FILENAME} (SHA-256): {REPACKAGE}")
    return (INT8_WEIGHTS_FILENAME,)


def load_int8(model_dir: Path | str, record: Mapping[str, Any], fp32_sha256: str | None,
              num_classes: int) -> nn.Module:
    """The int8 network of a model dir, loaded ``weights_only`` after both hash checks: the file is the one the
    config records, and it was made from the fp32 weights the config records."""
    path = Path(model_dir) / INT8_WEIGHTS_FILENAME
    if not path.is_file():
        raise ArtifactError(f"{path} not found but {CONFIG_FILENAME} records int8: {REPACKAGE}")
    if fp32_sha256 is None or record.get("source_weights_sha256") != fp32_sha256:
        raise ArtifactError(f"{path} was made from other fp32 weights than the model dir holds: {REPACKAGE}")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != record.get("weights_sha256"):
        raise ArtifactError(f"{path} does not belong to {CONFIG_FILENAME} (its SHA-256 differs): {REPACKAGE}")
    with _quiet_quantization():
        try:
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ArtifactError(f"{path} cannot be loaded weights-only ({torch_load_reason(exc)}): "
                                f"{REPACKAGE}") from exc
        net = _convert(_quantizable_resnet50(num_classes))
        try:
            net.load_state_dict(state)
        except (RuntimeError, KeyError) as exc:  # quantized modules raise KeyError for a missing weight
            reason = f"no {exc.args[0]} in it" if isinstance(exc, KeyError) else state_dict_mismatch(exc)
            raise ArtifactError(f"{path} does not fit a {num_classes}-class int8 ResNet50 ({reason}): "
                                f"{REPACKAGE}") from exc
    return net
