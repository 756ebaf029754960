"""The profiled-run policy, in one place: what ``profiled_train`` turns on by default, and what any run that
asks for profiling or smdebug gets added (callbacks, the Lightning profiler)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pytorch_lightning.callbacks import Callback

from dogbreed.config.options import TrainConfig
from dogbreed.data.splits import SplitDirs
from dogbreed.diagnostics.profiling import build_profiler, profiling_callbacks
from dogbreed.diagnostics.smdebug_callback import (
    SmDebugCallback,
    debug_callbacks,
    refuse_finished_trial,
    sagemaker_debug_config_path,
)
from dogbreed.training.loading import run_loader_settings
from dogbreed.training.run import TrainResult, train
from dogbreed.training.runtime import Runtime
from dogbreed.training.throughput import resolve_precision

logger = logging.getLogger(__name__)

DEBUG_TRIAL_SUBDIR = "debug-trial"
DEFAULT_PROFILER = "simple"
SMDEBUG_PRECISION = "32-true"


def profiled_config(config: TrainConfig) -> TrainConfig:
    """``profiled_train``'s defaults: profiler 'simple' unless one is named; an smdebug trial in
    ``<output-dir>/debug-trial`` unless ``--debug-dir`` is given or SageMaker Debugger configured the hook."""
    debug_dir = config.debug_dir
    if sagemaker_debug_config_path() is None:
        debug_dir = Path(debug_dir) if debug_dir is not None else Path(config.output_dir) / DEBUG_TRIAL_SUBDIR
        refuse_finished_trial(debug_dir)  # fail before any data is read
    return replace(config, profiler=config.profiler or DEFAULT_PROFILER, debug_dir=debug_dir)


@dataclass
class RunDiagnostics:
    """What a run's diagnostics add to the Trainer: callbacks and keyword arguments (``profiler=``)."""

    callbacks: list[Callback] = field(default_factory=list)
    trainer_overrides: dict[str, Any] = field(default_factory=dict)


def run_diagnostics(config: TrainConfig, num_workers: int) -> RunDiagnostics:
    """The smdebug callback (``--debug-dir`` or a SageMaker Debugger config) and, with ``--profiler``, the
    profiler plus the utilisation/data-wait callback. Empty when the config asks for neither."""
    diagnostics = RunDiagnostics(callbacks=[*debug_callbacks(config), *profiling_callbacks(config, num_workers)])
    if config.profiler:
        diagnostics.trainer_overrides["profiler"] = build_profiler(config)  # -> <output-dir>/profile
    return diagnostics


def precision_for_smdebug(config: TrainConfig, collecting: bool) -> TrainConfig:
    """With smdebug collecting tensors, precision is 32-true: smdebug cannot save bf16 tensors (numpy has no
    bfloat16), and on the first failure it switches itself off for the rest of the job, so the Debugger rules
    would run on partial data without saying so. ``--precision auto`` picks bf16-mixed on g5/g6/p4/p5 GPUs."""
    if not collecting:
        return config
    resolved = resolve_precision(config.precision, config.accelerator)
    if resolved != SMDEBUG_PRECISION:
        logger.warning("precision %s -> %s for this run: smdebug collects tensors (Debugger config or --debug-dir) "
                       "and cannot save %s tensors", resolved, SMDEBUG_PRECISION, resolved.split("-")[0])
    return replace(config, precision=SMDEBUG_PRECISION)


def train_with_diagnostics(config: TrainConfig, *, runtime: Runtime | None = None,
                           splits: SplitDirs | None = None) -> TrainResult:
    """:func:`dogbreed.training.run.train` with whatever diagnostics the config asks for (and, with smdebug,
    precision 32-true: :func:`precision_for_smdebug`)."""
    runtime = runtime or Runtime.local()
    diagnostics = run_diagnostics(config, run_loader_settings(config, runtime).num_workers)
    config = precision_for_smdebug(config, any(isinstance(c, SmDebugCallback) for c in diagnostics.callbacks))
    return train(config, splits=splits, runtime=runtime, extra_callbacks=diagnostics.callbacks,
                 **diagnostics.trainer_overrides)
