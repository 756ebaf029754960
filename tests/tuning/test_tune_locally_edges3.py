"""tune_locally's end of a sweep, third pass (hand-written semantic mutants the suite let through): everything done
for the best trial is done with *that* trial's config, dir and history, not the base config's or the last trial's;
an old best_model/ is replaced whole; the pruner's warm-up is pinned. ``train`` and the test pass are stand-ins."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from dogbreed.training import export as export_module
from dogbreed.training import plots as plots_module
from dogbreed.training import reports as reports_module
from dogbreed.training import run as run_module
from dogbreed.training.runtime import Runtime
from dogbreed.tuning import best_model
from dogbreed.tuning.local import tune_locally
from tests.helpers.builders import fast_config

VALUES = {1: 0.5, 2: 0.75, 3: 0.625}  # the 2nd trial is the best; the 3rd is the last


def _sweep(tiny_tree, tmp_path, monkeypatch, out):
    seen: dict[str, list] = {"trained": [], "trial_bars": [], "tested": [], "recorded": [], "reports": [], "plots": []}

    def train(config, *, splits, runtime, extra_callbacks, test, epoch_lines):
        seen["trained"].append(config)
        seen["trial_bars"].append(runtime.progress_bar)
        number = len(seen["trained"])
        config.outputs.model_dir.mkdir(parents=True)
        (config.outputs.model_dir / "trial.txt").write_text(str(number))
        return SimpleNamespace(history=[{"epoch": 1, "val_acc": VALUES[number] / 2},
                                        {"epoch": 2, "val_acc": VALUES[number]}])

    def evaluate_model_dir(config, model_dir, *, splits, runtime):
        seen["tested"].append((config, model_dir))
        logits = SimpleNamespace(logits=torch.zeros(2, 3), labels=torch.tensor([0, 2]))
        return SimpleNamespace(metrics={"acc": 0.8125}, outcome="outcome", class_names=["a", "b", "c"], logits=logits,
                               temperature=1.7, valid_images=6)

    monkeypatch.setattr(run_module, "train", train)
    monkeypatch.setattr(best_model, "evaluate_model_dir", evaluate_model_dir)
    monkeypatch.setattr(export_module, "record_test_metrics",
                        lambda model_dir, metrics: seen["recorded"].append((model_dir, metrics)))
    monkeypatch.setattr(reports_module, "write_reports", lambda *args: seen["reports"].append(args))
    monkeypatch.setattr(plots_module, "plot_reliability", lambda *args: seen["plots"].append(args))
    # a terminal's runtime (a live bar allowed): the trials still run without their own bar, the sweep's is the one
    runtime = Runtime(cpu_count=2, progress_bar=True)
    result = tune_locally(fast_config(tmp_path, tiny_tree), 3, out, seed=4, runtime=runtime)
    return result, seen


def test_the_best_trials_config_history_and_dir_are_the_ones_tested_and_reported(tiny_tree, tmp_path, monkeypatch):
    out = tmp_path / "hpo"
    result, seen = _sweep(tiny_tree, tmp_path, monkeypatch, out)
    best_config = seen["trained"][1]
    assert best_config.outputs.model_dir == out / "trials" / "trial_002" / "model"
    # tested once, with the 2nd trial's own options (not the base config, not the last trial's), on the copy
    assert len(seen["tested"]) == 1
    tested_config, tested_dir = seen["tested"][0]
    assert tested_config is best_config and tested_dir == out / "best_model"
    # the test metrics go into the kept copy, not the trial's own dir
    assert seen["recorded"] == [(out / "best_model", {"acc": 0.8125})]
    # the best trial's reports: its own two-epoch history
    assert len(seen["reports"]) == 1
    reports_dir, history, metrics, outcome, class_names = seen["reports"][0]
    assert reports_dir == out / "best_reports"
    assert history == [{"epoch": 1, "val_acc": 0.375}, {"epoch": 2, "val_acc": 0.75}]
    assert (metrics, outcome, class_names) == ({"acc": 0.8125}, "outcome", ["a", "b", "c"])
    # the reliability plot from the test logits, with the artifact's temperature (1.7) for its second panel
    assert len(seen["plots"]) == 1
    plot_dir, logits, labels, temperature = seen["plots"][0]
    assert plot_dir == out / "best_reports" and temperature == 1.7
    assert logits.shape == (2, 3) and labels.tolist() == [0, 2]
    assert result.best_value == 0.75 and result.test_metrics == {"acc": 0.8125}
    assert seen["trial_bars"] == [False, False, False]


def test_an_old_best_model_dir_is_replaced_whole(tiny_tree, tmp_path, monkeypatch):
    """A second sweep into the same output dir: the earlier best_model/ goes, stale files and all."""
    out = tmp_path / "hpo"
    (out / "best_model" / "sub").mkdir(parents=True)
    (out / "best_model" / "stale.txt").write_text("from an earlier sweep")
    (out / "best_model" / "sub" / "old.pth").write_text("old")
    _sweep(tiny_tree, tmp_path, monkeypatch, out)
    assert sorted(p.name for p in (out / "best_model").rglob("*")) == ["trial.txt"]
    assert (out / "best_model" / "trial.txt").read_text() == "2"


def test_the_median_pruner_waits_for_two_trials_and_two_epochs(tiny_tree, tmp_path, monkeypatch):
    import optuna

    made = []
    real = optuna.pruners.MedianPruner

    def median_pruner(**kwargs):
        made.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(optuna.pruners, "MedianPruner", median_pruner)
    _sweep(tiny_tree, tmp_path, monkeypatch, tmp_path / "hpo")
    assert made == [{"n_startup_trials": 2, "n_warmup_steps": 2}]
