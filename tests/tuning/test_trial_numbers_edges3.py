"""The "best so far" of a trial line, third pass: only completed trials count, as in Optuna's best_trial (the one
tested at the end); a pruned trial keeps its last reported value in the study but is never the best."""

from __future__ import annotations

import optuna

from dogbreed.tuning.local import _best_so_far

LR = {"lr": optuna.distributions.FloatDistribution(1e-4, 1e-1)}


def test_a_pruned_trials_last_value_is_never_the_best_so_far():
    study = optuna.create_study(direction="maximize")
    study.add_trial(optuna.trial.create_trial(value=0.25, params={"lr": 0.001}, distributions=LR))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED, value=0.9, params={"lr": 0.01},
                                              distributions=LR, intermediate_values={2: 0.9}))
    assert study.trials[1].value == 0.9 and study.best_trial.number == 0
    assert _best_so_far(study, 2, 0.5, pruned=False) == (0.5, 2)
    assert _best_so_far(study, 2, 0.95, pruned=True) == (0.25, 0)
