"""The local Debugger rules at their boundaries, on small fake trials (milliseconds, no training, no files).

A fake trial is a list of saved steps, each (mode, {tensor name: value}); global step = position in the list,
mode step = how many earlier steps had the same mode, as smdebug numbers them. The rules run through the real
runner (:func:`evaluate_rule`), so the smdebug ``Rule.invoke`` machinery is exercised too.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np
import pytest

from tests.helpers.smdebug_policy import skip_module_without_smdebug

skip_module_without_smdebug()

from smdebug import modes  # noqa: E402

from dogbreed.diagnostics.rule_report import RuleResult, evaluate_rule  # noqa: E402
from dogbreed.diagnostics.rules import (  # noqa: E402  # noqa: E402
    ISSUES_FOUND,
    NO_ISSUES_FOUND,
    NOT_EVALUATED,
    LossNotDecreasing,
    Overfit,
    Overtraining,
    PoorWeightInitialization,
    VanishingGradient,
)

LOSS = "CrossEntropyLoss_output_0"
MODES = {"TRAIN": modes.TRAIN, "EVAL": modes.EVAL}


class FakeTensor:
    def __init__(self, trial: FakeTrial, name: str) -> None:
        self.trial, self.name = trial, name

    def steps(self, mode: Any = modes.GLOBAL) -> list[int]:
        held = [step for step, (_, values) in enumerate(self.trial.records) if self.name in values]
        if mode == modes.GLOBAL:
            return held
        return [self.trial.mode_modestep(s)[1] for s in held if self.trial.records[s][0] == mode]

    def value(self, step: int) -> np.ndarray:
        return np.asarray(self.trial.records[step][1][self.name])


class FakeTrial:
    """What the rules read from an smdebug trial: tensor_names, tensor(...).steps/value, steps, mode_modestep."""

    def __init__(self, records: Sequence[tuple[str, dict[str, Any]]], losses: Sequence[str] = (LOSS,)) -> None:
        self.records = [(MODES[mode], values) for mode, values in records]
        self.collections = {"losses": list(losses)}
        self.logger = logging.getLogger("fake-trial")
        self.dynamic_refresh = True

    def steps(self, mode: Any = modes.GLOBAL) -> list[int]:
        return list(range(len(self.records)))

    def mode_modestep(self, step: int) -> tuple[Any, int]:
        mode = self.records[step][0]
        return mode, sum(1 for m, _ in self.records[:step] if m == mode)

    def tensor_names(self, collection: str | None = None) -> list[str]:
        if collection is not None:
            return list(self.collections.get(collection, []))
        return sorted({name for _, values in self.records for name in values})

    def tensor(self, name: str) -> FakeTensor:
        return FakeTensor(self, name)

    def wait_for_steps(self, steps: Sequence[int]) -> None:
        pass


def losses(*steps: tuple[str, float]) -> FakeTrial:
    """A trial of loss values: losses(("TRAIN", 1.0), ("EVAL", 1.5), ...)."""
    return FakeTrial([(mode, {LOSS: value}) for mode, value in steps])


def run(rule_class: type, trial: FakeTrial, **params: Any) -> RuleResult:
    return evaluate_rule(rule_class(trial, **params))


def fired_at(result: RuleResult) -> int | None:
    assert result.status in (ISSUES_FOUND, NO_ISSUES_FOUND), result.detail
    return result.step if result.status == ISSUES_FOUND else None


# --- Overfit: (mean val - mean train) / mean train > ratio_threshold for more than `patience` EVAL steps in a row


@pytest.mark.parametrize("patience", [1, 2, 3])
def test_overfit_fires_at_patience_plus_one_eval_steps_not_at_patience(patience):
    over = [("TRAIN", 1.0)] + [("EVAL", 1.5)] * patience
    assert fired_at(run(Overfit, losses(*over), patience=patience)) is None
    result = run(Overfit, losses(*over, ("EVAL", 1.5)), patience=patience)
    assert fired_at(result) == patience + 1
    assert result.detail == "validation loss 1.5 is 50% above the training loss 1 (threshold 10%)"


def test_overfit_says_its_ratio_and_threshold_in_percent():
    result = run(Overfit, losses(("TRAIN", 1.25), ("TRAIN", 0.75), ("EVAL", 1.8), ("EVAL", 1.8)), patience=1,
                 ratio_threshold=0.35)
    assert result.detail == "validation loss 1.8 is 80% above the training loss 1 (threshold 35%)"


def test_overfit_ratio_must_exceed_the_threshold():
    at_threshold = [("TRAIN", 4.0), ("EVAL", 5.0), ("EVAL", 5.0), ("EVAL", 5.0)]  # ratio exactly 0.25
    assert fired_at(run(Overfit, losses(*at_threshold), ratio_threshold=0.25)) is None
    above = [("TRAIN", 4.0), ("EVAL", 5.001), ("EVAL", 5.001)]
    assert fired_at(run(Overfit, losses(*above), ratio_threshold=0.25)) == 2


def test_overfit_count_restarts_after_a_healthy_validation():
    steps = [("TRAIN", 1.0), ("EVAL", 1.5), ("TRAIN", 1.0), ("EVAL", 1.0), ("TRAIN", 1.0), ("EVAL", 1.5)]
    result = run(Overfit, losses(*steps))
    assert fired_at(result) is None
    assert result.detail == "largest (val - train) / train = 50.0%"


def test_overfit_compares_with_the_training_loss_since_the_previous_validation():
    # The early training losses (10.0) must not count in the second validation's comparison.
    steps = [("TRAIN", 10.0), ("TRAIN", 10.0), ("EVAL", 1.0),
             ("TRAIN", 1.0), ("TRAIN", 1.0), ("EVAL", 1.5), ("EVAL", 1.5)]
    assert fired_at(run(Overfit, losses(*steps))) == 6


def test_overfit_ignores_steps_before_start_step():
    steps = [("TRAIN", 1.0), ("EVAL", 2.0), ("EVAL", 2.0), ("TRAIN", 1.0), ("EVAL", 1.0)]
    assert fired_at(run(Overfit, losses(*steps))) == 2
    assert fired_at(run(Overfit, losses(*steps), start_step=2)) is None


# --- Overtraining: no new optimum (better than the best by more than delta) for patience saved steps


FLAT_WITHIN_DELTA = [1.0, 0.995, 1.005, 0.992, 1.008, 0.991]  # never 0.01 below the first value


def test_overtraining_fires_on_a_flat_training_loss_within_delta():
    result = run(Overtraining, losses(*[("TRAIN", v) for v in FLAT_WITHIN_DELTA]))
    assert fired_at(result) == 5
    assert result.detail == ("training loss has not improved on its best 1 by more than 0.01 for 5 saved steps "
                             "(patience 5)")


def test_overtraining_is_quiet_one_step_before_patience():
    result = run(Overtraining, losses(*[("TRAIN", v) for v in FLAT_WITHIN_DELTA[:5]]))
    assert fired_at(result) is None
    assert result.detail == "best train loss 1"


def test_overtraining_improvement_must_beat_the_best_by_more_than_delta():
    assert fired_at(run(Overtraining, losses(("TRAIN", 2.0), ("TRAIN", 1.75)), patience_train=1, delta=0.25)) == 1
    assert fired_at(run(Overtraining, losses(("TRAIN", 2.0), ("TRAIN", 1.74)), patience_train=1, delta=0.25)) is None


def test_overtraining_a_real_improvement_restarts_the_count():
    values = [1.0, 0.995, 0.98, 0.975, 0.985, 0.979, 0.972]  # 0.98 beats 1.0 by 0.02; then 4 stale steps
    assert fired_at(run(Overtraining, losses(*[("TRAIN", v) for v in values]))) is None


def test_overtraining_counts_validation_steps_separately():
    steps = [("TRAIN", 1.0), ("EVAL", 1.0), ("TRAIN", 0.9), ("EVAL", 1.0), ("TRAIN", 0.8), ("EVAL", 1.0)]
    result = run(Overtraining, losses(*steps), patience_validation=2)
    assert fired_at(result) == 5
    assert result.detail.startswith("validation loss has not improved on its best 1 by more than 0.01 for 2 saved")


# --- LossNotDecreasing: every num_steps mode steps, the loss must fall by diff_percent since the last check


def eval_losses(values: Sequence[float]) -> FakeTrial:
    return losses(*[("EVAL", v) for v in values])


def test_loss_not_decreasing_fires_on_a_plateau_after_an_early_drop():
    values = [2.0 - 0.1 * s for s in range(11)] + [1.0] * 10  # 2.0 -> 1.0 by step 10, flat to step 20
    result = run(LossNotDecreasing, eval_losses(values))
    assert fired_at(result) == 20
    assert result.detail == f"{LOSS} fell 0.000% (EVAL step 10 -> 20); it must fall at least 0.1%"


def test_loss_not_decreasing_is_quiet_while_the_loss_falls():
    result = run(LossNotDecreasing, eval_losses([2.0 - 0.05 * s for s in range(31)]))
    assert fired_at(result) is None
    assert result.detail == f"last check: {LOSS} fell 50.0% (EVAL step 20 -> 30)"


def test_loss_not_decreasing_checks_every_num_steps_not_sooner():
    too_short = run(LossNotDecreasing, eval_losses([1.0] * 10))  # steps 0..9: nothing to compare yet
    assert too_short.status == NOT_EVALUATED and too_short.detail == "not checked: needs two EVAL losses 10 steps apart"
    assert fired_at(run(LossNotDecreasing, eval_losses([1.0] * 11))) == 10
    assert fired_at(run(LossNotDecreasing, eval_losses([1.0] * 4), num_steps=3)) == 3


def test_loss_not_decreasing_diff_percent_boundary():
    assert fired_at(run(LossNotDecreasing, eval_losses([1000.0] * 10 + [999.0]))) is None  # fell exactly 0.1%
    assert fired_at(run(LossNotDecreasing, eval_losses([1000.0] * 10 + [999.5]))) == 10  # fell 0.05%


def test_loss_not_decreasing_starts_every_losss_window_at_its_first_value():
    """Two losses from step 0: each is first checked at step 10. A rule that began only the first loss's window at
    step 0 would check the second at step 11."""
    falling, flat = "a_loss_output_0", "b_loss_output_0"
    trial = FakeTrial([("EVAL", {falling: 2.0 - 0.1 * s, flat: 1.0}) for s in range(12)], losses=(falling, flat))
    result = run(LossNotDecreasing, trial)
    assert fired_at(result) == 10
    assert result.detail == f"{flat} fell 0.000% (EVAL step 0 -> 10); it must fall at least 0.1%"


def test_loss_not_decreasing_fires_when_the_loss_rises_above_its_best():
    values = [1.0] + [0.7] * 9 + [0.5] + [0.55] * 9 + [0.6]
    result = run(LossNotDecreasing, eval_losses(values))
    assert fired_at(result) == 20
    assert result.detail == f"{LOSS} is 20.0% above its best (EVAL step 10 -> 20; limit 5%)"


def test_loss_not_decreasing_prefers_eval_then_train_and_counts_mode_steps():
    # TRAIN losses flat (would fire), EVAL losses falling: the rule reads EVAL only.
    steps = []
    for epoch in range(12):
        steps += [("TRAIN", 1.0), ("TRAIN", 1.0), ("EVAL", 1.0 - 0.05 * epoch)]
    assert fired_at(run(LossNotDecreasing, losses(*steps))) is None
    # Told to read TRAIN: its mode step 10 is global step 15 (TRAIN, TRAIN, EVAL per epoch).
    result = run(LossNotDecreasing, losses(*steps), mode="TRAIN")
    assert fired_at(result) == 15
    assert "(TRAIN step 0 -> 10)" in result.detail


# --- VanishingGradient and PoorWeightInitialization thresholds


def test_vanishing_gradient_threshold_is_strict():
    at = FakeTrial([("TRAIN", {"gradient/fc.weight": np.full(4, 1e-7)})])
    assert fired_at(run(VanishingGradient, at)) is None
    below = FakeTrial([("TRAIN", {"gradient/fc.weight": np.full(4, 1e-7)}),
                       ("TRAIN", {"gradient/fc.weight": np.array([1e-7, 1e-7, 0.9e-7, 1e-7])})])
    result = run(VanishingGradient, below)
    assert fired_at(result) == 1
    assert result.detail == "mean |gradient/fc.weight| = 9.75e-08 < threshold 1e-07"


def activation_trial(low_variance: float) -> FakeTrial:
    spread = float(np.sqrt(low_variance))
    return FakeTrial([("TRAIN", {"layer0_relu_input": np.array([-2.0, 2.0]),  # variance 4
                                 "layer1_relu_input": np.array([-spread, spread])})])


def test_poor_weight_initialization_variance_ratio_must_exceed_the_threshold():
    assert fired_at(run(PoorWeightInitialization, activation_trial(0.25), threshold=16.0)) is None  # ratio 16
    result = run(PoorWeightInitialization, activation_trial(0.25), threshold=15.9)
    assert fired_at(result) == 0
    assert result.detail == "activation-input variance differs 16-fold across layers (> 15.9)"


def test_poor_weight_initialization_loss_patience_only_in_the_first_steps():
    flat = losses(*[("TRAIN", 1.0)] * 20)
    result = run(PoorWeightInitialization, flat)
    assert fired_at(result) == 5
    assert result.detail == "training loss set no new minimum for 5 of the first 10 steps"
    late_plateau = losses(*[("TRAIN", 1.0 - 0.01 * s) for s in range(10)], *[("TRAIN", 0.5)] * 10)
    assert fired_at(run(PoorWeightInitialization, late_plateau)) is None


def test_poor_weight_initialization_reads_exactly_the_first_steps():
    """steps=3 reads TRAIN steps 0, 1 and 2: a plateau that starts at step 3 is not its business; steps=4 sees it."""
    trial = losses(("TRAIN", 1.0), ("EVAL", 2.0), ("TRAIN", 0.9), ("TRAIN", 0.8), ("TRAIN", 0.8))
    assert fired_at(run(PoorWeightInitialization, trial, patience=1, steps=3)) is None
    result = run(PoorWeightInitialization, trial, patience=1, steps=4)
    assert fired_at(result) == 4  # the global step of TRAIN step 3 (an EVAL step came between)
    assert result.detail == "training loss set no new minimum for 1 of the first 4 steps"


def test_poor_weight_initialization_gradient_spread_boundary():
    narrow = FakeTrial([("TRAIN", {"gradient/fc.weight": np.linspace(0.0, 0.0009, 100)})])
    result = run(PoorWeightInitialization, narrow)
    assert fired_at(result) == 0 and result.detail.startswith("gradients' 5th-95th percentile spread 0.00081 <")
    wide = FakeTrial([("TRAIN", {"gradient/fc.weight": np.linspace(-1.0, 1.0, 100)})])
    assert fired_at(run(PoorWeightInitialization, wide)) is None


def test_vanishing_gradient_names_the_first_of_equally_small_gradients():
    trial = FakeTrial([("TRAIN", {"gradient/a.weight": np.full(4, 0.5), "gradient/b.weight": np.full(4, -0.5),
                                  "gradient/c.weight": np.full(4, 2.0)})])
    result = run(VanishingGradient, trial)
    assert (result.status, result.detail) == (NO_ISSUES_FOUND, "smallest mean |gradient| 0.5 (gradient/a.weight)")


def test_the_rule_statuses_are_sagemakers_names():
    from dogbreed.diagnostics.rules import ERROR

    assert (ISSUES_FOUND, NO_ISSUES_FOUND, ERROR, NOT_EVALUATED) == ("IssuesFound", "NoIssuesFound", "Error",
                                                                     "NotEvaluated")


def test_overfit_skips_the_sanity_check_before_any_training():
    # EVAL steps before the first TRAIN step (Lightning's sanity check) have no training loss to compare with
    only_sanity = [("EVAL", 5.0), ("EVAL", 5.0), ("TRAIN", 1.0)]
    result = run(Overfit, losses(*only_sanity))
    assert (result.status, result.step, result.detail) == (NOT_EVALUATED, None,
                                                           "no saved step held the values this rule compares")
    result = run(Overfit, losses(("EVAL", 9.0), ("TRAIN", 1.0), ("EVAL", 1.05)))
    assert (result.status, result.detail) == (NO_ISSUES_FOUND, "largest (val - train) / train = 5.0%")


def test_poor_weight_initialization_needs_two_layers_to_compare_variances():
    one_layer = FakeTrial([("TRAIN", {"layer0_relu_input": np.array([-2.0, 2.0])})] * 3, losses=())
    result = evaluate_rule(PoorWeightInitialization(one_layer))
    assert (result.status, result.detail) == (NOT_EVALUATED, "checked: activation variance (first 10 TRAIN steps)")


def test_loss_not_decreasing_rise_must_exceed_the_limit():
    # best 8.0, then 8.5: exactly 6.25% above (binary-exact); with the limit at 6.25% that rise is allowed, and the
    # check then fires on the fall (-6.25% < 0.1%) instead
    at_limit = run(LossNotDecreasing, eval_losses([8.0] * 10 + [8.5]), increase_threshold_percent=6.25)
    assert fired_at(at_limit) == 10
    assert at_limit.detail == f"{LOSS} fell -6.250% (EVAL step 0 -> 10); it must fall at least 0.1%"
    above = run(LossNotDecreasing, eval_losses([8.0] * 10 + [8.5]), increase_threshold_percent=6.2)
    assert above.detail == f"{LOSS} is 6.2% above its best (EVAL step 0 -> 10; limit 6.2%)"
