"""The diagnostics run policy, in one place: what any training run that asks for profiling or smdebug gets added
(callbacks, the Lightning profiler, precision 32-true while smdebug collects), and what ``profiled_train`` turns
on by default. Every ``train``, ``hpo`` trial and ``profiled_train`` command runs through
:func:`train_with_diagnostics`.

Like the CLI it serves, this module holds whole ``TrainConfig`` objects: it changes options of several sections
(the profiler and trial dir, the precision) before handing the config to :func:`dogbreed.training.run.train`; the
hook and the profilers it builds get the diagnostics section.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytorch_lightning.callbacks import Callback

from dogbreed.config.options import TrainConfig
from dogbreed.data.splits import SplitDirs
from dogbreed.diagnostics.profiling import build_profiler, profiling_callbacks
from dogbreed.diagnostics.smdebug_hook import (
    SmDebugCallback,
    debug_callbacks,
    refuse_finished_trial,
    sagemaker_debug_config_path,
    smdebug_available,
)
from dogbreed.diagnostics.smdebug_image import smdebug_conflicts
from dogbreed.training.run import TrainResult, train
from dogbreed.training.runtime import Runtime
from dogbreed.training.setup import resolve_precision, run_loader_settings

logger = logging.getLogger(__name__)

DEBUG_TRIAL_SUBDIR = "debug-trial"
DEFAULT_PROFILER = "pytorch"
SMDEBUG_PRECISION = "32-true"


def profiled_config(config: TrainConfig, *, default_trial: bool = True) -> TrainConfig:
    """``profiled_train``'s defaults: Lightning's PyTorch profiler unless one is named (with the system monitor
    and data-wait timer: :func:`dogbreed.diagnostics.profiling.profiling_callbacks`), and an smdebug trial in
    ``<output-dir>/debug-trial`` only where it can be written: ``default_trial`` (False in a SageMaker job, whose
    image rarely holds smdebug), smdebug importable, no ``--debug-dir`` given and no SageMaker Debugger config.
    Without smdebug the run is profiled all the same and says in one line that it collects no tensors."""
    debug_dir = config.diagnostics.debug_dir
    if sagemaker_debug_config_path() is None:
        if debug_dir is None and default_trial:
            debug_dir = _default_trial(Path(config.outputs.output_dir))
        if debug_dir is not None:
            refuse_finished_trial(Path(debug_dir))  # fail before any data is read
    return config.replace(profiler=config.diagnostics.profiler or DEFAULT_PROFILER, debug_dir=debug_dir)


def _default_trial(output_dir: Path) -> Path | None:
    """``<output-dir>/debug-trial`` where smdebug can run; None, said in one line, where it cannot."""
    conflicts = smdebug_conflicts()
    if conflicts or not smdebug_available():
        why = ", ".join(conflicts) or "smdebug is not installed (pip install -e '.[debug]')"
        logger.info("no smdebug trial: %s; the profile and its report need none", why)
        return None
    return output_dir / DEBUG_TRIAL_SUBDIR


@dataclass
class _RunDiagnostics:
    """What a run's diagnostics add to the Trainer: callbacks and keyword arguments (``profiler=``)."""

    callbacks: list[Callback] = field(default_factory=list)
    trainer_overrides: dict[str, Any] = field(default_factory=dict)


def _run_diagnostics(config: TrainConfig, num_workers: int) -> _RunDiagnostics:
    """The smdebug callback (``--debug-dir`` or a SageMaker Debugger config) and, with ``--profiler``, the
    profiler plus the utilisation/data-wait callback. Empty when the config asks for neither."""
    options, output_dir = config.diagnostics, config.outputs.output_dir
    profiling = profiling_callbacks(options, output_dir=output_dir, batch_size=config.optimisation.batch_size,
                                    num_workers=num_workers)
    diagnostics = _RunDiagnostics(callbacks=[*debug_callbacks(options), *profiling])
    if options.profiler:
        diagnostics.trainer_overrides["profiler"] = build_profiler(options, output_dir)  # -> the profile dir
    return diagnostics


def _precision_for_smdebug(config: TrainConfig, collecting: bool) -> TrainConfig:
    """With smdebug collecting tensors, precision is 32-true: smdebug cannot save bf16 tensors (numpy has no
    bfloat16), and on the first failure it switches itself off for the rest of the job, so the Debugger rules
    would run on partial data without saying so. ``--precision auto`` picks bf16-mixed on g5/g6/p4/p5 GPUs."""
    if not collecting:
        return config
    resolved = resolve_precision(config.runtime.precision, config.runtime.accelerator)
    if resolved != SMDEBUG_PRECISION:
        logger.warning("precision %s -> %s for this run: smdebug collects tensors (Debugger config or --debug-dir) "
                       "and cannot save %s tensors", resolved, SMDEBUG_PRECISION, resolved.split("-")[0])
    return config.replace(precision=SMDEBUG_PRECISION)


def train_with_diagnostics(config: TrainConfig, *, runtime: Runtime | None = None,
                           splits: SplitDirs | None = None) -> TrainResult:
    """:func:`dogbreed.training.run.train` with whatever diagnostics the config asks for (and, with smdebug,
    precision 32-true: :func:`_precision_for_smdebug`)."""
    runtime = runtime or Runtime.local()
    loader = run_loader_settings(config.runtime, config.optimisation.batch_size, runtime)
    diagnostics = _run_diagnostics(config, loader.num_workers)
    config = _precision_for_smdebug(config, any(isinstance(c, SmDebugCallback) for c in diagnostics.callbacks))
    return train(config, splits=splits, runtime=runtime, extra_callbacks=diagnostics.callbacks,
                 **diagnostics.trainer_overrides)
