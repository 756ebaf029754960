"""``profiler_report.md``: the bottleneck of a profiled run in plain words, with its plots.

Thresholds follow SageMaker Debugger's profiler rules (debugger-built-in-rules): BatchSize calls a
device under-used when the 95th percentile of CPU, GPU and GPU-memory utilisation are all below 70 %;
IOBottleneck/CPUBottleneck flag a problem when more than 50 % of the time is spent waiting. We call
data loading the bottleneck from 30 % on, because every waited millisecond is lost on a single device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from dogbreed.training.callbacks import DATA_WAIT_BOTTLENECK

UNDER_USED_P95 = 70.0  # BatchSize rule: cpu/gpu/gpu_memory_threshold_p95 default 70 (%)
REPORT_NAME = "profiler_report.md"


@dataclass
class UtilSample:
    """One reading of the machine. GPU fields are empty (None) without a GPU."""

    elapsed_s: float
    cpu_percent: float
    memory_percent: float
    process_rss_mb: float
    gpu_percent: float | None = None
    gpu_memory_percent: float | None = None
    process_cpu_percent: float | None = None  # this process alone, as a share of all cores


@dataclass
class RunFacts:
    batch_size: int
    num_workers: int
    profiler: str
    device: str
    waits_s: list[float] = field(default_factory=list)
    steps_s: list[float] = field(default_factory=list)

    @property
    def wait_fraction(self) -> float | None:
        total = sum(self.steps_s)
        return sum(self.waits_s) / total if total > 0 else None


def _p95(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.percentile(present, 95)) if present else None


@dataclass
class Findings:
    wait_fraction: float | None
    mean_step_ms: float | None
    cpu_p95: float | None
    process_cpu_p95: float | None
    memory_max: float | None
    gpu_p95: float | None
    gpu_memory_p95: float | None
    bottleneck: str
    batch_advice: str


def analyse(samples: Sequence[UtilSample], facts: RunFacts) -> Findings:
    """Numbers and the two plain-language conclusions: the bottleneck and the batch-size advice."""
    wait = facts.wait_fraction
    mean_step = 1000 * float(np.mean(facts.steps_s)) if facts.steps_s else None
    cpu = _p95([s.cpu_percent for s in samples])
    gpu = _p95([s.gpu_percent for s in samples])
    gpu_mem = _p95([s.gpu_memory_percent for s in samples])
    memory = max((s.memory_percent for s in samples), default=None)
    process = _p95([s.process_cpu_percent for s in samples])
    return Findings(wait, mean_step, cpu, process, memory, gpu, gpu_mem, _bottleneck(wait, gpu, facts),
                    _batch_advice(cpu, process, gpu, gpu_mem, facts))


def _percent(fraction: float) -> str:
    return f"{100 * fraction:.0f}%" if fraction >= 0.1 else f"{100 * fraction:.1f}%"


def _bottleneck(wait: float | None, gpu: float | None, facts: RunFacts) -> str:
    if wait is None:
        return ("Too few training steps to time data loading (it needs two batches in one epoch): "
                "profile a longer run.")
    share = _percent(wait)
    if wait >= DATA_WAIT_BOTTLENECK:
        where = ("images are decoded in the training process, --num-workers 0" if facts.num_workers == 0
                 else f"{facts.num_workers} DataLoader workers cannot keep up")
        return (f"Data loading: {share} of each step waits for data ({where}). "
                f"Raise --num-workers (now {facts.num_workers}) or make decoding cheaper.")
    if gpu is not None and gpu < UNDER_USED_P95:
        return (f"The GPU is under-used (p95 {gpu:.0f}%) although only {share} of a step waits for data: "
                "the step is bound by host-side work or too small a batch.")
    return f"Compute: {_percent(1 - wait)} of each step is forward/backward/optimizer; data waits only {share}."


def _batch_advice(cpu: float | None, process: float | None, gpu: float | None, gpu_mem: float | None,
                  facts: RunFacts) -> str:
    size = facts.batch_size
    if gpu is not None and gpu_mem is not None:
        if gpu < UNDER_USED_P95 and gpu_mem < UNDER_USED_P95:
            doublings = max(1, min(3, int(math.log2(UNDER_USED_P95 / max(gpu_mem, 1.0)))))
            return (f"The GPU is under-used (p95 utilisation {gpu:.0f}%, memory {gpu_mem:.0f}%): "
                    f"try --batch-size {size * 2 ** doublings} (now {size}).")
        return f"The GPU is busy (p95 utilisation {gpu:.0f}%, memory {gpu_mem:.0f}%): keep --batch-size {size}."
    if cpu is not None and cpu < UNDER_USED_P95:
        return (f"No GPU, and the CPU is under-used (p95 {cpu:.0f}%): try --batch-size {size * 2} (now {size}), "
                "or a smaller instance.")
    cpu_text = f"p95 {cpu:.0f}%" if cpu is not None else "not sampled"
    advice = f"The CPU is busy ({cpu_text}): keep --batch-size {size}."
    if cpu is not None and process is not None and process < cpu / 2:
        advice += f" Other processes take most of it (this run: p95 {process:.0f}%), so step times here are inflated."
    return advice


def _plot_utilisation(samples: Sequence[UtilSample], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.5))
    t = [s.elapsed_s for s in samples]
    ax.plot(t, [s.cpu_percent for s in samples], label="CPU % (machine)")
    ax.plot(t, [np.nan if s.process_cpu_percent is None else s.process_cpu_percent for s in samples],
            label="CPU % (this process)")
    ax.plot(t, [s.memory_percent for s in samples], label="memory %")
    if any(s.gpu_percent is not None for s in samples):
        ax.plot(t, [s.gpu_percent if s.gpu_percent is not None else np.nan for s in samples], label="GPU %")
    if any(s.gpu_memory_percent is not None for s in samples):
        ax.plot(t, [s.gpu_memory_percent if s.gpu_memory_percent is not None else np.nan for s in samples],
                label="GPU memory %")
    ax.set(xlabel="seconds since fit start", ylabel="%", ylim=(0, 105), title="System utilisation")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _plot_step_times(facts: RunFacts, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.5))
    index = np.arange(len(facts.steps_s))
    waits = 1000 * np.asarray(facts.waits_s)
    compute = 1000 * np.asarray(facts.steps_s) - waits
    ax.bar(index, waits, label="waiting for data", color="tab:red")
    ax.bar(index, compute, bottom=waits, label="compute", color="tab:blue")
    ax.set(xlabel="timed training step", ylabel="ms", title="Step time: data wait vs compute")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _fmt(value: float | None, unit: str = "%", scale: float = 1.0) -> str:
    return "n/a" if value is None else f"{value * scale:.1f}{unit}"


def _render_report(findings: Findings, facts: RunFacts, plots: Sequence[str], data_dir: str) -> str:
    lines = [
        "# Profiler report", "",
        f"**Bottleneck.** {findings.bottleneck}", "",
        f"**Batch size.** {findings.batch_advice}", "",
        "| measure | value |", "| --- | --- |",
        f"| device | {facts.device} |",
        f"| profiler | {facts.profiler or 'none'} |",
        f"| batch size / DataLoader workers | {facts.batch_size} / {facts.num_workers} |",
        f"| timed training steps | {len(facts.steps_s)} |",
        f"| mean step time | {_fmt(findings.mean_step_ms, ' ms')} |",
        f"| data-wait fraction of step time | {_fmt(findings.wait_fraction, '%', 100)} |",
        f"| CPU utilisation p95 (machine) | {_fmt(findings.cpu_p95)} |",
        f"| CPU utilisation p95 (this process) | {_fmt(findings.process_cpu_p95)} |",
        f"| memory max | {_fmt(findings.memory_max)} |",
        f"| GPU utilisation p95 | {_fmt(findings.gpu_p95)} |",
        f"| GPU memory p95 | {_fmt(findings.gpu_memory_p95)} |",
        "",
    ]
    lines += [f"![{Path(p).stem}]({p})" for p in plots]
    lines += ["", f"Raw data: `profile_run.json`, `utilisation.csv`, `step_times.csv` and the profiler's own output, "
                  f"in {data_dir}."]
    if facts.profiler == "pytorch":
        lines += ["", f"Kernel-level detail: the PyTorch profiler's trace (`*.pt.trace.json`, {data_dir}) opens in "
                      "TensorBoard (`tensorboard --logdir` on that dir, with the torch-tb-profiler plugin), Perfetto "
                      "or chrome://tracing."]
    return "\n".join(lines) + "\n"


def write_profile_report(out_dir: Path, samples: Sequence[UtilSample], facts: RunFacts, *,
                         data_dir: str = "this folder") -> Path:
    """Write the plots and ``profiler_report.md`` into ``out_dir``; returns the report path. ``data_dir`` says
    where the profile it was built from lies (a job's S3 prefix, an archive) when that is not ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = [_plot_utilisation(samples, out_dir / "utilisation.png").name]
    if facts.steps_s:
        plots.append(_plot_step_times(facts, out_dir / "step_times.png").name)
    report = out_dir / REPORT_NAME
    report.write_text(_render_report(analyse(samples, facts), facts, plots, data_dir))
    return report
