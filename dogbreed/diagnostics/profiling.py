"""Profiled runs: Lightning's profilers, a system-utilisation sampler and the data-wait timer.

Everything lands in ``<output-dir>/profile/``: the profiler's own output (with ``pytorch``: a Chrome
trace and a top-operators table), ``utilisation.csv``, ``step_times.csv``, plots and
``profiler_report.md`` (see :mod:`dogbreed.diagnostics.profile_report`).
"""

from __future__ import annotations

import csv
import logging
import shutil
import subprocess
import threading
import time
from dataclasses import asdict, fields
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.profilers import AdvancedProfiler, Profiler, SimpleProfiler

from dogbreed.config.options import TrainConfig
from dogbreed.core.errors import ConfigError
from dogbreed.diagnostics.profile_report import RunFacts, UtilSample, write_profile_report
from dogbreed.diagnostics.quiet import quiet_kineto
from dogbreed.diagnostics.torch_profiler import TOP_OPERATORS, OperatorTableProfiler
from dogbreed.training.data_wait import DataWaitTimer

logger = logging.getLogger(__name__)

PROFILE_SUBDIR = "profile"
PROFILER_FILENAME = "profile"


def profile_dir(config: TrainConfig) -> Path:
    return Path(config.output_dir) / PROFILE_SUBDIR


def build_profiler(config: TrainConfig) -> Profiler | None:
    """The Lightning profiler named by ``--profiler`` writing under ``<output-dir>/profile``; None when off."""
    kind = config.profiler
    if not kind:
        return None
    out = profile_dir(config)
    if kind == "simple":
        return SimpleProfiler(dirpath=out, filename=PROFILER_FILENAME, extended=True)
    if kind == "advanced":
        return AdvancedProfiler(dirpath=out, filename=PROFILER_FILENAME, line_count_restriction=0.5)
    if kind == "pytorch":
        quiet_kineto()
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
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=[f.name for f in fields(UtilSample)])
            writer.writeheader()
            writer.writerows(asdict(s) for s in self.samples)
        return path


class ProfilingCallback(DataWaitTimer):
    """Data-wait timing plus the system monitor for a fit; writes the CSVs, plots and the report on rank 0."""

    def __init__(self, out_dir: Path, *, interval_ms: int = 500, batch_size: int, num_workers: int,
                 profiler: str = "") -> None:
        super().__init__()
        self.out_dir = Path(out_dir)
        self.monitor = SystemMonitor(interval_ms)
        self.batch_size, self.num_workers, self.profiler = batch_size, num_workers, profiler
        self.report_path: Path | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.monitor.start()

    def write_csv(self, path: Path) -> Path:
        """``step_times.csv``: each timed step's data wait and duration (s)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["step", "data_wait_s", "step_s"])
            writer.writerows((i, round(w, 6), round(s, 6)) for i, (w, s) in enumerate(zip(self.waits_s, self.steps_s)))
        return path

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self.monitor.stop()

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        samples = self.monitor.stop()
        if not trainer.is_global_zero:
            return
        self.monitor.write_csv(self.out_dir / "utilisation.csv")
        self.write_csv(self.out_dir / "step_times.csv")
        facts = RunFacts(batch_size=self.batch_size, num_workers=self.num_workers, profiler=self.profiler,
                         device=str(pl_module.device), waits_s=self.waits_s, steps_s=self.steps_s)
        self.report_path = write_profile_report(self.out_dir, samples, facts)
        logger.info("profiler report: %s", self.report_path)


def profiling_callbacks(config: TrainConfig, num_workers: int) -> list[Callback]:
    """The utilisation/data-wait callback of a profiled run (``--profiler`` set); empty otherwise.

    ``num_workers`` is the resolved DataLoader worker count (the report advises on it).
    """
    if not config.profiler:
        return []
    return [ProfilingCallback(profile_dir(config), interval_ms=config.monitor_interval_ms,
                              batch_size=config.batch_size, num_workers=num_workers, profiler=config.profiler)]
