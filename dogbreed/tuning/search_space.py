"""The hyperparameter search space, defined once; rendered for Optuna here and for SageMaker's tuner in
:func:`dogbreed.sagemaker.tuning.hyperparameter_ranges`.

Names are the training script's option names exactly (the original project's tuner sent
``--batch-size``/``--lr`` to a script that expected other names, so only ``epochs`` was ever tuned).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence


@dataclass(frozen=True)
class Continuous:
    name: str
    low: float
    high: float
    log: bool = False


@dataclass(frozen=True)
class Integer:
    name: str
    low: int
    high: int


@dataclass(frozen=True)
class Categorical:
    name: str
    choices: tuple[Any, ...]


Parameter = Continuous | Integer | Categorical

SEARCH_SPACE: tuple[Parameter, ...] = (
    Continuous("lr", 1e-4, 1e-1, log=True),
    Categorical("batch-size", (16, 32, 64)),
    Integer("epochs", 5, 10),
    Continuous("weight-decay", 1e-6, 1e-2, log=True),
    Continuous("label-smoothing", 0.0, 0.2),
)


def parameter_names(space: Sequence[Parameter] = SEARCH_SPACE) -> list[str]:
    return [p.name for p in space]


def optuna_distributions(space: Sequence[Parameter] = SEARCH_SPACE) -> dict[str, Any]:
    """The same space as Optuna distributions."""
    import optuna.distributions as dist

    out: dict[str, Any] = {}
    for p in space:
        if isinstance(p, Continuous):
            out[p.name] = dist.FloatDistribution(p.low, p.high, log=p.log)
        elif isinstance(p, Integer):
            out[p.name] = dist.IntDistribution(p.low, p.high)
        else:
            out[p.name] = dist.CategoricalDistribution(list(p.choices))
    return out


def without(names: Sequence[str], space: Sequence[Parameter] = SEARCH_SPACE) -> tuple[Parameter, ...]:
    """The space minus parameters fixed by the user (given explicitly on the command line)."""
    fixed = {n.replace("_", "-") for n in names}
    return tuple(p for p in space if p.name not in fixed)


def suggest(trial: Any, space: Sequence[Parameter] = SEARCH_SPACE) -> dict[str, Any]:
    """Ask an Optuna trial for one value per parameter of the space."""
    values: dict[str, Any] = {}
    for p in space:
        if isinstance(p, Continuous):
            values[p.name] = trial.suggest_float(p.name, p.low, p.high, log=p.log)
        elif isinstance(p, Integer):
            values[p.name] = trial.suggest_int(p.name, p.low, p.high)
        else:
            values[p.name] = trial.suggest_categorical(p.name, list(p.choices))
    return values
