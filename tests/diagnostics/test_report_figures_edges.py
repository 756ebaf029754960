"""What the debugger and profiler reports show, computed on small hand-made inputs (no training, no files):
the loss series of each mode, the layers the gradient plot picks and the norm it plots, and a p95 over idle
(0 %) readings."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from tests.helpers.smdebug_policy import skip_module_without_smdebug

skip_module_without_smdebug()

from smdebug import modes  # noqa: E402

from dogbreed.diagnostics import rule_report  # noqa: E402
from dogbreed.diagnostics.profile_report import RunFacts, UtilSample, analyse  # noqa: E402


class _Tensor:
    """A tensor saved at the given global steps; ``modes`` maps a global step to (mode, mode step)."""

    def __init__(self, values: dict[int, Any], step_modes: dict[int, tuple[Any, int]]) -> None:
        self.values, self.step_modes = values, step_modes

    def steps(self, mode: Any = modes.GLOBAL) -> list[int]:
        if mode == modes.GLOBAL:
            return sorted(self.values)
        return [self.step_modes[s][1] for s in sorted(self.values) if self.step_modes[s][0] == mode]

    def value(self, step: int, mode: Any = modes.GLOBAL) -> np.ndarray:
        if mode != modes.GLOBAL:
            step = next(s for s, (m, n) in self.step_modes.items() if m == mode and n == step)
        return np.asarray(self.values[step])


class _Trial:
    def __init__(self, tensors: dict[str, _Tensor], losses: list[str]) -> None:
        self.tensors, self.losses = tensors, losses
        self.logger = logging.getLogger("fake-trial")

    def tensor_names(self, collection: str | None = None) -> list[str]:
        return list(self.losses) if collection == "losses" else list(self.tensors)

    def tensor(self, name: str) -> _Tensor:
        return self.tensors[name]


def test_the_loss_plot_has_a_train_and_an_eval_series_each_on_its_own_step_counter():
    # global steps 0 1 2 3 4: TRAIN 0, TRAIN 1, EVAL 0, TRAIN 2, EVAL 1
    step_modes = {0: (modes.TRAIN, 0), 1: (modes.TRAIN, 1), 2: (modes.EVAL, 0), 3: (modes.TRAIN, 2),
                  4: (modes.EVAL, 1)}
    loss = _Tensor({0: 2.0, 1: 1.5, 2: 1.8, 3: 1.0, 4: 1.2}, step_modes)
    trial = _Trial({"loss": loss}, ["loss"])
    assert rule_report._loss_series(trial) == {"TRAIN": ([0, 1, 2], [2.0, 1.5, 1.0]), "EVAL": ([0, 1], [1.8, 1.2])}


def test_the_gradient_plot_spreads_12_layers_over_the_network_and_plots_their_l2_norm():
    step_modes = {0: (modes.TRAIN, 0), 5: (modes.TRAIN, 1)}
    tensors = {f"gradient/layer{i:02d}.weight": _Tensor({0: [3.0, 4.0], 5: [i, 0.0]}, step_modes) for i in range(20)}
    tensors["gradient/layer00.bias"] = _Tensor({0: [1.0], 5: [1.0]}, step_modes)  # biases are not plotted
    tensors["CrossEntropyLoss_output_0"] = _Tensor({0: 1.0, 5: 1.0}, step_modes)
    norms = rule_report._gradient_norms(_Trial(tensors, ["CrossEntropyLoss_output_0"]))
    # 20 weight gradients -> 12 at round(linspace(0, 19, 12)): 0 2 3 5 7 9 10 12 14 16 17 19 (first and last kept)
    picked = [0, 2, 3, 5, 7, 9, 10, 12, 14, 16, 17, 19]
    assert list(norms) == [f"layer{i:02d}.weight" for i in picked]
    # ||(3, 4)|| = 5 at step 0 (a mean |g| would be 3.5); ||(i, 0)|| = i at step 5
    assert norms["layer19.weight"] == ([0, 5], [5.0, 19.0])
    assert all(norms[f"layer{i:02d}.weight"] == ([0, 5], [5.0, float(i)]) for i in picked)


def test_twelve_weight_gradients_or_fewer_are_all_plotted():
    step_modes = {0: (modes.TRAIN, 0)}
    tensors = {f"gradient/l{i}.weight": _Tensor({0: [0.0, -2.0]}, step_modes) for i in range(12)}
    norms = rule_report._gradient_norms(_Trial(tensors, []))
    assert list(norms) == [f"l{i}.weight" for i in range(12)]
    assert all(v == ([0], [2.0]) for v in norms.values())  # ||(0, -2)|| = 2


def test_an_idle_gpu_reads_p95_0_percent_not_n_a():
    """0 % readings are readings: a GPU that sat idle the whole run has a p95 of 0, not "not sampled"."""
    samples = [UtilSample(elapsed_s=t, cpu_percent=0.0, memory_percent=20.0, process_rss_mb=100.0,
                          gpu_percent=0.0, gpu_memory_percent=0.0, process_cpu_percent=0.0) for t in range(5)]
    facts = RunFacts(batch_size=16, num_workers=2, profiler="simple", device="cuda:0", waits_s=[0.1, 0.1],
                     steps_s=[1.0, 1.0])
    findings = analyse(samples, facts)
    assert (findings.cpu_p95, findings.process_cpu_p95, findings.gpu_p95, findings.gpu_memory_p95) == (0, 0, 0, 0)
    # both under 70 %: the memory is at the 1 % floor, log2(70) = 6.1 doublings, at most 3: 16 * 8
    assert findings.batch_advice == ("The GPU is under-used (p95 utilisation 0%, memory 0%): try --batch-size 128 "
                                     "(now 16).")
    assert findings.bottleneck == ("The GPU is under-used (p95 0%) although only 10% of a step waits for data: the "
                                   "step is bound by host-side work or too small a batch.")


def _facts(wait_s: float, workers: int) -> RunFacts:
    return RunFacts(batch_size=32, num_workers=workers, profiler="", device="cpu", waits_s=[wait_s], steps_s=[1.0])


def test_data_loading_is_the_bottleneck_from_30_percent_of_the_step_on():
    samples = [UtilSample(elapsed_s=0.0, cpu_percent=90.0, memory_percent=20.0, process_rss_mb=100.0)]
    assert analyse(samples, _facts(0.3, 0)).bottleneck == (
        "Data loading: 30% of each step waits for data (images are decoded in the training process, --num-workers 0)."
        " Raise --num-workers (now 0) or make decoding cheaper.")
    assert analyse(samples, _facts(0.3, 4)).bottleneck == (
        "Data loading: 30% of each step waits for data (4 DataLoader workers cannot keep up). Raise --num-workers "
        "(now 4) or make decoding cheaper.")
    assert analyse(samples, _facts(0.29, 4)).bottleneck == (
        "Compute: 71% of each step is forward/backward/optimizer; data waits only 29%.")


def test_other_processes_are_named_only_when_this_run_has_under_half_the_busy_cpu():
    from dogbreed.diagnostics.profile_report import _batch_advice

    facts = _facts(0.1, 2)
    assert _batch_advice(90.0, 45.0, None, None, facts) == "The CPU is busy (p95 90%): keep --batch-size 32."
    assert _batch_advice(90.0, 44.0, None, None, facts) == (
        "The CPU is busy (p95 90%): keep --batch-size 32. Other processes take most of it (this run: p95 44%), so "
        "step times here are inflated.")


def test_the_mean_step_time_is_the_mean_of_the_timed_steps_in_ms():
    facts = RunFacts(batch_size=8, num_workers=0, profiler="", device="cpu", waits_s=[0.0, 0.0, 0.0],
                     steps_s=[0.1, 0.1, 0.4])
    assert round(analyse([], facts).mean_step_ms, 9) == 200.0  # (100 + 100 + 400) / 3; the median would be 100


def test_a_wait_share_under_10_percent_keeps_one_decimal():
    samples = [UtilSample(elapsed_s=0.0, cpu_percent=90.0, memory_percent=20.0, process_rss_mb=100.0)]
    assert analyse(samples, _facts(0.05, 2)).bottleneck == (
        "Compute: 95% of each step is forward/backward/optimizer; data waits only 5.0%.")
    assert analyse(samples, _facts(0.004, 2)).bottleneck == (
        "Compute: 100% of each step is forward/backward/optimizer; data waits only 0.4%.")


def test_the_step_time_plot_stacks_compute_on_top_of_the_wait(tmp_path, monkeypatch):
    """Each bar is the whole step: the red part the data wait, the blue part the rest (step - wait), in ms."""
    from matplotlib.axes import Axes

    from dogbreed.diagnostics.profile_report import _plot_step_times

    bars: list[tuple[str, list[float], list[float] | None]] = []
    real_bar = Axes.bar

    def spy_bar(self, x, height, *args, **kwargs):
        bottom = kwargs.get("bottom")
        bars.append((kwargs["label"], [round(float(h), 6) for h in height],
                     None if bottom is None else [round(float(b), 6) for b in bottom]))
        return real_bar(self, x, height, *args, **kwargs)

    monkeypatch.setattr(Axes, "bar", spy_bar)
    facts = RunFacts(batch_size=8, num_workers=0, profiler="", device="cpu", waits_s=[0.1, 0.05],
                     steps_s=[0.3, 0.4])
    assert _plot_step_times(facts, tmp_path / "step_times.png").is_file()
    assert bars == [("waiting for data", [100.0, 50.0], None), ("compute", [200.0, 350.0], [100.0, 50.0])]


def test_the_rules_table_shows_step_0_as_0_and_a_missing_step_as_a_dash():
    from dogbreed.diagnostics.rule_report import RuleResult, format_table

    table = format_table([RuleResult("Overfit", "IssuesFound", 0, "at the first step"),
                          RuleResult("Overtraining", "NotEvaluated", None, "no losses")])
    header = "rule" + " " * 23 + "status" + " " * 9 + "  step  detail"
    assert table.splitlines() == [
        header, "-" * 56,
        "Overfit" + " " * 20 + "IssuesFound" + " " * 4 + "     0  at the first step",
        "Overtraining" + " " * 15 + "NotEvaluated" + " " * 3 + "     -  no losses",
    ]


def test_ten_gradient_lines_take_the_ten_colour_cycle_and_eleven_take_tab20():
    from matplotlib.colors import to_hex

    ten, eleven = rule_report._colours(10), rule_report._colours(11)
    # tab10: blue, orange, green ...; tab20 pairs each with its light shade: blue, light blue, orange ...
    assert [to_hex(c) for c in ten[:3]] == ["#1f77b4", "#ff7f0e", "#2ca02c"]
    assert [to_hex(c) for c in eleven[:3]] == ["#1f77b4", "#aec7e8", "#ff7f0e"]
    assert len({to_hex(c) for c in ten}) == 10 and len({to_hex(c) for c in eleven}) == 11
