"""The PyTorch profiler of ``--profiler pytorch``: a Chrome trace of training steps and a top-operators table.

Built on Lightning's ``PyTorchProfiler``; the schedule subclass uses its ``ScheduleWrapper`` internals
(``pytorch_lightning.profilers.pytorch``, stable across Lightning 2.x).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Callable

import torch
from pytorch_lightning.profilers import PyTorchProfiler
from pytorch_lightning.profilers.pytorch import ScheduleWrapper
from torch.profiler import ProfilerAction

TOP_OPERATORS = 30
ANNOTATIONS = ("[pl]", "ProfilerStep")  # Lightning's and torch.profiler's own ranges, not operators


class TrainingStepSchedule(ScheduleWrapper):
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
    """Lightning's PyTorchProfiler whose fit trace covers training steps (:class:`TrainingStepSchedule`) and
    that also writes the top operators (self CPU/device time, calls) as CSV + text."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if isinstance(self._schedule, ScheduleWrapper):
            self._schedule = TrainingStepSchedule(self._schedule._schedule, fitting=self._fitting)
            self._profiler_kwargs["schedule"] = self._schedule

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
        if isinstance(self._schedule, TrainingStepSchedule) and self._schedule.validating_in_fit:
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
            write_operator_table(self.function_events.key_averages(), Path(self.dirpath), stage)
        return text


def _time(event: Any, *names: str) -> float:
    for name in names:  # torch >= 2.4 says "device", older releases "cuda"
        value = getattr(event, name, None)
        if value is not None:
            return float(value)
    return 0.0


def write_operator_table(averages: Any, out_dir: Path, stage: str, limit: int = TOP_OPERATORS) -> Path:
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
