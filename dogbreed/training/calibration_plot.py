"""The reliability diagram (``calibration.png``): accuracy against confidence on the test split, before and
after temperature scaling, with each one's ECE."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: never needs a display
import matplotlib.pyplot as plt
import torch

from dogbreed.core.calibration import ECE_BINS, calibrated_probabilities, expected_calibration_error, reliability_bins
from dogbreed.core.constants import CALIBRATION_FILENAME
from dogbreed.training.report_plots import save_figure


def plot_reliability(output_dir: Path, logits: torch.Tensor, labels: torch.Tensor, temperature: float) -> Path:
    """Two panels (T = 1 and the fitted T): per-bin accuracy bars, the diagonal, and the bin counts."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5), sharey=True)
    for ax, (title, t) in zip(axes, (("before scaling (T = 1)", 1.0), (f"after scaling (T = {temperature:.3g})",
                                                                       temperature))):
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
        for centre, row in zip(centres, rows):
            if row["count"]:
                ax.text(centre, 0.01, str(row["count"]), ha="center", va="bottom", fontsize=6, rotation=90)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence (top-1 probability)")
        ax.set_title(f"{title}: ECE {ece:.3f}")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy")
    axes[0].legend(loc="upper left", fontsize=8)
    fig.suptitle(f"test split reliability ({int(labels.numel())} images, {ECE_BINS} bins; numbers: images per bin)")
    return save_figure(fig, Path(output_dir) / CALIBRATION_FILENAME)
