"""Checks that must pass before any data is read: every output location writable, the accelerator present.

A typo in ``--model-dir`` (a file, an unwritable mount) used to surface after training, losing the run.
"""

from __future__ import annotations

from pathlib import Path

import torch

from dogbreed.config.options import TrainConfig
from dogbreed.core.errors import ConfigError
from dogbreed.core.fileio import check_writable_dir


def output_locations(config: TrainConfig, cache_dir: Path | None) -> dict[str, Path]:
    """Option -> dir for every place the run writes to (``cache_dir`` when the feature cache is used)."""
    locations = {"--model-dir": Path(config.model_dir), "--output-dir": Path(config.output_dir)}
    if config.checkpoint_dir is not None:
        locations["--checkpoint-dir"] = Path(config.checkpoint_dir)
    if cache_dir is not None:
        locations["--cache-dir"] = Path(cache_dir)
    if config.debug_dir is not None:
        locations["--debug-dir"] = Path(config.debug_dir).parent
    return locations


def check_output_locations(config: TrainConfig, cache_dir: Path | None = None) -> None:
    """Prove each output dir writable (without creating it); a :class:`ConfigError` names the option."""
    for option, path in output_locations(config, cache_dir).items():
        check_writable_dir(path, option)


def check_accelerator(accelerator: str) -> None:
    """``--accelerator gpu`` on a machine without one is a one-line error, not Lightning's traceback."""
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--accelerator {accelerator}: torch sees no CUDA GPU on this machine "
                          f"(torch {torch.__version__}): use --accelerator cpu or auto")
    if accelerator == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ConfigError("--accelerator mps: Apple's MPS is not available here: use --accelerator cpu or auto")
