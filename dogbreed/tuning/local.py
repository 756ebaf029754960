"""Local hyperparameter search with Optuna over the shared search space, pruned on validation accuracy."""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

from dogbreed.config.options import TrainConfig
from dogbreed.data.sources import resolve_splits
from dogbreed.training.metric_lines import OBJECTIVE_METRIC
from dogbreed.training.runtime import Runtime
from dogbreed.tuning.search_space import SEARCH_SPACE, Parameter, parameter_names, suggest

logger = logging.getLogger(__name__)

BEST_PARAMS_FILENAME = "best_hyperparameters.json"
RESULTS_FILENAME = "trials.csv"


class OptunaPruning(Callback):
    """Reports val/acc after each validation epoch; stops the run when Optuna's pruner says so."""

    def __init__(self, trial: Any) -> None:
        self.trial = trial
        self.pruned = False

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or "val/acc" not in trainer.callback_metrics:
            return
        self.trial.report(float(trainer.callback_metrics["val/acc"]), step=trainer.current_epoch)
        if self.trial.should_prune():
            self.pruned = True
            trainer.should_stop = True


@dataclass
class TuningResult:
    best_params: dict[str, Any]
    best_value: float
    best_model_dir: Path
    table: str


def _apply(config: TrainConfig, params: dict[str, Any], trial_dir: Path) -> TrainConfig:
    values = {name.replace("-", "_"): value for name, value in params.items()}
    # One feature cache for all trials (<output-dir>/feature_cache): head-only trials then skip the backbone.
    cache_dir = config.cache_dir or trial_dir.parent.parent / "feature_cache"
    # Each trial is its own run: one shared checkpoint dir would be refused (another run's fingerprint) from trial 2.
    checkpoint_dir = Path(config.checkpoint_dir) / trial_dir.name if config.checkpoint_dir else None
    return replace(config, model_dir=trial_dir / "model", output_dir=trial_dir / "reports", cache_dir=cache_dir,
                   checkpoint_dir=checkpoint_dir, **values)


def _table(study: Any, names: list[str]) -> str:
    header = ["trial", "state", OBJECTIVE_METRIC, *names]
    rows = [header]
    for t in study.trials:
        value = "" if t.value is None else f"{t.value:.4f}"
        rows.append([str(t.number), t.state.name, value, *[_fmt(t.params.get(n)) for n in names]])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows)


def _fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def tune_locally(base: TrainConfig, trials: int, output_dir: Path, space: tuple[Parameter, ...] = SEARCH_SPACE,
                 seed: int = 0, runtime: Runtime | None = None) -> TuningResult:
    """Run ``trials`` trainings with Optuna (TPE + median pruner); keep the best model dir."""
    import optuna

    from dogbreed.training.run import train  # heavy import only when tuning runs

    output_dir = Path(output_dir)
    splits = resolve_splits(base)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed),
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1))

    def objective(trial: optuna.Trial) -> float:
        params = suggest(trial, space)
        config = _apply(base, params, output_dir / "trials" / f"trial_{trial.number:03d}")
        pruning = OptunaPruning(trial)
        result = train(config, splits=splits, runtime=runtime, extra_callbacks=[pruning])
        if pruning.pruned:
            raise optuna.TrialPruned()
        return float(result.history[-1]["val_acc"])

    study.optimize(objective, n_trials=trials)
    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not completed:
        raise RuntimeError("no trial completed: every trial was pruned or failed")
    best = study.best_trial
    best_value = float(best.value if best.value is not None else "nan")
    best_dir = output_dir / "best_model"
    if best_dir.exists():
        shutil.rmtree(best_dir)
    shutil.copytree(output_dir / "trials" / f"trial_{best.number:03d}" / "model", best_dir)
    table = _table(study, parameter_names(space))
    (output_dir / BEST_PARAMS_FILENAME).write_text(
        json.dumps({"objective": OBJECTIVE_METRIC, "value": best.value, "trial": best.number,
                    "hyperparameters": best.params}, indent=2) + "\n")
    (output_dir / RESULTS_FILENAME).write_text(study.trials_dataframe().to_csv(index=False))
    return TuningResult(best_params=best.params, best_value=best_value, best_model_dir=best_dir, table=table)
