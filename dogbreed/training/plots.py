"""Every plot of a run's reports, readable from 3 to 133 breeds: training curves (loss, top-1/top-5, learning
rate), the confusion matrix (all classes when few, else the most-confused ones, labelled), a gallery of the test
images with the highest loss, and the reliability diagram (``calibration.png``: accuracy against confidence on the
test split, before and after temperature scaling, with each one's ECE). One :func:`save_figure` writes them all."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")  # headless: never needs a display
import matplotlib.pyplot as plt
import torch
from matplotlib.ticker import MaxNLocator

from dogbreed.core.calibration import ECE_BINS, calibrated_probabilities, expected_calibration_error, reliability_bins
from dogbreed.core.constants import (
    CALIBRATION_FILENAME,
    CONFUSION_FILENAME,
    CURVES_FILENAME,
    WORST_PREDICTIONS_FILENAME,
)
from dogbreed.core.fileio import atomic_write
from dogbreed.core.images import open_image

MAX_CONFUSION_CLASSES = 30  # above this, the plot shows the classes most involved in mistakes
WORST_SHOWN = 16
GALLERY_COLUMNS = 4
LABEL_CHARS = 24


def save_figure(fig: Any, path: Path) -> Path:
    """Lay out, write at 100 dpi (figsize in inches x 100 = pixels) and free a report figure."""
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=100, format=Path(path).suffix.lstrip(".") or "png")
    plt.close(fig)
    atomic_write(Path(path), lambda handle: handle.write(buffer.getvalue()))  # whole or not at all
    return path


def _short(name: str, limit: int = LABEL_CHARS) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def _scores_title(test: dict[str, float]) -> str:
    """``test top-1 0.853, top-5 0.970`` (empty when the run was not tested)."""
    parts = [f"{label} {test[key]:.3f}" for key, label in (("acc", "top-1"), ("acc_top5", "top-5")) if key in test]
    return "test " + ", ".join(parts) if parts else ""


def plot_training_curves(output_dir: Path, history: list[dict[str, Any]], test: dict[str, float]) -> Path:
    """Loss, top-1 and top-5 accuracy per epoch (train and validation), and the head's learning rate."""
    epochs = [row["epoch"] for row in history]
    fig, (ax_loss, ax_acc, ax_lr) = plt.subplots(1, 3, figsize=(15, 4.2))
    # Validation drawn with hollow, larger markers over train's filled ones: curves that coincide (top-5 at 1.0)
    # both stay visible.
    series = {
        ax_loss: [("train_loss", "train loss", "-", "o"), ("val_loss", "val loss", "-", "s")],
        ax_acc: [("train_acc", "train top-1", "-", "o"), ("val_acc", "val top-1", "-", "s"),
                 ("train_acc_top5", "train top-5", "--", "o"), ("val_acc_top5", "val top-5", "--", "s")],
        ax_lr: [("lr", "head lr (end of epoch)", "-", "o")],
    }
    for ax, lines in series.items():
        for key, label, style, marker in lines:
            values = [row.get(key) for row in history]
            if any(v is not None for v in values):
                hollow = {"markerfacecolor": "none", "markersize": 9} if marker == "s" else {}
                ax.plot(epochs, [math.nan if v is None else v for v in values], style, marker=marker, label=label,
                        **hollow)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole: no 1.5 tick
        ax.grid(alpha=0.3)
        if ax.lines:  # below the axis: the legend never covers a curve, no entry is hidden by one
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=8, frameon=False)
    ax_loss.set_title("loss (per-sample mean)")
    ax_acc.set_title("accuracy")
    ax_acc.set_ylim(0, 1.02)
    ax_lr.set_title("learning rate")
    ax_lr.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    title = _scores_title(test)
    if title:
        fig.suptitle(title)
    return save_figure(fig, output_dir / CURVES_FILENAME)


def confused_classes(confusion: torch.Tensor, limit: int = MAX_CONFUSION_CLASSES) -> list[int]:
    """Every class (index order) when there are at most ``limit``; else the ``limit`` classes involved in the
    most mistakes (as true or as predicted class), most involved first."""
    n = confusion.shape[0]
    if n <= limit:
        return list(range(n))
    mistakes = confusion.clone().float()
    mistakes.fill_diagonal_(0)
    involvement = (mistakes.sum(dim=0) + mistakes.sum(dim=1)).tolist()
    return sorted(range(n), key=lambda i: (-involvement[i], i))[:limit]


def plot_confusion_matrix(output_dir: Path, confusion: torch.Tensor, class_names: Sequence[str],
                          test: dict[str, float]) -> Path:
    """Row-normalised confusion matrix with breed names and counts; above ``MAX_CONFUSION_CLASSES`` classes
    only the most-confused ones (rows still normalised by the full class totals)."""
    shown = confused_classes(confusion)
    matrix = confusion.float()
    totals = matrix.sum(dim=1).clamp(min=1)
    sub = matrix[shown][:, shown]
    normalised = sub / totals[shown].unsqueeze(1)
    k = len(shown)
    size = max(5.0, 3.0 + 0.32 * k)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    image = ax.imshow(normalised.numpy(), cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of the true breed's test images")
    labels = [_short(class_names[i]) for i in shown]
    ax.set_xticks(range(k), labels=labels, rotation=90, fontsize=8)
    ax.set_yticks(range(k), labels=labels, fontsize=8)
    for row in range(k):
        for col in range(k):
            count = int(sub[row, col])
            if count:
                dark = float(normalised[row, col]) > 0.5
                ax.text(col, row, str(count), ha="center", va="center", fontsize=7,
                        color="white" if dark else "black")
    ax.set_xlabel("predicted breed")
    ax.set_ylabel("true breed")
    scope = (f"the {k} most-confused of {len(class_names)} breeds" if k < len(class_names)
             else f"{len(class_names)} breeds")
    title = _scores_title(test)
    ax.set_title(f"test confusion matrix, {scope}" + (f"\n{title}" if title else ""))
    return save_figure(fig, output_dir / CONFUSION_FILENAME)


def worst_indices(losses: torch.Tensor, limit: int = WORST_SHOWN) -> list[int]:
    """Indices of the highest losses, highest first (ties: lower index first)."""
    order = sorted(range(len(losses)), key=lambda i: (-float(losses[i]), i))
    return order[:limit]


def _thumbnail(path: Path, size: int = 160) -> Any:
    try:
        image = open_image(path, draft_size=(size, size))
    except Exception:  # noqa: BLE001 - a gallery tile must never fail the report; the tile says so
        return None
    image.thumbnail((size, size))
    return image


def image_label(path: Path, limit: int = 34) -> str:
    """``001.Affenpinscher/img_000.jpg``: file names repeat across class folders, so the folder is part of the
    name; a long folder is shortened first, the file name kept whole when it fits."""
    name = _short(path.name, limit)
    room = limit - len(name) - 1
    return f"{_short(path.parent.name, room)}/{name}" if path.parent.name and room >= 4 else name


def plot_worst_predictions(output_dir: Path, samples: dict[str, torch.Tensor], paths: Sequence[Path],
                           class_names: Sequence[str], limit: int = WORST_SHOWN) -> Path:
    """The test images with the highest loss: image, true breed, predicted breed with its probability."""
    chosen = worst_indices(samples["loss"], limit)
    columns = min(GALLERY_COLUMNS, max(1, len(chosen)))
    rows = max(1, math.ceil(len(chosen) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(3.3 * columns, 3.6 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, index in zip(axes.flat, chosen):
        image = _thumbnail(paths[index])
        if image is not None:
            ax.imshow(image)
        else:
            ax.text(0.5, 0.5, "(cannot read)", ha="center", va="center")
        true, predicted = int(samples["target"][index]), int(samples["predicted"][index])
        wrong = true != predicted
        ax.set_title(f"{image_label(Path(paths[index]))}\ntrue: {_short(class_names[true])}\n"
                     f"pred: {_short(class_names[predicted])} {float(samples['predicted_probability'][index]):.2f}",
                     fontsize=8, color="firebrick" if wrong else "black")
    fig.suptitle(f"the {len(chosen)} test images with the highest loss (red: wrong breed)")
    return save_figure(fig, output_dir / WORST_PREDICTIONS_FILENAME)


def plot_reliability(output_dir: Path, logits: torch.Tensor, labels: torch.Tensor, temperature: float) -> Path:
    """Two panels (T = 1 and the served T, titled "not applied" when that is 1): per-bin accuracy bars, the
    diagonal, and the bin counts."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5), sharey=True)
    served = f"after scaling (T = {temperature:.3g})" if temperature != 1.0 else "served: T = 1 (not applied)"
    for ax, (title, t) in zip(axes, (("before scaling (T = 1)", 1.0), (served, temperature))):
        probabilities = calibrated_probabilities(logits, t)
        rows = reliability_bins(probabilities, labels, ECE_BINS)
        ece = expected_calibration_error(probabilities, labels, ECE_BINS)
        width = 1.0 / ECE_BINS
        centres = [row["lower"] + width / 2 for row in rows]
        filled = [(c, row) for c, row in zip(centres, rows) if row["count"]]
        ax.bar([c for c, _ in filled], [row["accuracy"] for _, row in filled], width=width * 0.95,
               color="tab:blue", alpha=0.8, label="accuracy")
        ax.vlines([c for c, _ in filled], [min(r["accuracy"], r["confidence"]) for _, r in filled],
                  [max(r["accuracy"], r["confidence"]) for _, r in filled], color="tab:red", linewidth=2,
                  label="gap to mean confidence")
        ax.plot([c for c, _ in filled], [r["confidence"] for _, r in filled], "o", color="tab:red", markersize=4)
        ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
        empty = [c for c, row in zip(centres, rows) if not row["count"]]
        for centre in empty:  # no images: a hatched grey bin, not a gap that looks like missing data
            ax.axvspan(centre - width / 2, centre + width / 2, facecolor="0.92", hatch="//", edgecolor="0.75",
                       linewidth=0, label="empty bin (no images)" if centre == empty[0] else None)
        for centre, row in zip(centres, rows):
            ax.text(centre, 0.02, str(row["count"]), ha="center", va="bottom", fontsize=8,
                    color="black" if row["count"] else "0.45")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence (top-1 probability)")
        ax.set_title(f"{title}: ECE {ece:.3f}")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy")
    for ax in axes:  # each panel names what it shows (an empty bin may be in one only)
        ax.legend(loc="upper left", fontsize=8)
    fig.suptitle(f"test split reliability ({int(labels.numel())} images, {ECE_BINS} bins; numbers: images per bin)")
    return save_figure(fig, Path(output_dir) / CALIBRATION_FILENAME)


BATCH_FILENAME = "batch.png"
BATCH_SHOWN = 16


def plot_batch(output_dir: Path, images: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str], *,
               mean: Sequence[float], std: Sequence[float]) -> Path:
    """``batch.png`` (``--show-batch``): up to 16 augmented training inputs (N, C, H, W, normalised) as the network
    sees them, un-normalised for display, each titled with its breed."""
    shown = min(BATCH_SHOWN, len(images))
    columns = min(GALLERY_COLUMNS, shown)
    rows = math.ceil(shown / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.4 * columns, 2.6 * rows), squeeze=False)
    mean_t, std_t = torch.tensor(mean).view(-1, 1, 1), torch.tensor(std).view(-1, 1, 1)
    for index, axis in enumerate(axes.flat):
        axis.axis("off")
        if index < shown:
            pixels = (images[index].float().cpu() * std_t + mean_t).clamp(0, 1).permute(1, 2, 0).numpy()
            axis.imshow(pixels)
            axis.set_title(_short(class_names[int(labels[index])]), fontsize=9)
    fig.suptitle(f"training inputs after augmentation ({images.shape[-1]} px)")
    return save_figure(fig, Path(output_dir) / BATCH_FILENAME)
