"""Reports of a training run: metrics.json, per-class accuracy, the most confused breed pairs and the plots
(:mod:`dogbreed.training.plots`); and the summary printed at the end of a run.

The phases (data check, feature cache, fit, test, export) are timed by :class:`PhaseTimer`; the numbers
go into ``metrics.json`` and ``model_config.json`` (``timing``) and into the summary. Any callback of the
run with a ``summary_lines() -> list[str]`` method adds its lines to the summary (e.g. a data-wait line).
"""

from __future__ import annotations

import csv
import io
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import torch

from dogbreed.core.constants import METRICS_FILENAME, MOST_CONFUSED_FILENAME, PER_CLASS_FILENAME
from dogbreed.core.fileio import atomic_write, strict_json
from dogbreed.data.progress import format_duration
from dogbreed.training.plots import plot_confusion_matrix, plot_training_curves, plot_worst_predictions


@dataclass
class TestOutcome:
    """What testing produced: the confusion matrix (rows = true) and, when known in dataset order, per-image
    results (``loss``, ``target``, ``predicted``, ``predicted_probability``) with the image paths."""

    __test__ = False  # not a pytest class

    confusion: torch.Tensor
    samples: dict[str, torch.Tensor] = field(default_factory=dict)
    paths: Sequence[Path] = ()


def _write_metrics_json(output_dir: Path, history: list[dict[str, Any]], test: dict[str, float],
                       timing: dict[str, float] | None = None, extra: dict[str, Any] | None = None) -> Path:
    """``{"history": [...], "test": {...}, "timing": {...}}`` plus ``extra`` sections (calibration, abstention,
    tta)."""
    path = output_dir / METRICS_FILENAME
    payload: dict[str, Any] = {"history": history, "test": test}
    if timing is not None:
        payload["timing"] = timing
    payload.update(extra or {})
    text = strict_json(payload, indent=2) + "\n"  # no NaN
    atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))
    return path


def _write_csv(path: Path, rows: Iterable[Sequence[Any]]) -> Path:
    """A CSV written whole or not at all (a full disk leaves no half report)."""
    buffer = io.StringIO(newline="")
    csv.writer(buffer).writerows(rows)
    atomic_write(path, lambda handle: handle.write(buffer.getvalue().encode("utf-8")))
    return path


def per_class_accuracy(confusion: torch.Tensor) -> list[tuple[int, int, float]]:
    """(correct, total, accuracy) per true class from a confusion matrix (rows = true)."""
    rows = []
    for i in range(confusion.shape[0]):
        total = int(confusion[i].sum())
        correct = int(confusion[i, i])
        rows.append((correct, total, correct / total if total else float("nan")))
    return rows


def _write_per_class_csv(output_dir: Path, confusion: torch.Tensor, class_names: Sequence[str]) -> Path:
    rows = [[i, class_names[i], correct, total, f"{acc:.4f}"]
            for i, (correct, total, acc) in enumerate(per_class_accuracy(confusion))]
    return _write_csv(output_dir / PER_CLASS_FILENAME, [["index", "breed", "correct", "total", "accuracy"], *rows])


def most_confused_pairs(confusion: torch.Tensor) -> list[tuple[int, int, int, float]]:
    """(true, predicted, count, share of the true class) for every mistake made at least once, most frequent
    first (ties: larger share, then index order)."""
    totals = confusion.sum(dim=1)
    pairs = []
    for true, predicted in torch.nonzero(confusion, as_tuple=False).tolist():
        if true != predicted:
            count = int(confusion[true, predicted])
            pairs.append((true, predicted, count, count / int(totals[true])))
    return sorted(pairs, key=lambda p: (-p[2], -p[3], p[0], p[1]))


def _write_most_confused_csv(output_dir: Path, confusion: torch.Tensor, class_names: Sequence[str]) -> Path:
    rows = [[class_names[true], class_names[predicted], count, f"{share:.4f}"]
            for true, predicted, count, share in most_confused_pairs(confusion)]
    return _write_csv(output_dir / MOST_CONFUSED_FILENAME, [["true", "predicted", "count", "share"], *rows])


def write_reports(
    output_dir: Path, history: list[dict[str, Any]], test: dict[str, float], outcome: TestOutcome | None,
    class_names: Sequence[str], *, timing: dict[str, float] | None = None,
    extra: dict[str, Any] | None = None,
) -> list[Path]:
    """Every report of a run; without a test outcome (e.g. a tuning trial) only metrics.json and the curves."""
    output_dir.mkdir(parents=True, exist_ok=True)
    written = [_write_metrics_json(output_dir, history, test, timing, extra),
               plot_training_curves(output_dir, history, test)]
    if outcome is None:
        return written
    written += [
        plot_confusion_matrix(output_dir, outcome.confusion, class_names, test),
        _write_per_class_csv(output_dir, outcome.confusion, class_names),
        _write_most_confused_csv(output_dir, outcome.confusion, class_names),
    ]
    if outcome.samples and len(outcome.paths) == len(outcome.samples["loss"]):
        written.append(plot_worst_predictions(output_dir, outcome.samples, outcome.paths, class_names))
    return written


# --- the end-of-run summary ---------------------------------------------------------------------------------------

PHASE_LABELS = {
    "demo_data": "demo data",
    "download": "download",
    "data_check": "data check",
    "feature_cache": "feature cache",
    "fit": "fit",
    "test": "test",
    "export": "export + reports",
}


class PhaseTimer:
    """Wall-clock seconds per named phase (a phase timed twice adds up)."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self.seconds: dict[str, float] = {}
        self.start = clock()

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        began = self.clock()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + self.clock() - began

    def total(self) -> float:
        return self.clock() - self.start


@dataclass
class RunCounts:
    """What the phases processed: images per split, epochs run, backbone passes done by the feature cache."""

    images: dict[str, int] = field(default_factory=dict)
    epochs: int = 0  # trained by this process (a resumed run's earlier epochs are not in its time)
    resumed_after: int = 0  # epochs a checkpoint had done when this process resumed from it
    extracted_images: int = 0  # images x views run through the backbone for the feature cache (0: all hits)


def timing_record(timer: PhaseTimer, counts: RunCounts) -> dict[str, float]:
    """``{"data_check_s": ..., "fit_s": ..., "total_s": ..., "train_images_per_s": ...}``, rounded."""
    record = {f"{name}_s": round(seconds, 3) for name, seconds in timer.seconds.items()}
    record["total_s"] = round(timer.total(), 3)
    fit_s = timer.seconds.get("fit", 0.0)
    if fit_s > 0 and counts.epochs:
        record["train_images_per_s"] = round(counts.images.get("train", 0) * counts.epochs / fit_s, 2)
    cache_s = timer.seconds.get("feature_cache", 0.0)
    if cache_s > 0 and counts.extracted_images:
        record["feature_images_per_s"] = round(counts.extracted_images / cache_s, 2)
    return record


def _phase_detail(name: str, counts: RunCounts, timing: dict[str, float]) -> str:
    if name == "data_check":
        return ", ".join(f"{split} {n}" for split, n in counts.images.items()) + " images"
    if name == "feature_cache":
        if not counts.extracted_images:
            return "every split from the cache"
        return f"{counts.extracted_images} backbone passes, {timing.get('feature_images_per_s', 0):.1f} img/s"
    if name == "fit":
        resumed = f"; resumed after epoch {counts.resumed_after}" if counts.resumed_after else ""
        return f"{counts.epochs} epoch(s), {timing.get('train_images_per_s', 0):.1f} train img/s{resumed}"
    if name == "test":
        return f"{counts.images.get('test', 0)} images"
    return ""


def summary_lines(
    timer: PhaseTimer, counts: RunCounts, places: dict[str, Path | str], extra: Iterable[str] = (),
) -> list[str]:
    """The end-of-run summary: one line per phase with its duration and throughput, the total, any ``extra``
    lines (from callbacks), then where everything went."""
    timing = timing_record(timer, counts)
    lines = ["run summary:"]
    for name, seconds in timer.seconds.items():
        detail = _phase_detail(name, counts, timing)
        label = PHASE_LABELS.get(name, name.replace("_", " "))
        lines.append(f"  {label:<17}{format_duration(seconds):>8}" + (f"  ({detail})" if detail else ""))
    lines.append(f"  {'total':<17}{format_duration(timing['total_s']):>8}")
    lines.extend(f"  {line}" for line in extra)
    width = max((len(label) for label in places), default=0) + 1
    lines.extend(f"{label + ':':<{width}} {place}" for label, place in places.items())
    return lines


def callback_summary_lines(callbacks: Iterable[Any]) -> list[str]:
    """Lines from every callback that offers ``summary_lines()``."""
    lines: list[str] = []
    for callback in callbacks:
        offer = getattr(callback, "summary_lines", None)
        if callable(offer):
            lines.extend(str(line) for line in offer())
    return lines


def run_places(*, model_dir: Path, output_dir: Path, reports: Sequence[Path], cache_dir: Path | None,
               checkpoint_dir: Path | None) -> dict[str, Path | str]:
    """Where a run put things, for the end-of-run summary: ``reports`` are the files written, in order."""
    names = ", ".join(Path(path).name for path in reports)
    places: dict[str, Path | str] = {"model artifact": f"{model_dir}/ (model.pth, model_config.json)",
                                     "reports": f"{output_dir}/ ({names})"}
    if cache_dir is not None:
        places["feature cache"] = f"{cache_dir}/"
    if checkpoint_dir is not None:
        places["checkpoints"] = f"{checkpoint_dir}/"
    return places
