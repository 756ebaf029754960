"""Report building blocks on hand-made inputs: a phase timed twice adds up, and each training curve draws its own
series (the validation curve is not the training one under another label)."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import torch

from dogbreed.training import plots
from dogbreed.training.reports import PhaseTimer, RunCounts, summary_lines, timing_record


def test_a_phase_timed_twice_adds_up_and_the_total_runs_from_the_start():
    ticks = iter([100.0, 101.0, 103.5, 110.0, 110.25, 120.0])
    timer = PhaseTimer(clock=lambda: next(ticks))  # started at 100
    with timer.phase("feature_cache"):  # 101 -> 103.5
        pass
    with timer.phase("feature_cache"):  # 110 -> 110.25
        pass
    assert timer.seconds == {"feature_cache": 2.75}
    record = timing_record(timer, RunCounts(extracted_images=11))
    assert record == {"feature_cache_s": 2.75, "total_s": 20.0, "feature_images_per_s": 4.0}  # 11 / 2.75


def test_each_training_curve_draws_its_own_series(tmp_path, monkeypatch):
    figures = []

    def keep(fig, path):
        figures.append(fig)
        return path

    monkeypatch.setattr(plots, "save_figure", keep)
    history = [  # every series different, one value missing (epoch 2 without validation top-5)
        {"epoch": 1, "train_loss": 2.0, "val_loss": 2.5, "train_acc": 0.1, "val_acc": 0.2, "train_acc_top5": 0.4,
         "val_acc_top5": 0.5, "lr": 0.01},
        {"epoch": 2, "train_loss": 1.5, "val_loss": 1.75, "train_acc": 0.3, "val_acc": 0.35, "train_acc_top5": 0.6,
         "lr": 0.005},
    ]
    plots.plot_training_curves(tmp_path, history, {"acc": 0.875, "acc_top5": 0.96875})
    [fig] = figures
    loss, acc, lr = fig.axes[:3]

    def series(ax):
        return {line.get_label(): [None if math.isnan(y) else float(y) for y in line.get_ydata()]
                for line in ax.lines}

    assert series(loss) == {"train loss": [2.0, 1.5], "val loss": [2.5, 1.75]}
    assert series(acc) == {"train top-1": [0.1, 0.3], "val top-1": [0.2, 0.35], "train top-5": [0.4, 0.6],
                           "val top-5": [0.5, None]}
    assert series(lr) == {"head lr (end of epoch)": [0.01, 0.005]}
    assert [list(line.get_xdata()) for line in loss.lines] == [[1, 2], [1, 2]]
    assert fig.get_suptitle() == "test top-1 0.875, top-5 0.969"
    plt.close(fig)


def test_up_to_30_breeds_the_confusion_plot_keeps_every_breed_in_index_order():
    confusion = torch.eye(30, dtype=torch.long) * 4
    confusion[29, 3] = 2  # breed 29 is the one most involved in mistakes, then 3
    assert plots.confused_classes(confusion) == list(range(30))
    bigger = torch.eye(31, dtype=torch.long) * 4
    bigger[29, 3], bigger[5, 30] = 2, 1
    # 31 breeds: the 30 most involved, most involved first (29 and 3: 2 mistakes; 5 and 30: 1), then index order
    assert plots.confused_classes(bigger) == [3, 29, 5, 30, *[i for i in range(31) if i not in (3, 29, 5, 30)][:26]]


def test_the_test_phase_names_the_test_split_size_not_the_validation_one():
    ticks = iter([0.0, 1.0, 1.5, 10.0, 12.0, 13.0])
    timer = PhaseTimer(clock=lambda: next(ticks))
    for name in ("data_check", "test"):
        with timer.phase(name):
            pass
    counts = RunCounts(images={"train": 30, "valid": 7, "test": 11}, epochs=2)
    lines = summary_lines(timer, counts, {})
    assert lines[1].endswith("(train 30, valid 7, test 11 images)")
    assert lines[2].startswith("  test ") and lines[2].endswith("(11 images)")
    assert lines[3].startswith("  total ")
