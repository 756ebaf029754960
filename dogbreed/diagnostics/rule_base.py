"""The base of the local Debugger rules: the one guarded smdebug import, rule statuses, ``TrialRule``.

The rules themselves are in :mod:`dogbreed.diagnostics.rules`, the runner and table in
:mod:`dogbreed.diagnostics.rule_report`.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from dogbreed.core.errors import DogBreedError
from dogbreed.diagnostics.quiet import quiet_smdebug

quiet_smdebug()  # before the import below: smdebug sets up its logger once, at import
try:  # the one guarded smdebug import; the rules and the report take smdebug's names from here
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

ISSUES_FOUND, NO_ISSUES_FOUND, ERROR = "IssuesFound", "NoIssuesFound", "Error"
SKIPPABLE = (TensorUnavailableForStep, StepUnavailable, TensorUnavailable)  # a step without the tensor


class TrialRule(Rule):
    """Common parts: a ``detail`` sentence, loss-tensor lookup and a requirements check."""

    def __init__(self, base_trial: Any) -> None:
        super().__init__(base_trial, action_str="")
        self.detail = ""

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
