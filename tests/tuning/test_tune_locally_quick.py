"""tune_locally's orchestration without training (make test-quick; the slow tests run real trials): each trial
gets the sampled options, its own dir, a quiet runtime and the pruning callback; the best trial's model is kept,
tested once and written out with what reproduces it. ``train`` and the test pass are stand-ins here."""

from __future__ import annotations

import csv
import json
from types import SimpleNamespace

import pytest

from dogbreed.training import export as export_module
from dogbreed.training import reports as reports_module
from dogbreed.training import run as run_module
from dogbreed.training.runtime import Runtime
from dogbreed.tuning import best_model
from dogbreed.tuning.local import OptunaPruning, tune_locally
from tests.helpers.builders import fast_config
from tests.helpers.report_checks import json_layout


def test_pinned_tuning_output_names():
    from dogbreed.tuning import local

    assert (local.BEST_PARAMS_FILENAME, local.RESULTS_FILENAME, local.BEST_MODEL_DIR, local.BEST_REPORTS_DIR) == (
        "best_hyperparameters.json", "trials.csv", "best_model", "best_reports")


class FakeTrial:
    def __init__(self, prune: bool) -> None:
        self.prune, self.reported = prune, []

    def report(self, value, step):
        self.reported.append((value, step))

    def should_prune(self):
        return self.prune


@pytest.mark.parametrize("sanity, metrics, prune, reported, stopped", [
    (True, {"val/acc": 0.5}, True, [], False),  # the sanity check is not an epoch
    (False, {"val/loss": 1.0}, True, [], False),  # nothing to report
    (False, {"val/acc": 0.5}, False, [(0.5, 3)], False),
    (False, {"val/acc": 0.25}, True, [(0.25, 3)], True),
])
def test_pruning_reports_val_acc_by_printed_epoch_and_stops_when_told(sanity, metrics, prune, reported, stopped):
    trial = FakeTrial(prune)
    callback = OptunaPruning(trial)
    trainer = SimpleNamespace(sanity_checking=sanity, callback_metrics=metrics, current_epoch=2, should_stop=False)
    callback.on_validation_epoch_end(trainer, None)  # type: ignore[arg-type]
    assert (trial.reported, callback.pruned, trainer.should_stop) == (reported, stopped, stopped)


def test_a_sweep_trains_each_trial_quietly_keeps_the_best_and_writes_what_reproduces_it(tiny_tree, tmp_path,
                                                                                      monkeypatch, caplog):
    calls = []

    def train(config, *, splits, runtime, extra_callbacks, test, epoch_lines):
        calls.append((config, runtime, extra_callbacks, test, epoch_lines))
        config.outputs.model_dir.mkdir(parents=True)
        (config.outputs.model_dir / "trial.txt").write_text(str(len(calls)))
        value = {1: 0.5, 2: 0.75, 3: 0.625}[len(calls)]
        return SimpleNamespace(history=[{"epoch": 1, "val_acc": value}])

    tested = []

    def evaluate_model_dir(config, model_dir, *, splits, runtime):
        tested.append(model_dir)
        return SimpleNamespace(metrics={"acc": 0.8125}, outcome=None, class_names=["a", "b", "c"], logits=None,
                               temperature=1.0, valid_images=6)

    monkeypatch.setattr(run_module, "train", train)
    monkeypatch.setattr(best_model, "evaluate_model_dir", evaluate_model_dir)
    monkeypatch.setattr(export_module, "record_test_metrics", lambda model_dir, metrics: None)
    monkeypatch.setattr(reports_module, "write_reports", lambda *args: None)
    out = tmp_path / "hpo"
    with caplog.at_level("INFO", logger="dogbreed.tuning.local"):
        result = tune_locally(fast_config(tmp_path, tiny_tree), 3, out, seed=4, runtime=Runtime.local())

    assert "testing the best model (trial 2) on the test split" in caplog.messages
    assert len(calls) == 3
    assert [c[0].outputs.model_dir for c in calls] == [out / "trials" / f"trial_{n:03d}" / "model" for n in (1, 2, 3)]
    assert all(c[1].progress_bar is False and c[3] is False and c[4] is False for c in calls)
    assert all(isinstance(c[2][0], OptunaPruning) for c in calls)
    # the best trial (2nd, 0.75) is copied, tested once, and recorded
    assert (out / "best_model" / "trial.txt").read_text() == "2" and tested == [out / "best_model"]
    assert result.best_value == 0.75 and result.best_model_dir == out / "best_model"
    best = json.loads((out / "best_hyperparameters.json").read_text())
    assert json_layout((out / "best_hyperparameters.json").read_text()) == (2, True)
    assert (best["trial"], best["value"], best["test"]) == (2, 0.75, {"acc": 0.8125})
    assert best["hyperparameters"] == result.best_params
    assert best["config"]["lr"] == calls[1][0].optimisation.lr
    assert best["command"].startswith("python -m entry_points.train ")
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert [(r["trial"], float(r["value"])) for r in rows] == [("1", 0.5), ("2", 0.75), ("3", 0.625)]


def test_the_best_model_is_tested_once_with_the_logits_for_its_reliability_plot(tiny_model_dir, tiny_tree, tmp_path):
    import json
    import shutil

    from dogbreed.data.splits import SplitDirs
    from dogbreed.tuning.best_model import evaluate_model_dir

    model_dir = shutil.copytree(tiny_model_dir, tmp_path / "model")
    config_file = model_dir / "model_config.json"
    config_file.write_text(json.dumps({**json.loads(config_file.read_text()), "temperature": 1.7}))
    config = fast_config(tmp_path, tiny_tree, logger="none")
    tested = evaluate_model_dir(config, model_dir, splits=SplitDirs.from_data_dir(tiny_tree),
                                runtime=Runtime.local())
    assert tested.temperature == 1.7  # the artifact's, for the reliability plot's second panel
    assert tested.class_names == ["Affenpinscher", "Afghan hound", "Airedale terrier"]
    assert tuple(tested.logits.logits.shape) == (6, 3) and tested.logits.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert tested.metrics["acc"] == pytest.approx(tested.logits.accuracy)


def test_a_sweep_where_every_trial_was_pruned_says_so_and_tests_nothing(tiny_tree, tmp_path, monkeypatch):
    import optuna

    def train(config, **kwargs):
        raise optuna.TrialPruned()

    tested = []
    monkeypatch.setattr(run_module, "train", train)
    monkeypatch.setattr(best_model, "evaluate_model_dir", lambda *args, **kwargs: tested.append(args))
    with pytest.raises(RuntimeError) as refused:
        tune_locally(fast_config(tmp_path, tiny_tree), 2, tmp_path / "hpo", seed=4, runtime=Runtime.local())
    assert str(refused.value) == "no trial completed: every trial was pruned or failed"
    assert tested == [] and not (tmp_path / "hpo" / "best_model").exists()


def test_a_sweep_on_class_folders_only_finishes_and_counts_the_carved_validation_images(tmp_path, monkeypatch):
    # A tree of class folders (no valid/): the validation split is carved out of train. The sweep used to end,
    # after every trial had run, in a TypeError (Path(None)) while counting validation images for the chance line.
    from tests.helpers.builders import write_tree

    flat = write_tree(tmp_path / "flat", {"": 10})  # 3 classes x 10 images: 2 validation images per class carved
    monkeypatch.setattr(run_module, "train", lambda config, **kwargs: (
        config.outputs.model_dir.mkdir(parents=True), SimpleNamespace(history=[{"epoch": 1, "val_acc": 0.5}]))[1])
    monkeypatch.setattr(best_model, "evaluate_model_dir", lambda *args, **kwargs: SimpleNamespace(
        metrics={"acc": 0.5}, outcome=None, class_names=["a", "b", "c"], logits=None, temperature=1.0,
        valid_images=6))
    monkeypatch.setattr(export_module, "record_test_metrics", lambda model_dir, metrics: None)
    monkeypatch.setattr(reports_module, "write_reports", lambda *args: None)
    result = tune_locally(fast_config(tmp_path, flat), 1, tmp_path / "hpo", seed=4, runtime=Runtime.local())
    # chance 1/3, margin 2 * sqrt(1/3 * 2/3 / 6) = 0.3849: 0.5 is within it
    assert result.warning == (
        "warning: the best trial's val_acc 0.5000 is at chance level (1/3 = 0.3333, +/- 0.3849 on 6 validation "
        "images): no trial learned the breeds; train longer (--epochs), widen the search (--trials) or check the data")


def test_the_best_model_test_counts_the_validation_images_it_was_chosen_on(tiny_model_dir, tmp_path):
    import shutil

    from dogbreed.data.splits import SplitDirs
    from dogbreed.tuning.best_model import evaluate_model_dir
    from tests.helpers.builders import write_tree

    flat = write_tree(tmp_path / "flat", {"": 10})  # carved per class: 2 validation, 1 test, 7 training images
    model_dir = shutil.copytree(tiny_model_dir, tmp_path / "model")
    tested = evaluate_model_dir(fast_config(tmp_path, flat, logger="none"), model_dir,
                                splits=SplitDirs.from_data_dir(flat), runtime=Runtime.local())
    assert tested.valid_images == 6
    assert tested.logits.labels.tolist() == [0, 1, 2]  # the carved test split, one image per class
