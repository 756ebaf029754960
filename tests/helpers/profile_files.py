"""A profiled run's output, written by hand (not by the code under test), with the report it must give.

Four timed steps of 100 ms, each waiting 62 ms for data, with 2 DataLoader workers; the machine's CPU reads 10, 20,
..., 100 % (p95 95.5 %), memory 40..49 %, the GPU 30 % busy and 20 % full.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

RUN_FACTS = {"format": 1, "batch_size": 16, "num_workers": 2, "profiler": "pytorch", "device": "cuda:0",
             "monitor_interval_ms": 500}
STEP_TIMES = "step,data_wait_s,step_s\n" + "".join(f"{i},0.062,0.1\n" for i in range(4))
UTILISATION = ("elapsed_s,cpu_percent,memory_percent,process_rss_mb,gpu_percent,gpu_memory_percent,"
               "process_cpu_percent\n" + "".join(f"{0.5 * i},{10.0 * (i + 1)},{40.0 + i},900.0,30.0,20.0,12.5\n"
                                                 for i in range(10)))

BOTTLENECK = ("Data loading: 62% of each step waits for data (2 DataLoader workers cannot keep up). "
              "Raise --num-workers (now 2) or make decoding cheaper.")
BATCH_ADVICE = "The GPU is under-used (p95 utilisation 30%, memory 20%): try --batch-size 32 (now 16)."
TABLE_ROWS = (
    "| device | cuda:0 |",
    "| profiler | pytorch |",
    "| batch size / DataLoader workers | 16 / 2 |",
    "| timed training steps | 4 |",
    "| mean step time | 100.0 ms |",
    "| data-wait fraction of step time | 62.0% |",
    "| CPU utilisation p95 (machine) | 95.5% |",
    "| CPU utilisation p95 (this process) | 12.5% |",
    "| memory max | 49.0% |",
    "| GPU utilisation p95 | 30.0% |",
    "| GPU memory p95 | 20.0% |",
)


def write_profile_files(profile_dir: Path, *, trace_bytes: int = 0) -> Path:
    """The three report inputs (and, with ``trace_bytes``, a stand-in PyTorch profiler trace) in ``profile_dir``."""
    profile_dir.mkdir(parents=True, exist_ok=True)
    (profile_dir / "profile_run.json").write_text(json.dumps(RUN_FACTS))
    (profile_dir / "step_times.csv").write_text(STEP_TIMES)
    (profile_dir / "utilisation.csv").write_text(UTILISATION)
    if trace_bytes:
        (profile_dir / "fit-profile.1765000000.pt.trace.json").write_text(" " * trace_bytes)
    return profile_dir


def write_job_output_archive(path: Path, work: Path) -> Path:
    """A job's ``output.tar.gz``: what ``SM_OUTPUT_DATA_DIR`` held, i.e. metrics and ``profile/``."""
    data = work / "output-data"
    write_profile_files(data / "profile")
    (data / "metrics.json").write_text('{"test_acc": 0.5}')
    with tarfile.open(path, "w:gz") as tar:
        for item in sorted(data.rglob("*")):
            tar.add(item, arcname=item.relative_to(data).as_posix(), recursive=False)
    return path


def check_report(report: str) -> None:
    """The report built from :func:`write_profile_files`' data says what those numbers mean, exactly."""
    assert report.startswith("# Profiler report\n")
    assert f"**Bottleneck.** {BOTTLENECK}\n" in report
    assert f"**Batch size.** {BATCH_ADVICE}\n" in report
    for row in TABLE_ROWS:
        assert f"\n{row}\n" in report, row
    assert "![utilisation](utilisation.png)" in report and "![step_times](step_times.png)" in report
