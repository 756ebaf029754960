"""The plots read through what they draw (matplotlib artists), not pixels: whole epochs on the axis, no legend
entry hidden, image titles that tell classes apart, readable bin counts with empty bins marked, one colour per
layer, TRAIN and EVAL on their own step counters."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import pytest
import torch
from PIL import Image

from dogbreed.diagnostics.rule_report import gradient_figure, loss_figure
from dogbreed.training import plots

matplotlib.use("Agg")


@pytest.fixture
def drawn(monkeypatch):
    """The figures the report functions make, kept open (the file is still written)."""
    figures = []

    def keep(fig, path: Path) -> Path:
        fig.tight_layout()
        fig.savefig(path, dpi=50)
        figures.append(fig)
        return path

    monkeypatch.setattr(plots, "save_figure", keep)
    return figures


HISTORY = [{"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.1 / e, "train_acc": 0.3 * e, "val_acc": 0.3 * e,
            "val_acc_top5": 1.0, "train_acc_top5": 1.0, "lr": 1e-3} for e in (1, 2, 3)]


def test_training_curves_have_whole_epoch_ticks_and_every_legend_entry_clear_of_the_curves(tmp_path, drawn):
    plots.plot_training_curves(tmp_path, HISTORY, {"acc": 0.9})
    [fig] = drawn
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    loss, acc, lr = fig.axes[:3]
    for ax in (loss, acc, lr):
        visible = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert visible == [1.0, 2.0, 3.0]
        legend = ax.get_legend()
        below = legend.get_window_extent(renderer).y1 <= ax.get_window_extent(renderer).y0
        assert below, "the legend overlaps the plotting area"
    assert [t.get_text() for t in acc.get_legend().get_texts()] == [
        "train top-1", "val top-1", "train top-5", "val top-5"]
    top5 = {line.get_label(): line for line in acc.lines if "top-5" in line.get_label()}
    # both at 1.0: the validation markers are larger and hollow, so the train curve shows through
    assert top5["val top-5"].get_markerfacecolor() == "none"
    assert top5["val top-5"].get_markersize() > top5["train top-5"].get_markersize()


def test_worst_prediction_titles_name_the_class_folder(tmp_path, drawn):
    paths = []
    for folder in ("001.Affenpinscher", "002.Afghan_hound"):
        (tmp_path / folder).mkdir()
        Image.new("RGB", (8, 8)).save(tmp_path / folder / "img_000.jpg")
        paths.append(tmp_path / folder / "img_000.jpg")
    samples = {"loss": torch.tensor([2.0, 1.0]), "target": torch.tensor([0, 1]), "predicted": torch.tensor([1, 1]),
               "predicted_probability": torch.tensor([0.7, 0.6])}
    plots.plot_worst_predictions(tmp_path, samples, paths, ["Affenpinscher", "Afghan hound"])
    titled = [ax for ax in drawn[0].axes if ax.get_title()]
    assert [ax.get_title() for ax in titled] == [
        "001.Affenpinscher/img_000.jpg\ntrue: Affenpinscher\npred: Afghan hound 0.70",  # the highest loss first
        "002.Afghan_hound/img_000.jpg\ntrue: Afghan hound\npred: Afghan hound 0.60"]
    # a wrong breed in red, a right one in black, both small enough for three lines over a thumbnail
    assert [(ax.title.get_color(), ax.title.get_fontsize()) for ax in titled] == [("firebrick", 8.0), ("black", 8.0)]
    assert drawn[0]._suptitle.get_text() == "the 2 test images with the highest loss (red: wrong breed)"
    assert plots.image_label(Path("117.Staffordshire_bull_terrier_mix/Staffordshire_00012.jpg")) == \
        "117.Staff…/Staffordshire_00012.jpg"  # 34 characters at most


def test_calibration_counts_are_readable_and_empty_bins_marked(tmp_path, drawn):
    # confidences near 0.99 and 0.6 only: every other bin is empty
    logits = torch.tensor([[6.0, 0.0, 0.0]] * 5 + [[1.0, 0.0, 0.0]] * 3)
    labels = torch.tensor([0, 0, 0, 0, 1, 0, 1, 2])
    plots.plot_reliability(tmp_path, logits, labels, temperature=1.0)
    before = drawn[0].axes[0]
    counts = [t for t in before.texts]
    assert len(counts) == 15  # one per bin, empty ones included
    assert all(t.get_rotation() == 0 and t.get_fontsize() >= 8 for t in counts)
    assert sorted(int(t.get_text()) for t in counts if t.get_text() != "0") == [3, 5]
    zeros = [t for t in counts if t.get_text() == "0"]
    assert len(zeros) == 13 and all(t.get_color() == "0.45" for t in zeros)
    empty = [p for p in before.patches if p.get_hatch() == "//"]
    assert len(empty) == 13
    assert "empty bin (no images)" in [t.get_text() for t in before.get_legend().get_texts()]
    assert before.get_title().startswith("before scaling (T = 1)")
    assert drawn[0].axes[1].get_title().startswith("served: T = 1 (not applied)")
    plots.plot_reliability(tmp_path, logits, labels, temperature=1.7)
    assert drawn[1].axes[1].get_title().startswith("after scaling (T = 1.7)")


def test_gradient_norms_give_each_of_12_layers_its_own_colour():
    series = {f"layer{i}.weight": ([0, 1, 2], [1.0 + i, 2.0 + i, 3.0 + i]) for i in range(12)}
    fig = gradient_figure(series)
    colours = [tuple(line.get_color()) for line in fig.axes[0].lines]
    assert len(colours) == 12 and len(set(colours)) == 12
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == list(series)


def test_train_and_eval_losses_each_have_their_own_step_axis():
    fig = loss_figure({"TRAIN": ([0, 1, 2, 3], [2.0, 1.5, 1.2, 1.0]), "EVAL": ([0, 1], [1.4, 1.1])})
    assert [(ax.get_xlabel(), ax.get_title()) for ax in fig.axes] == [("TRAIN step", "TRAIN loss"),
                                                                      ("EVAL step", "EVAL loss")]
    assert [list(ax.lines[0].get_xdata()) for ax in fig.axes] == [[0, 1, 2, 3], [0, 1]]


def test_the_batch_gallery_shows_each_input_unnormalised_under_its_breed(tmp_path, drawn):
    values = [-3.0, -0.6, -0.2, 0.2, 0.6, 4.0]  # the first and last beyond the displayable range
    images = torch.stack([torch.full((3, 6, 6), v) for v in values])
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    path = plots.plot_batch(tmp_path, images, labels, ["Affenpinscher", "Afghan hound", "Airedale terrier"],
                            mean=[0.5, 0.5, 0.5], std=[0.2, 0.2, 0.2])
    [fig] = drawn
    # 4 columns of 2.4 in and 2 rows of 2.6 in: 6 inputs, the last two panels blank
    assert tuple(fig.get_size_inches()) == pytest.approx((9.6, 5.2))
    assert [ax.get_title() for ax in fig.axes] == ["Affenpinscher", "Afghan hound", "Airedale terrier",
                                                   "Affenpinscher", "Afghan hound", "Airedale terrier", "", ""]
    shown = [ax.get_images()[0].get_array()[0, 0, 0] for ax in fig.axes[:6]]
    # x * 0.2 + 0.5, clamped to [0, 1]
    assert shown == pytest.approx([0.0, 0.38, 0.46, 0.54, 0.62, 1.0])
    assert fig._suptitle.get_text() == "training inputs after augmentation (6 px)"
    assert path == tmp_path / "batch.png" and path.is_file()


def test_the_confusion_matrix_names_its_axes_breeds_counts_and_scores(tmp_path, drawn):
    confusion = torch.tensor([[3, 1, 0], [0, 4, 0], [2, 0, 2]])
    plots.plot_confusion_matrix(tmp_path, confusion, ["Affenpinscher", "Afghan hound", "Airedale terrier"],
                                {"acc": 0.75, "acc_top5": 1.0})
    ax = drawn[0].axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted breed", "true breed")
    assert ax.get_title() == "test confusion matrix, 3 breeds\ntest top-1 0.750, top-5 1.000"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["Affenpinscher", "Afghan hound", "Airedale terrier"]
    cells = {(t.get_position(), t.get_text(), t.get_color()) for t in ax.texts}
    # counts in the cells; white on dark cells (over half of the true breed's images)
    assert cells == {((0, 0), "3", "white"), ((1, 0), "1", "black"), ((1, 1), "4", "white"),
                     ((0, 2), "2", "black"), ((2, 2), "2", "black")}
