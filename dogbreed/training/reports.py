"""Reports of a training run: metrics.json, training curves, confusion matrix, per-class accuracy."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")  # headless: never needs a display
import matplotlib.pyplot as plt
import torch

from dogbreed.core.constants import CONFUSION_FILENAME, CURVES_FILENAME, METRICS_FILENAME, PER_CLASS_FILENAME


def write_metrics_json(output_dir: Path, history: list[dict[str, Any]], test: dict[str, float],
                       extra: dict[str, Any] | None = None) -> Path:
    """``{"history": [...], "test": {...}}`` plus ``extra`` sections (calibration, abstention, tta)."""
    path = output_dir / METRICS_FILENAME
    payload = {"history": history, "test": test, **(extra or {})}
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return path


def plot_training_curves(output_dir: Path, history: list[dict[str, Any]]) -> Path:
    epochs = [row["epoch"] for row in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for key, ax in (("loss", ax_loss), ("acc", ax_acc)):
        for stage in ("train", "val"):
            values = [row.get(f"{stage}_{key}") for row in history]
            if any(v is not None for v in values):
                ax.plot(epochs, values, marker="o", label=f"{stage} {key}")
        ax.set_xlabel("epoch")
        ax.set_title("loss (per-sample mean)" if key == "loss" else "top-1 accuracy")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path = output_dir / CURVES_FILENAME
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_confusion_matrix(output_dir: Path, confusion: torch.Tensor, class_names: Sequence[str]) -> Path:
    matrix = confusion.float()
    normalised = matrix / matrix.sum(dim=1, keepdim=True).clamp(min=1)
    n = len(class_names)
    size = min(4 + n * 0.35, 40)
    fig, ax = plt.subplots(figsize=(size, size))
    image = ax.imshow(normalised.numpy(), cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, label="fraction of true class")
    if n <= 40:
        ax.set_xticks(range(n), labels=class_names, rotation=90)
        ax.set_yticks(range(n), labels=class_names)
    ax.set_xlabel("predicted breed")
    ax.set_ylabel("true breed")
    ax.set_title("test confusion matrix (row-normalised)")
    fig.tight_layout()
    path = output_dir / CONFUSION_FILENAME
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def per_class_accuracy(confusion: torch.Tensor) -> list[tuple[int, int, float]]:
    """(correct, total, accuracy) per true class from a confusion matrix (rows = true)."""
    rows = []
    for i in range(confusion.shape[0]):
        total = int(confusion[i].sum())
        correct = int(confusion[i, i])
        rows.append((correct, total, correct / total if total else float("nan")))
    return rows


def write_per_class_csv(output_dir: Path, confusion: torch.Tensor, class_names: Sequence[str]) -> Path:
    path = output_dir / PER_CLASS_FILENAME
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["index", "breed", "correct", "total", "accuracy"])
        for i, (correct, total, acc) in enumerate(per_class_accuracy(confusion)):
            writer.writerow([i, class_names[i], correct, total, f"{acc:.4f}"])
    return path


def write_reports(
    output_dir: Path, history: list[dict[str, Any]], test: dict[str, float],
    confusion: torch.Tensor, class_names: Sequence[str], extra: dict[str, Any] | None = None,
) -> list[Path]:
    output_dir.mkdir(parents=True, exist_ok=True)
    return [
        write_metrics_json(output_dir, history, test, extra),
        plot_training_curves(output_dir, history),
        plot_confusion_matrix(output_dir, confusion, class_names),
        write_per_class_csv(output_dir, confusion, class_names),
    ]
