"""Diagnostics at their edges, fast: the monitor's interval floor, the batch-size advice at the 70% line, what a
source without profile data is said to hold, the profiler's fit-stage test, a debug report into a new nested dir."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from dogbreed.core.errors import ConfigError
from dogbreed.diagnostics import rule_report
from dogbreed.diagnostics.profile_data import no_profile_data
from dogbreed.diagnostics.profile_report import RunFacts, _batch_advice
from dogbreed.diagnostics.profiling import OperatorTableProfiler, SystemMonitor

HINT = ("run a profiled training first (python -m entry_points.profiled_train ..., or any training command with "
        "--profiler pytorch) and pass its --profile-dir (default <output-dir>/profile), the job's output.tar.gz, or "
        "its s3://.../<job-name>/tensorboard-output/ prefix")


def test_the_monitor_samples_every_10_ms_at_the_most():
    with pytest.raises(ConfigError) as caught:
        SystemMonitor(9)
    assert str(caught.value) == "--monitor-interval-ms 9: use at least 10 ms"
    assert SystemMonitor(10).interval_s == 0.01


FACTS = RunFacts(batch_size=32, num_workers=2, profiler="pytorch", device="cpu")


@pytest.mark.parametrize("cpu, advice", [
    (69.9, "No GPU, and the CPU is under-used (p95 70%): try --batch-size 64 (now 32), or a smaller instance."),
    (70.0, "The CPU is busy (p95 70%): keep --batch-size 32."),
])
def test_cpu_batch_advice_changes_at_70_percent(cpu, advice):
    assert _batch_advice(cpu, cpu, None, None, FACTS) == advice


@pytest.mark.parametrize("gpu, memory, advice", [
    (69.9, 69.9, "The GPU is under-used (p95 utilisation 70%, memory 70%): try --batch-size 64 (now 32)."),
    (69.9, 70.0, "The GPU is busy (p95 utilisation 70%, memory 70%): keep --batch-size 32."),
    (70.0, 10.0, "The GPU is busy (p95 utilisation 70%, memory 10%): keep --batch-size 32."),
    (20.0, 8.0, "The GPU is under-used (p95 utilisation 20%, memory 8%): try --batch-size 256 (now 32)."),
])
def test_gpu_batch_advice_needs_both_under_70_percent(gpu, memory, advice):
    assert _batch_advice(50.0, 50.0, gpu, memory, FACTS) == advice


@pytest.mark.parametrize("found, seen", [
    ([], "nothing"),
    (["f", "e", "d", "c", "b", "a"], "a, b, c, d, e, f"),
    (["g", "f", "e", "d", "c", "b", "a"], "a, b, c, d, e, f and 1 more"),
])
def test_a_source_without_profile_data_says_what_it_held(found, seen):
    assert str(no_profile_data("out/", found)) == (
        f"out/ holds no profile data (no profile_run.json; found {seen}): {HINT}")


@pytest.mark.parametrize("stage, fitting", [("fit", True), (SimpleNamespace(value="fit"), True),
                                            ("validate", False), (SimpleNamespace(value="test"), False), (None, False)])
def test_the_operator_profiler_knows_when_it_is_fitting(stage, fitting):
    assert OperatorTableProfiler._fitting(SimpleNamespace(_stage=stage)) is fitting  # type: ignore[arg-type]


def test_the_debug_report_goes_into_a_new_nested_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(rule_report, "load_trial", lambda path: "trial")
    monkeypatch.setattr(rule_report, "run_rules", lambda trial: [])
    monkeypatch.setattr(rule_report, "_loss_series", lambda trial: {})
    monkeypatch.setattr(rule_report, "_gradient_norms", lambda trial: {})
    out = tmp_path / "a" / "b" / "report"
    rows, plots = rule_report.write_debug_report("s3://bucket/trial", out)
    assert (rows, plots) == ([], [])
    assert (out / "debug_rules.json").read_text() == '{\n  "trial": "s3://bucket/trial",\n  "rules": []\n}\n'


@pytest.mark.parametrize("script, reading", [
    ('echo "57"', 57.0),            # nvidia-smi's csv,noheader,nounits answer for the device asked
    ('echo "n/a"', None),           # not a number: no reading, no crash
    ("exit 9", None),               # failed, printed nothing
])
def test_the_gpu_utilisation_is_read_from_nvidia_smis_output(tmp_path, monkeypatch, script, reading):
    from dogbreed.diagnostics import profiling

    fake = tmp_path / "nvidia-smi"
    fake.write_text(f'#!/bin/sh\necho "$@" > {tmp_path / "argv"}\n{script}\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.setattr(profiling.torch.cuda, "current_device", lambda: 3)
    assert profiling._nvidia_smi_utilisation() == reading
    assert (tmp_path / "argv").read_text().split() == [
        "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "--id=3"]


def _event(key, count, self_cpu, cpu_total, self_device=None, device_total=None, cuda=None):
    fields = {"key": key, "count": count, "self_cpu_time_total": self_cpu, "cpu_time_total": cpu_total}
    if self_device is not None:
        fields.update(self_device_time_total=self_device, device_time_total=device_total)
    if cuda is not None:  # an older torch's names
        fields.update(self_cuda_time_total=cuda, cuda_time_total=cuda)
    return SimpleNamespace(**fields)


def test_the_top_operators_are_sorted_by_device_then_cpu_time_without_the_profilers_own_ranges(tmp_path):
    import csv

    from dogbreed.diagnostics.profiling import ANNOTATIONS, _write_operator_table

    assert ANNOTATIONS == ("[pl]", "ProfilerStep")
    events = [_event("aten::addmm", 10, 1500.0, 2500.0, 0.0, 0.0),
              _event("[pl][profile]run_training_batch", 5, 9000.0, 9000.0, 0.0, 0.0),
              _event("aten::convolution", 40, 2250.0, 8000.0, 5125.0, 6000.0),
              _event("ProfilerStep#3", 1, 9500.0, 9500.0, 0.0, 0.0),
              _event("aten::relu", 40, 250.0, 250.0, cuda=125.0),
              _event("aten::copy_", 3, 3000.0, 3000.0)]
    path = _write_operator_table(events, tmp_path, "fit", limit=3)
    assert path == tmp_path / "fit-top_operators.csv"
    rows = list(csv.DictReader(path.open()))
    assert [(r["operator"], r["calls"], r["self_cpu_us"], r["self_device_us"]) for r in rows] == [
        ("aten::convolution", "40", "2250.0", "5125.0"), ("aten::relu", "40", "250.0", "125.0"),
        ("aten::copy_", "3", "3000.0", "0.0")]
    assert (tmp_path / "fit-top_operators.txt").read_text().splitlines() == [
        f"{'operator':<45} {'calls':>7} {'self CPU ms':>12} {'self device ms':>15}",
        f"{'aten::convolution':<45} {40:>7} {'2.25':>12} {'5.12':>15}",
        f"{'aten::relu':<45} {40:>7} {'0.25':>12} {'0.12':>15}",
        f"{'aten::copy_':<45} {3:>7} {'3.00':>12} {'0.00':>15}"]


def test_the_utilisation_plot_draws_each_reading_and_gaps_where_one_is_missing(tmp_path, monkeypatch):
    import math

    import matplotlib.pyplot as plt

    from dogbreed.diagnostics.profile_report import UtilSample, _plot_utilisation

    kept = []
    monkeypatch.setattr(plt, "close", kept.append)  # keep the figure to read its lines back
    samples = [UtilSample(0.5, 80.0, 41.0, 900.0, 55.0, 30.0, 20.0), UtilSample(1.0, 90.0, 42.0, 901.0)]
    _plot_utilisation(samples, tmp_path / "utilisation.png")
    (fig,) = kept
    drawn = {line.get_label(): [None if math.isnan(y) else y for y in line.get_ydata()]
             for line in fig.axes[0].get_lines()}
    assert drawn == {"CPU % (machine)": [80.0, 90.0], "CPU % (this process)": [20.0, None],
                     "memory %": [41.0, 42.0], "GPU %": [55.0, None], "GPU memory %": [30.0, None]}
    assert list(fig.axes[0].get_lines()[0].get_xdata()) == [0.5, 1.0]
    kept.clear()
    _plot_utilisation([UtilSample(0.5, 80.0, 41.0, 900.0)], tmp_path / "cpu_only.png")  # no GPU: no GPU lines
    assert [line.get_label() for line in kept[0].axes[0].get_lines()] == [
        "CPU % (machine)", "CPU % (this process)", "memory %"]


@pytest.mark.parametrize("reached_end, previous, action", [
    (False, "RECORD", "RECORD"),   # a window open when validation starts goes on across it
    (False, "WARMUP", "WARMUP"),
    (False, "NONE", "NONE"),       # validation never opens a window
    (True, "RECORD", "NONE"),      # the training schedule has ended: nothing more is recorded
    (True, "WARMUP", "NONE"),
])
def test_a_validation_step_inside_fit_never_moves_the_profilers_window(reached_end, previous, action):
    from torch.profiler import ProfilerAction

    from dogbreed.diagnostics.profiling import _TrainingStepSchedule

    asked = []
    schedule = _TrainingStepSchedule(lambda step: asked.append(step) or ProfilerAction.RECORD, fitting=lambda: True)
    schedule.pre_step("[Strategy]SingleDeviceStrategy.validation_step")
    schedule._training_step_reached_end = reached_end
    schedule._prev_schedule_action = getattr(ProfilerAction, previous)
    assert schedule(3) == getattr(ProfilerAction, action)
    assert asked == []  # the wrapped schedule is not consulted for a validation step


class _Process:
    def __init__(self, cpu: float, rss: int) -> None:
        self.cpu, self.rss = cpu, rss

    def cpu_percent(self, interval=None) -> float:
        assert interval is None  # since the last call: a sample never blocks the monitor's thread
        return self.cpu

    def memory_info(self) -> SimpleNamespace:
        return SimpleNamespace(rss=self.rss)


@pytest.mark.parametrize("process_cpu, cores, expected", [(150.0, 4, 37.5), (50.0, 3, 16.7), (500.0, 4, 100.0)])
def test_a_sample_counts_this_process_as_a_share_of_all_cores_clamped_at_100(monkeypatch, process_cpu, cores,
                                                                             expected):
    """psutil reads a process's CPU as a percentage of one core (150 = one and a half); the sample divides by the
    cores so it compares with the machine's reading, and clamps the tick rounding of short intervals."""
    from dogbreed.diagnostics import profiling
    monkeypatch.setattr(profiling, "_gpu_reading", lambda: (None, None))
    monitor = SystemMonitor(10)
    monitor._psutil = SimpleNamespace(cpu_percent=lambda interval=None: 63.5,
                                      virtual_memory=lambda: SimpleNamespace(percent=41.2))
    monitor._process, monitor._cores = _Process(process_cpu, 1234567890), cores
    sample = monitor._sample()
    assert (sample.cpu_percent, sample.memory_percent, sample.process_rss_mb) == (63.5, 41.2, 1177.4)
    assert sample.process_cpu_percent == expected
    assert sample.gpu_percent is None and sample.gpu_memory_percent is None


def test_a_utilisation_file_with_none_written_for_absent_readings_reads_them_as_absent(tmp_path):
    from dogbreed.diagnostics.profile_data import read_profile_data
    from tests.helpers.profile_files import write_profile_files
    write_profile_files(tmp_path)
    (tmp_path / "utilisation.csv").write_text(
        "elapsed_s,cpu_percent,memory_percent,process_rss_mb,gpu_percent,gpu_memory_percent,process_cpu_percent\n"
        "0.5,10.0,40.0,900.0,None,,12.5\n1.0,20.0,41.0,901.0, None ,None,None\n")
    samples, _ = read_profile_data(tmp_path)
    assert [(s.gpu_percent, s.gpu_memory_percent, s.process_cpu_percent) for s in samples] == [
        (None, None, 12.5), (None, None, None)]
    assert [(s.elapsed_s, s.cpu_percent, s.memory_percent, s.process_rss_mb) for s in samples] == [
        (0.5, 10.0, 40.0, 900.0), (1.0, 20.0, 41.0, 901.0)]
