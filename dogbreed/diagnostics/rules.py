"""SageMaker Debugger's built-in tensor rules as smdebug Rules, evaluated locally on a trial (local dir or S3).

AWS runs its built-in rules in a closed container; only their parameters and behaviour are documented
("List of Debugger built-in rules", docs.aws.amazon.com/sagemaker/latest/dg/debugger-built-in-rules.html).
These are smdebug ``Rule`` subclasses with those parameter names and defaults. Where the page leaves a
detail open, the choice is written next to the code. Steps are smdebug's global steps. The runner
and the table are in :mod:`dogbreed.diagnostics.rule_report`.

Here too: the one guarded smdebug import (the report takes smdebug's names from this module), the rule statuses
(AWS's, plus NotEvaluated) and ``TrialRule``, the base of the rules.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

import numpy as np

from dogbreed.core.errors import DogBreedError
from dogbreed.diagnostics import quiet_smdebug_logging

quiet_smdebug_logging()  # before smdebug's first import: its loggers read the level once
try:  # the one guarded smdebug import; the report takes smdebug's names from here
    from smdebug import modes as modes  # re-exported
    from smdebug.exceptions import (
        InsufficientInformationForRuleInvocation,
        StepUnavailable,
        TensorUnavailable,
        TensorUnavailableForStep,
    )
    from smdebug.exceptions import RuleEvaluationConditionMet as RuleEvaluationConditionMet  # re-exported
    from smdebug.rules import Rule
    from smdebug.trials import create_trial as create_trial  # re-exported
except Exception as exc:  # missing package or an incompatible protobuf/numpy: one clear message
    raise DogBreedError(f"the debugger rules need smdebug ({exc}); install it with pip install -e '.[debug]'") from exc
quiet_smdebug_logging()

# AWS's rule statuses, plus NotEvaluated: the trial lacked what the rule reads (no tensors, or no step where it
# could compare anything), so "no issues" would be a claim nobody checked.
ISSUES_FOUND, NO_ISSUES_FOUND, ERROR, NOT_EVALUATED = "IssuesFound", "NoIssuesFound", "Error", "NotEvaluated"
SKIPPABLE = (TensorUnavailableForStep, StepUnavailable, TensorUnavailable)  # a step without the tensor


class TrialRule(Rule):
    """Common parts: a ``detail`` sentence, loss-tensor lookup and a requirements check."""

    def __init__(self, base_trial: Any) -> None:
        super().__init__(base_trial, action_str="")
        self.detail = ""
        self.evaluated = False  # set by a rule once it has really compared something at some step

    def check_trial(self) -> None:
        """Raise InsufficientInformationForRuleInvocation when the trial lacks what the rule reads."""

    def _insufficient(self, message: str) -> InsufficientInformationForRuleInvocation:
        return InsufficientInformationForRuleInvocation(self.rule_name, message)

    def loss_names(self, tensor_regex: str | None = None, use_losses_collection: bool = True) -> list[str]:
        names: set[str] = set()
        if use_losses_collection:
            names.update(self.base_trial.tensor_names(collection="losses"))
        if tensor_regex:
            names.update(n for n in self.base_trial.tensor_names() if re.match(tensor_regex, n))
        return sorted(names)

    def mode_of(self, step: int) -> Any:
        return self.base_trial.mode_modestep(step)[0]

    def value(self, name: str, step: int) -> np.ndarray | None:
        tensor = self.base_trial.tensor(name)
        return np.asarray(tensor.value(step)) if step in tensor.steps() else None


class VanishingGradient(TrialRule):
    """Fires when the mean absolute value of a gradient drops below ``threshold`` (AWS default 1e-7)."""

    def __init__(self, base_trial: Any, threshold: float = 1e-7) -> None:
        super().__init__(base_trial)
        self.threshold = float(threshold)
        self.smallest: tuple[float, str] | None = None

    def gradient_names(self) -> list[str]:
        return [n for n in self.base_trial.tensor_names() if n.startswith("gradient/")]

    def check_trial(self) -> None:
        if not self.gradient_names():
            raise self._insufficient("no gradient tensors in the trial: save the 'gradients' collection")

    def invoke_at_step(self, step: int) -> bool:
        for name in self.gradient_names():
            grad = self.value(name, step)
            if grad is None:
                continue
            self.evaluated = True
            mean_abs = float(np.abs(grad).mean())
            if self.smallest is None or mean_abs < self.smallest[0]:
                self.smallest = (mean_abs, name)
            if mean_abs < self.threshold:
                self.detail = f"mean |{name}| = {mean_abs:.3g} < threshold {self.threshold:g}"
                return True
        if self.smallest is not None:
            self.detail = f"smallest mean |gradient| {self.smallest[0]:.3g} ({self.smallest[1]})"
        return False


class Overfit(TrialRule):
    """Fires when (mean validation loss - mean training loss) / mean training loss exceeds ``ratio_threshold``
    for more than ``patience`` saved EVAL steps in a row (AWS defaults: start_step 0, patience 1, ratio 0.1).

    Mean training loss: the saved TRAIN steps since the previous validation; mean validation loss: the
    EVAL steps of the current validation so far. EVAL steps before any training (sanity check) are skipped.
    """

    def __init__(self, base_trial: Any, tensor_regex: str | None = None, start_step: int = 0, patience: int = 1,
                 ratio_threshold: float = 0.1) -> None:
        super().__init__(base_trial)
        self.tensor_regex, self.start_step = tensor_regex, int(start_step)
        self.patience, self.ratio_threshold = int(patience), float(ratio_threshold)
        self._train: list[float] = []
        self._val: list[float] = []
        self._previous_mode: Any = None
        self._exceeded = 0
        self.worst: float | None = None

    def check_trial(self) -> None:
        names = self.loss_names(self.tensor_regex)
        if not names:
            raise self._insufficient("no loss tensors in the trial: save the 'losses' collection")
        self.name = names[0]
        tensor = self.base_trial.tensor(self.name)
        if not tensor.steps(mode=modes.TRAIN) or not tensor.steps(mode=modes.EVAL):
            raise self._insufficient(f"{self.name} needs values in both TRAIN and EVAL mode")

    def invoke_at_step(self, step: int) -> bool:
        loss = self.value(self.name, step)
        mode = self.mode_of(step)
        if loss is None or step < self.start_step:
            return False
        if mode == modes.TRAIN:
            if self._previous_mode != modes.TRAIN:
                self._train = []
            self._train.append(float(loss))
        elif mode == modes.EVAL and self._train:
            if self._previous_mode != modes.EVAL:
                self._val = []
            self._val.append(float(loss))
            mean_train = float(np.mean(self._train))
            self.evaluated = True
            ratio = (float(np.mean(self._val)) - mean_train) / max(abs(mean_train), 1e-12)
            self.worst = ratio if self.worst is None else max(self.worst, ratio)
            self._exceeded = self._exceeded + 1 if ratio > self.ratio_threshold else 0
            if self._exceeded > self.patience:
                self.detail = (f"validation loss {np.mean(self._val):.4g} is {100 * ratio:.0f}% above the training "
                               f"loss {mean_train:.4g} (threshold {100 * self.ratio_threshold:.0f}%)")
                return True
        self._previous_mode = mode
        if self.worst is not None:
            self.detail = f"largest (val - train) / train = {100 * self.worst:.1f}%"
        return False


class Overtraining(TrialRule):
    """Fires when the training loss has not reached a new optimum for ``patience_train`` saved TRAIN steps, or the
    validation loss for ``patience_validation`` saved EVAL steps (AWS defaults 5, 10). A new optimum must beat the
    best so far by more than ``delta`` (AWS default 0.01; read here as an absolute loss difference).
    """

    def __init__(self, base_trial: Any, patience_train: int = 5, patience_validation: int = 10,
                 delta: float = 0.01) -> None:
        super().__init__(base_trial)
        self.patience = {modes.TRAIN: int(patience_train), modes.EVAL: int(patience_validation)}
        self.delta = float(delta)
        self.best: dict[Any, float] = {}
        self.stale: dict[Any, int] = {modes.TRAIN: 0, modes.EVAL: 0}

    def check_trial(self) -> None:
        names = self.loss_names()
        if not names:
            raise self._insufficient("no loss tensors in the trial: save the 'losses' collection")
        self.name = names[0]

    def invoke_at_step(self, step: int) -> bool:
        mode = self.mode_of(step)
        loss = self.value(self.name, step)
        if loss is None or mode not in self.patience:
            return False
        value = float(loss)
        self.evaluated = self.evaluated or mode in self.best  # a second value in this mode: something compared
        if mode not in self.best or value < self.best[mode] - self.delta:
            self.best[mode], self.stale[mode] = value, 0
            return False
        self.stale[mode] += 1
        self.detail = ", ".join(f"best {'train' if m == modes.TRAIN else 'validation'} loss {v:.4g}"
                                for m, v in self.best.items())
        if self.stale[mode] >= self.patience[mode]:
            label = "training" if mode == modes.TRAIN else "validation"
            self.detail = (f"{label} loss has not improved on its best {self.best[mode]:.4g} by more than "
                           f"{self.delta:g} for {self.stale[mode]} saved steps (patience {self.patience[mode]})")
            return True
        return False


class PoorWeightInitialization(TrialRule):
    """Over the first ``steps`` TRAIN steps, fires when: the variance of activation inputs (``activation_inputs_regex``)
    differs by more than ``threshold``-fold across layers; or the spread between the 5th and 95th percentile of all
    gradients is below ``distribution_range``; or the training loss sets no new minimum for ``patience`` steps.
    AWS defaults: '.*relu_input', 10.0, 0.001, 5, 10.
    """

    def __init__(self, base_trial: Any, activation_inputs_regex: str = ".*relu_input", threshold: float = 10.0,
                 distribution_range: float = 0.001, patience: int = 5, steps: int = 10) -> None:
        super().__init__(base_trial)
        self.regex = re.compile(activation_inputs_regex)
        self.threshold, self.distribution_range = float(threshold), float(distribution_range)
        self.patience, self.steps = int(patience), int(steps)
        self.best_loss: float | None = None
        self.stale = 0
        self.checks: list[str] = []

    def check_trial(self) -> None:
        names = self.base_trial.tensor_names()
        self.activations = [n for n in names if self.regex.match(n)]
        self.gradients = [n for n in names if n.startswith("gradient/")]
        self.losses = self.loss_names()
        if not (self.activations or self.gradients or self.losses):
            raise self._insufficient("no activation inputs, gradients or losses in the trial")
        self.checks = [label for label, present in (("activation variance", self.activations),
                                                    ("gradient spread", self.gradients),
                                                    ("loss", self.losses)) if present]

    def invoke_at_step(self, step: int) -> bool:
        mode, mode_step = self.base_trial.mode_modestep(step)
        if mode != modes.TRAIN or mode_step >= self.steps:
            return False
        variances = [float(np.var(v)) for v in (self.value(n, step) for n in self.activations) if v is not None]
        if len(variances) >= 2:
            self.evaluated = True
            ratio = max(variances) / min(variances) if min(variances) > 0 else float("inf")
            if ratio > self.threshold:
                self.detail = f"activation-input variance differs {ratio:.3g}-fold across layers (> {self.threshold:g})"
                return True
        grads = [v.ravel() for v in (self.value(n, step) for n in self.gradients) if v is not None]
        if grads:
            self.evaluated = True
            low, high = np.percentile(np.concatenate(grads), [5, 95])
            if high - low < self.distribution_range:
                self.detail = (f"gradients' 5th-95th percentile spread {high - low:.3g} < "
                               f"distribution_range {self.distribution_range:g}")
                return True
        loss = self.value(self.losses[0], step) if self.losses else None
        if loss is not None:
            self.evaluated = self.evaluated or self.best_loss is not None
            if self.best_loss is None or float(loss) < self.best_loss:
                self.best_loss, self.stale = float(loss), 0
            else:
                self.stale += 1
                if self.stale >= self.patience:
                    self.detail = f"training loss set no new minimum for {self.stale} of the first {self.steps} steps"
                    return True
        self.detail = f"checked: {', '.join(self.checks)} (first {self.steps} TRAIN steps)"
        return False


class LossNotDecreasing(TrialRule):
    """Every ``num_steps`` (mode) steps, fires when the loss fell by less than ``diff_percent`` % since the last
    check, or rose more than ``increase_threshold_percent`` % above the best checked loss (our reading of "the
    maximum threshold percent that loss is allowed to increase"). Mode: ``mode`` or, as AWS documents,
    EVAL, then TRAIN, then GLOBAL, whichever holds losses. AWS defaults: 10, 0.1, 5.
    """

    def __init__(self, base_trial: Any, collection_names: Sequence[str] | None = None, tensor_regex: str | None = None,
                 use_losses_collection: bool = True, num_steps: int = 10, diff_percent: float = 0.1,
                 increase_threshold_percent: float = 5.0, mode: str | None = None) -> None:
        super().__init__(base_trial)
        self.collection_names, self.tensor_regex = list(collection_names or []), tensor_regex
        self.use_losses_collection, self.num_steps = use_losses_collection, int(num_steps)
        self.diff_percent, self.increase_percent = float(diff_percent), float(increase_threshold_percent)
        self.mode_name = mode
        self.last: dict[str, tuple[int, float]] = {}
        self.best: dict[str, float] = {}

    def check_trial(self) -> None:
        names = set(self.loss_names(self.tensor_regex, self.use_losses_collection))
        for collection in self.collection_names:
            names.update(self.base_trial.tensor_names(collection=collection))
        if not names:
            raise self._insufficient("no loss tensors in the trial: save the 'losses' collection")
        self.names = sorted(names)
        order = [self.mode_name.upper()] if self.mode_name else ["EVAL", "TRAIN", "GLOBAL"]
        for name in order:
            mode = getattr(modes, name)
            if any(self.base_trial.tensor(n).steps(mode=mode) for n in self.names):
                self.mode = mode
                self.detail = f"not checked: needs two {name} losses {self.num_steps} steps apart"
                return
        raise self._insufficient(f"no loss values in mode {'/'.join(order)}")

    def invoke_at_step(self, step: int) -> bool:
        mode, mode_step = self.base_trial.mode_modestep(step)
        if self.mode != modes.GLOBAL and mode != self.mode:
            return False
        current_step = step if self.mode == modes.GLOBAL else mode_step
        for name in self.names:
            loss = self.value(name, step)
            if loss is None:
                continue
            value = float(loss)
            if name not in self.last:
                self.last[name], self.best[name] = (current_step, value), value
                continue
            last_step, last_value = self.last[name]
            if current_step - last_step < self.num_steps:
                continue
            # Only the checked losses count, as in AWS's description (step 21 vs step 9, then 33 ...).
            self.evaluated = True
            self.last[name] = (current_step, value)
            fell = 100 * (last_value - value) / max(abs(last_value), 1e-12)
            rose = 100 * (value - self.best[name]) / max(abs(self.best[name]), 1e-12)
            self.best[name] = min(self.best[name], value)
            where = f"{self.mode.name} step {last_step} -> {current_step}"
            if rose > self.increase_percent:
                self.detail = f"{name} is {rose:.1f}% above its best ({where}; limit {self.increase_percent:g}%)"
                return True
            if fell < self.diff_percent:
                self.detail = f"{name} fell {fell:.3f}% ({where}); it must fall at least {self.diff_percent:g}%"
                return True
            self.detail = f"last check: {name} fell {fell:.1f}% ({where})"
        return False


RULE_CLASSES: tuple[type[TrialRule], ...] = (VanishingGradient, Overfit, Overtraining, PoorWeightInitialization,
                                             LossNotDecreasing)
