"""hpo --local numbers trials one way (from 1), names the trial Optuna tests as the best on a tie, and says when
the best trial is no better than guessing."""

from __future__ import annotations

import optuna
import pytest

from dogbreed.tuning.local import _best_so_far, _table, _trial_line, chance_warning, trial_label

LR = {"lr": optuna.distributions.FloatDistribution(1e-4, 1e-1)}


def _study(values: list[float]) -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    for value in values:
        study.add_trial(optuna.trial.create_trial(value=value, params={"lr": 0.001}, distributions=LR))
    return study


class FinishingTrial:
    def __init__(self, number: int) -> None:
        self.number, self.params = number, {"lr": 0.002}


def test_a_tie_names_the_earliest_trial_which_optuna_tests():
    study = _study([0.25, 0.25])
    assert _best_so_far(study, 2, 0.25, pruned=False) == (0.25, 0)
    study.add_trial(optuna.trial.create_trial(value=0.25, params={"lr": 0.001}, distributions=LR))
    assert study.best_trial.number == 0  # what the summary tests
    assert _best_so_far(study, 3, 0.5, pruned=False) == (0.5, 3)
    assert _best_so_far(study, 3, 0.9, pruned=True) == (0.25, 0)


def test_trial_lines_and_the_table_count_from_1():
    study = _study([0.25, 0.5])
    line = _trial_line(FinishingTrial(2), 3, False, 0.25, 1.0, study, started=0.0)
    assert line.startswith("trial 3/3 COMPLETE val_acc=0.2500 in ")
    assert line.endswith(" (best 0.5000, trial 2): lr=0.002")
    table = _table(study, ["lr"]).splitlines()
    assert [row.split()[0] for row in table] == ["trial", "1", "2"]
    assert trial_label(0) == 1


@pytest.mark.parametrize("best, classes, images, warned", [
    (0.25, 4, 40, True),     # exactly chance
    (0.36, 4, 40, True),     # 0.25 + 2 x 0.0685 = 0.387: still within guessing on 40 images
    (0.40, 4, 40, False),
    (0.30, 4, 4000, False),  # 0.25 + 2 x 0.0068: clearly above chance on many images
    (0.75, 2, 16, True),     # two breeds: 0.5 + 2 x 0.125 = 0.75, the edge itself still warns
    (0.7501, 2, 16, False),
    (0.0, 1, 16, False),     # one class: no guessing to compare with
    (0.0, 4, 0, False),      # no validation images: nothing measured
    (1.0, 2, 1, True),       # one validation image: 0.5 + 2 x 0.5, a perfect score is still a coin flip
])
def test_chance_warning(best, classes, images, warned):
    assert bool(chance_warning(best, classes, images)) is warned


def test_chance_warning_word_for_word():
    assert chance_warning(0.25, 4, 40) == (
        "warning: the best trial's val_acc 0.2500 is at chance level (1/4 = 0.2500, +/- 0.1369 on 40 validation "
        "images): no trial learned the breeds; train longer (--epochs), widen the search (--trials) or check the data")


def test_the_first_trial_names_itself_best_and_a_pruned_first_trial_names_none():
    study = _study([])
    first = _trial_line(FinishingTrial(0), 4, False, 0.5, 1.0, study, started=0.0)
    assert first.startswith("trial 1/4 COMPLETE val_acc=0.5000 in ") and " (best 0.5000, trial 1), ETA " in first
    pruned = _trial_line(FinishingTrial(0), 4, True, 0.5, 1.0, study, started=0.0)
    assert pruned.startswith("trial 1/4 PRUNED val_acc=0.5000 in ") and "(best" not in pruned


def test_a_trial_line_gives_the_eta_from_the_mean_trial_time_so_far(monkeypatch):
    from dogbreed.tuning import local

    monkeypatch.setattr(local.time, "monotonic", lambda: 100.0)
    line = _trial_line(FinishingTrial(1), 6, False, 0.5, 12.0, _study([0.25]), started=60.0)
    # 40 s for 2 trials: 20 s each, 4 to go -> 80 s
    assert line == "trial 2/6 COMPLETE val_acc=0.5000 in 12s (best 0.5000, trial 2), ETA 1m20s: lr=0.002"
    pruned = _trial_line(FinishingTrial(1), 6, True, 0.75, 3.0, _study([0.25]), started=60.0)
    assert pruned == "trial 2/6 PRUNED val_acc=0.7500 in 3.0s (best 0.2500, trial 1), ETA 1m20s: lr=0.002"
