"""Profiled runs: Lightning's profilers, a system-utilisation sampler and the data-wait timer.

Everything lands in the run's profile dir (``--profile-dir``; default ``<output-dir>/profile``, in a SageMaker job
the TensorBoard output path that SageMaker syncs to S3): the profiler's own output (with ``pytorch``: the trace
torch.profiler's ``tensorboard_trace_handler`` writes, ``*.pt.trace.json``, which TensorBoard's profiler plugin,
Perfetto and chrome://tracing read, and a top-operators table), then the report's inputs
(:mod:`dogbreed.diagnostics.profile_data`: ``profile_run.json``, ``utilisation.csv``, ``step_times.csv``) and the
report built from them alone, with its plots (:mod:`dogbreed.diagnostics.profile_report`). When the profile dir is
not ``<output-dir>/profile``, the report and its inputs (small files; not the traces) are copied there too, so a
SageMaker job's ``output.tar.gz`` carries them. No smdebug is involved.

The PyTorch profiler of ``--profiler pytorch`` is built on Lightning's ``PyTorchProfiler``; its schedule subclass
uses Lightning's ``ScheduleWrapper`` internals (``pytorch_lightning.profilers.pytorch``, stable across Lightning
2.x). Profiling is quiet by default: kineto prints profiler start/stop lines and, on CPU-only machines,
``ERROR ... gpuGetDeviceCount failed``. It reads an environment variable; we set it only when the user has not, so
``KINETO_LOG_LEVEL=0`` brings everything back. (smdebug's logging: :func:`dogbreed.diagnostics.quiet_smdebug_logging`.)
"""

from __future__ import annotations

import csv
import logging
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.profilers import AdvancedProfiler, Profiler, PyTorchProfiler, SimpleProfiler
from pytorch_lightning.profilers.pytorch import ScheduleWrapper
from torch.profiler import ProfilerAction

from dogbreed.config.sections import PROFILE_SUBDIR, DiagnosticsOptions
from dogbreed.core.errors import ConfigError
from dogbreed.diagnostics.profile_data import (
    REPORT_INPUTS,
    read_profile_data,
    write_profile_data,
    write_step_times_csv,
    write_utilisation_csv,
)
from dogbreed.diagnostics.profile_report import REPORT_NAME, RunFacts, UtilSample, write_profile_report
from dogbreed.training.callbacks import DataWaitTimer

logger = logging.getLogger(__name__)

PROFILER_FILENAME = "profile"


TOP_OPERATORS = 30
KINETO_LOG_LEVEL_ENV = "KINETO_LOG_LEVEL"
# kineto levels: 0 verbose .. 3 error, 4 stage, 5 USDT (profiler_start/stop lines): 6 silences all of them.
KINETO_QUIET_LEVEL = "6"


def _quiet_kineto() -> None:
    """Before a torch.profiler run starts (kineto reads the level when the profiler initialises it)."""
    os.environ.setdefault(KINETO_LOG_LEVEL_ENV, KINETO_QUIET_LEVEL)


def build_profiler(options: DiagnosticsOptions, output_dir: Path) -> Profiler | None:
    """The Lightning profiler named by ``--profiler`` writing into the run's profile dir; None when off."""
    kind = options.profiler
    if not kind:
        return None
    out = options.profile_dir_for(output_dir)
    if kind == "simple":
        return SimpleProfiler(dirpath=out, filename=PROFILER_FILENAME, extended=True)
    if kind == "advanced":
        return AdvancedProfiler(dirpath=out, filename=PROFILER_FILENAME, line_count_restriction=0.5)
    if kind == "pytorch":
        _quiet_kineto()
        return OperatorTableProfiler(dirpath=out, filename=PROFILER_FILENAME, export_to_chrome=True,
                                     sort_by_key="cpu_time_total", row_limit=TOP_OPERATORS)
    raise ConfigError(f"--profiler {kind!r}: use simple, advanced or pytorch (or leave it empty)")


def _nvidia_smi_utilisation() -> float | None:
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                              f"--id={torch.cuda.current_device()}"], capture_output=True, text=True, timeout=5)
        return float(out.stdout.strip().splitlines()[0])
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return None


def _gpu_reading() -> tuple[float | None, float | None]:
    if not torch.cuda.is_available():
        return None, None
    free, total = torch.cuda.mem_get_info()
    memory = 100.0 * (total - free) / total
    try:
        utilisation: float | None = float(torch.cuda.utilization())  # needs pynvml
    except Exception:  # noqa: BLE001 - fall back to the command-line tool
        utilisation = _nvidia_smi_utilisation()
    return utilisation, memory


class SystemMonitor:
    """Samples CPU %, memory and (when present) GPU utilisation/memory every ``interval_ms`` in a thread."""

    def __init__(self, interval_ms: int = 500) -> None:
        if interval_ms < 10:
            raise ConfigError(f"--monitor-interval-ms {interval_ms}: use at least 10 ms")
        try:
            import psutil
        except ImportError as exc:
            raise ConfigError("--profiler needs psutil for the system monitor: pip install psutil "
                              "(it comes with pip install -e '.[debug]')") from exc

        self._psutil = psutil
        self._process = psutil.Process()
        self._cores = psutil.cpu_count() or 1
        self.interval_s = interval_ms / 1000
        self.samples: list[UtilSample] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0

    def _sample(self) -> UtilSample:
        gpu, gpu_mem = _gpu_reading()
        return UtilSample(
            elapsed_s=round(time.perf_counter() - self._t0, 3),
            cpu_percent=self._psutil.cpu_percent(interval=None),
            memory_percent=self._psutil.virtual_memory().percent,
            process_rss_mb=round(self._process.memory_info().rss / 2**20, 1),
            gpu_percent=gpu, gpu_memory_percent=gpu_mem,
            # CPU time is counted in clock ticks, so short intervals can read above 100 %: clamp.
            process_cpu_percent=round(min(100.0, self._process.cpu_percent(interval=None) / self._cores), 1),
        )

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.samples.append(self._sample())

    def start(self) -> None:
        self._t0 = time.perf_counter()
        self._psutil.cpu_percent(interval=None)  # the first calls only prime the counters
        self._process.cpu_percent(interval=None)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="system-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> list[UtilSample]:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            self.samples.append(self._sample())
        return self.samples

    def write_csv(self, path: Path) -> Path:
        return write_utilisation_csv(self.samples, path)


class ProfilingCallback(DataWaitTimer):
    """Data-wait timing plus the system monitor for a fit. On rank 0 it writes the report's inputs, then the report
    read back from them (as ``profile_report`` would build it from the job's output), and copies both to
    ``copy_to`` when given."""

    def __init__(self, out_dir: Path, *, interval_ms: int = 500, batch_size: int, num_workers: int,
                 profiler: str = "", copy_to: Path | None = None) -> None:
        super().__init__()
        self.out_dir = Path(out_dir)
        self.monitor = SystemMonitor(interval_ms)
        self.interval_ms = interval_ms
        self.batch_size, self.num_workers, self.profiler = batch_size, num_workers, profiler
        self.copy_to = Path(copy_to) if copy_to is not None else None
        self.report_path: Path | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.monitor.start()

    def write_csv(self, path: Path) -> Path:
        """``step_times.csv``: each timed step's data wait and duration (s)."""
        return write_step_times_csv(self.waits_s, self.steps_s, path)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self.monitor.stop()

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        samples = self.monitor.stop()
        if not trainer.is_global_zero:
            return
        facts = RunFacts(batch_size=self.batch_size, num_workers=self.num_workers, profiler=self.profiler,
                         device=str(pl_module.device), waits_s=self.waits_s, steps_s=self.steps_s)
        write_profile_data(self.out_dir, samples, facts, monitor_interval_ms=self.interval_ms)
        self.report_path = write_profile_report(self.out_dir, *read_profile_data(self.out_dir))
        logger.info("profiler report: %s", self.report_path)
        if self.copy_to is not None:
            self._copy_report(self.copy_to)

    def _copy_report(self, destination: Path) -> None:
        """The report, its plots and inputs (not the traces) into ``destination``: a job's ``output.tar.gz``."""
        destination.mkdir(parents=True, exist_ok=True)
        for path in self.out_dir.iterdir():
            if path.name in (*REPORT_INPUTS, REPORT_NAME) or path.suffix == ".png":
                shutil.copy2(path, destination / path.name)
        logger.info("profiler report and its data copied to %s", destination)


def profiling_callbacks(options: DiagnosticsOptions, *, output_dir: Path, batch_size: int,
                        num_workers: int) -> list[Callback]:
    """The utilisation/data-wait callback of a profiled run (``--profiler`` set); empty otherwise.

    ``num_workers`` is the resolved DataLoader worker count (the report advises on it).
    """
    if not options.profiler:
        return []
    out, default = options.profile_dir_for(output_dir), Path(output_dir) / PROFILE_SUBDIR
    copy_to = None if out.absolute() == default.absolute() else default
    return [ProfilingCallback(out, interval_ms=options.monitor_interval_ms, batch_size=batch_size,
                              num_workers=num_workers, profiler=options.profiler, copy_to=copy_to)]


# --- --profiler pytorch: a trace of whole training steps, the top-operators table ---------------------------------

ANNOTATIONS = ("[pl]", "ProfilerStep")  # Lightning's and torch.profiler's own ranges, not operators


class _TrainingStepSchedule(ScheduleWrapper):
    """Lightning's schedule wrapper, except that during fit only training steps advance the schedule.

    Lightning's wrapper counts validation steps too (and switches to recording everything when the validation
    split has under 5 batches), so the saved "fit" trace often held a validation step. Here a validation step
    inside fit keeps whatever the profiler was doing (a window that spans an epoch end continues across it)
    and never starts or ends a window: the saved trace covers training steps.
    """

    def __init__(self, schedule: Callable, fitting: Callable[[], bool]) -> None:
        super().__init__(schedule)
        self.fitting = fitting  # whether the profiler's stage is fit (Lightning's own test of the first action
        # name, ``on_fit_start``, no longer matches: Lightning 2.6 starts fit at ``configure_callbacks``)

    @property
    def validating_in_fit(self) -> bool:
        return self._current_action is not None and self.is_validating and self.fitting()

    def __call__(self, num_step: int) -> ProfilerAction:
        if not self.validating_in_fit:
            return super().__call__(num_step)
        if self._training_step_reached_end or self._prev_schedule_action not in (ProfilerAction.WARMUP,
                                                                                  ProfilerAction.RECORD):
            return ProfilerAction.NONE
        return self._prev_schedule_action


class OperatorTableProfiler(PyTorchProfiler):
    """Lightning's PyTorchProfiler whose fit trace covers training steps (:class:`_TrainingStepSchedule`) and
    that also writes the top operators (self CPU/device time, calls) as CSV + text."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if isinstance(self._schedule, ScheduleWrapper):
            self._schedule = _TrainingStepSchedule(self._schedule._schedule, fitting=self._fitting)
            self._profiler_kwargs["schedule"] = self._schedule

    def _prepare_filename(self, action_name: str | None = None, extension: str = ".txt") -> str:
        """Lightning's name without the brackets of its action names (``[Strategy]SingleDeviceStrategy...``): a
        shell reads ``[...]`` in a file name as a glob."""
        name = super()._prepare_filename(action_name=action_name, extension=extension)
        return name.replace("[", "").replace("]", "-")

    def _create_profilers(self) -> None:
        super()._create_profilers()
        profiler = self.profiler
        if isinstance(profiler, torch.profiler.profile):
            add_metadata = profiler.add_metadata

            def add_metadata_when_active(key: str, value: str) -> None:
                # Lightning tags every step; while the schedule idles (validation between windows) kineto is
                # not initialised and would print "Profiler is not initialized: skipping profiling metadata".
                if profiler.current_action != ProfilerAction.NONE:
                    add_metadata(key, value)

            profiler.add_metadata = add_metadata_when_active  # type: ignore[method-assign]

    def _fitting(self) -> bool:
        return str(getattr(self._stage, "value", self._stage)) == "fit"  # TrainerFn.FITTING

    def _should_override_schedule(self) -> bool:
        """Lightning records every step when the current stage has under 5 (the schedule needs 5); in fit only
        training counts. Lightning warns when it does so; here the same switch happens without the warning."""
        if isinstance(self._schedule, _TrainingStepSchedule) and self._schedule.validating_in_fit:
            return False
        if super()._should_override_schedule():
            self._schedule = None
            if isinstance(self.profiler, torch.profiler.profile):
                self.profiler.schedule = torch.profiler.profiler._default_schedule_fn
        return False

    def stop(self, action_name: str) -> None:
        """A training step ends after its optimizer step: Lightning's step runs inside the optimizer closure, so
        stepping the profiler there would end a trace window in the middle of ``optimizer.step``."""
        if action_name.endswith("training_step") and self._automatic_optimization():
            self._flush_training_step()
            if action_name in self._recording_map:
                self._recording_map.pop(action_name).__exit__(None, None, None)
            self._pending_training_step = action_name
            return
        super().stop(action_name)
        if action_name.endswith(".optimizer_step"):  # not on_before_optimizer_step (inside the step)
            self._flush_training_step()

    _pending_training_step: str | None = None

    def _flush_training_step(self) -> None:
        pending, self._pending_training_step = self._pending_training_step, None
        if pending is not None:
            super().stop(pending)  # its record_function is closed: this only steps the profiler

    def _automatic_optimization(self) -> bool:
        module = self._lightning_module
        return module is None or bool(getattr(module, "automatic_optimization", True))

    def summary(self) -> str:
        self._flush_training_step()
        return self._summary_with_operator_table()

    def _summary_with_operator_table(self) -> str:
        text = super().summary()  # stops torch.profiler and caches self.function_events
        if self.function_events and self.dirpath is not None:
            stage = str(getattr(self._stage, "value", self._stage) or "run")  # TrainerFn.FITTING -> "fit"
            _write_operator_table(self.function_events.key_averages(), Path(self.dirpath), stage)
        return text


def _time(event: Any, *names: str) -> float:
    for name in names:  # torch >= 2.4 says "device", older releases "cuda"
        value = getattr(event, name, None)
        if value is not None:
            return float(value)
    return 0.0


def _write_operator_table(averages: Any, out_dir: Path, stage: str, limit: int = TOP_OPERATORS) -> Path:
    """``<stage>-top_operators.csv`` and ``.txt``, sorted by self device time, then self CPU time (µs)."""
    rows = []
    for event in averages:
        rows.append({
            "operator": event.key,
            "calls": int(event.count),
            "self_cpu_us": float(event.self_cpu_time_total),
            "cpu_total_us": float(event.cpu_time_total),
            "self_device_us": _time(event, "self_device_time_total", "self_cuda_time_total"),
            "device_total_us": _time(event, "device_time_total", "cuda_time_total"),
        })
    rows = [r for r in rows if not r["operator"].startswith(ANNOTATIONS)]
    rows.sort(key=lambda r: (r["self_device_us"], r["self_cpu_us"]), reverse=True)
    rows = rows[:limit]
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / f"{stage}-top_operators.csv"
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["operator"])
        writer.writeheader()
        writer.writerows(rows)
    lines = [f"{'operator':<45} {'calls':>7} {'self CPU ms':>12} {'self device ms':>15}"]
    lines += [f"{r['operator'][:45]:<45} {r['calls']:>7} {r['self_cpu_us'] / 1e3:>12.2f} "
              f"{r['self_device_us'] / 1e3:>15.2f}" for r in rows]
    (out_dir / f"{stage}-top_operators.txt").write_text("\n".join(lines) + "\n")
    return csv_path
