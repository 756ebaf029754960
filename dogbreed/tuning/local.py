"""Local hyperparameter search with Optuna over the shared search space, pruned on validation accuracy.

Trials never touch the test split (only validation picks a model); the best model is tested once at the end.
``best_hyperparameters.json`` holds every option of the best run, so ``train --config`` reproduces it.

It holds whole ``TrainConfig`` objects (unlike the training layer's collaborators, which get sections): each trial
is a run with its own options, dirs and cache, and the best one's options are written out to reproduce it.
"""

from __future__ import annotations

import json
import logging
import math
import shlex
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

from dogbreed.config.options import TrainConfig
from dogbreed.config.sections import default_backbone_lr_scale
from dogbreed.data.progress import Progress, format_duration
from dogbreed.data.sources import resolve_splits
from dogbreed.training.head_training import default_cache_dir
from dogbreed.training.metric_lines import OBJECTIVE_METRIC
from dogbreed.training.runtime import Runtime
from dogbreed.tuning.search_space import SEARCH_SPACE, Parameter, parameter_names, suggest

logger = logging.getLogger(__name__)

BEST_PARAMS_FILENAME = "best_hyperparameters.json"
RESULTS_FILENAME = "trials.csv"
BEST_MODEL_DIR = "best_model"
BEST_REPORTS_DIR = "best_reports"
TRAIN_COMMAND = "python -m entry_points.train"
# Options that say where a run writes or what it records, not what it learns: left out of the reproducible config.
NOT_REPRODUCED = ("model_dir", "output_dir", "checkpoint_dir", "debug_dir", "debug_train_interval",
                  "debug_eval_interval", "profiler", "monitor_interval_ms", "profile_dir")


class OptunaPruning(Callback):
    """Reports val/acc after each validation epoch; stops the run when Optuna's pruner says so."""

    def __init__(self, trial: Any) -> None:
        self.trial = trial
        self.pruned = False

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or "val/acc" not in trainer.callback_metrics:
            return
        # Optuna's step is the epoch number as printed everywhere else (epoch=1 is the first)
        self.trial.report(float(trainer.callback_metrics["val/acc"]), step=trainer.current_epoch + 1)
        if self.trial.should_prune():
            self.pruned = True
            trainer.should_stop = True


@dataclass
class TuningResult:
    best_params: dict[str, Any]
    best_value: float
    best_model_dir: Path
    table: str
    test_metrics: dict[str, float]
    best_config: dict[str, Any]
    warning: str = ""  # e.g. the best trial is no better than guessing


def trial_label(number: int) -> int:
    """The trial number users see, counted from 1 everywhere (lines, table, dirs, best_hyperparameters.json);
    Optuna counts from 0."""
    return number + 1


def chance_warning(best_value: float, num_classes: int, valid_images: int) -> str:
    """A line when the best validation accuracy is within two standard deviations of guessing (1/classes) on
    this many validation images, else ""."""
    if num_classes < 2 or valid_images < 1:
        return ""
    chance = 1.0 / num_classes
    margin = 2.0 * math.sqrt(chance * (1.0 - chance) / valid_images)
    if best_value > chance + margin:
        return ""
    return (f"warning: the best trial's val_acc {best_value:.4f} is at chance level (1/{num_classes} = {chance:.4f}, "
            f"+/- {margin:.4f} on {valid_images} validation images): no trial learned the breeds; train longer "
            "(--epochs), widen the search (--trials) or check the data")


def _apply(config: TrainConfig, params: dict[str, Any], trial_dir: Path) -> TrainConfig:
    values = {name.replace("-", "_"): value for name, value in params.items()}
    # The same feature cache as `train` with the same options (<output-dir>/../feature_cache by default), so
    # head-only trials and later training runs never run the backbone twice over the same images.
    # Each trial is its own run: one shared checkpoint dir would be refused (another run's fingerprint) from trial 2.
    # The same for a --profile-dir: each trial's profile in its own subdir (by default it is in the trial's reports).
    checkpoints, profiles = config.checkpoints.checkpoint_dir, config.diagnostics.profile_dir
    checkpoint_dir = Path(checkpoints) / trial_dir.name if checkpoints else None
    profile_dir = Path(profiles) / trial_dir.name if profiles else None
    return config.replace(model_dir=trial_dir / "model", output_dir=trial_dir / "reports",
                          cache_dir=default_cache_dir(config.cache, config.outputs.output_dir),
                          checkpoint_dir=checkpoint_dir, profile_dir=profile_dir, **values)


def reproducible_config(trial_config: TrainConfig, base: TrainConfig) -> dict[str, Any]:
    """Every option that shaped the trial's model, for ``train --config`` (``None`` values and where-to-write
    options left out; the cache dir only when the user chose one)."""
    values = {k: v for k, v in trial_config.to_dict().items() if k not in NOT_REPRODUCED and v not in (None, "")}
    if base.cache.cache_dir is None:
        values.pop("cache_dir", None)
    return values


def command_line(config: dict[str, Any]) -> str:
    """The ``train`` command line for ``config``: the options whose value is not this version's default."""
    defaults = TrainConfig().to_dict()
    defaults["backbone_lr_scale"] = default_backbone_lr_scale(str(config.get("weights", defaults["weights"])))
    parts = [TRAIN_COMMAND]
    for name, value in config.items():
        if value != defaults.get(name):
            parts += [f"--{name.replace('_', '-')}", shlex.quote(str(value))]
    return " ".join(parts)


def _table(study: Any, names: list[str]) -> str:
    header = ["trial", "state", OBJECTIVE_METRIC, *names]
    rows = [header]
    for t in study.trials:
        value = "" if t.value is None else f"{t.value:.4f}"
        rows.append([str(trial_label(t.number)), t.state.name, value, *[_fmt(t.params.get(n)) for n in names]])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows)


def _fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _best_so_far(study: Any, number: int, value: float, pruned: bool) -> tuple[float, int]:
    """(value, Optuna number) of the best completed trial, counting the one finishing now; on a tie the earliest
    trial, as Optuna's ``best_trial`` (the one tested at the end) chooses."""
    candidates = [(float(t.value), t.number) for t in study.trials
                  if t.value is not None and t.state.name == "COMPLETE" and t.number != number]
    if not pruned:
        candidates.append((value, number))
    if not candidates:
        return (-math.inf, -1)
    return min(candidates, key=lambda candidate: (-candidate[0], candidate[1]))


def _trial_line(trial: Any, total: int, pruned: bool, value: float, seconds: float, study: Any,
                started: float) -> str:
    state = "PRUNED" if pruned else "COMPLETE"
    params = " ".join(f"{k}={_fmt(v)}" for k, v in trial.params.items())
    done = trial.number + 1
    best_value, best_number = _best_so_far(study, trial.number, value, pruned)
    best = f" (best {best_value:.4f}, trial {trial_label(best_number)})" if best_number >= 0 else ""
    shown = f" {OBJECTIVE_METRIC}={value:.4f}"
    eta = (time.monotonic() - started) / done * (total - done)
    tail = f", ETA {format_duration(eta)}" if done < total else ""
    return f"trial {done}/{total} {state}{shown} in {format_duration(seconds)}{best}{tail}: {params}"


def tune_locally(base: TrainConfig, trials: int, output_dir: Path, space: tuple[Parameter, ...] = SEARCH_SPACE,
                 seed: int = 0, runtime: Runtime | None = None) -> TuningResult:
    """Run ``trials`` trainings with Optuna (TPE + median pruner) without testing them; keep the best model
    dir, test it once, and write what reproduces it."""
    import optuna

    from dogbreed.training.run import train  # heavy import only when tuning runs

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial comes from here instead
    output_dir = Path(output_dir)
    splits = resolve_splits(base.data, seed=base.optimisation.seed)
    trial_runtime = replace(runtime or Runtime.local(), progress_bar=False)  # the trials bar is the progress
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2)  # may stop a trial from epoch 2 on
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed), pruner=pruner)
    configs: dict[int, TrainConfig] = {}
    histories: dict[int, list[dict[str, Any]]] = {}
    started = time.monotonic()

    with Progress(trials, "tuning", unit="trial", interval_s=math.inf) as progress:
        def objective(trial: optuna.Trial) -> float:
            params = suggest(trial, space)
            trial_dir = output_dir / "trials" / f"trial_{trial_label(trial.number):03d}"
            config = configs[trial.number] = _apply(base, params, trial_dir)
            pruning = OptunaPruning(trial)
            began = time.monotonic()
            result = train(config, splits=splits, runtime=trial_runtime, extra_callbacks=[pruning], test=False,
                           epoch_lines=False)
            histories[trial.number] = result.history
            value = float(result.history[-1]["val_acc"])
            progress.write(_trial_line(trial, trials, pruning.pruned, value, time.monotonic() - began, study, started))
            progress.update()
            if pruning.pruned:
                raise optuna.TrialPruned()
            return value

        study.optimize(objective, n_trials=trials)
    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not completed:
        raise RuntimeError("no trial completed: every trial was pruned or failed")
    return _finish(study, base, configs, histories, output_dir, space, splits, runtime)


def _finish(study: Any, base: TrainConfig, configs: dict[int, TrainConfig], histories: dict[int, list[Any]],
            output_dir: Path, space: tuple[Parameter, ...], splits: Any, runtime: Runtime | None) -> TuningResult:
    """Keep the best model, test it once, write its reports, best_hyperparameters.json and trials.csv."""
    from dogbreed.training.export import record_test_metrics
    from dogbreed.training.plots import plot_reliability
    from dogbreed.training.reports import write_reports
    from dogbreed.tuning.best_model import evaluate_model_dir

    best = study.best_trial
    best_value = float(best.value if best.value is not None else "nan")
    best_dir = output_dir / BEST_MODEL_DIR
    if best_dir.exists():
        shutil.rmtree(best_dir)
    shutil.copytree(configs[best.number].outputs.model_dir, best_dir)
    logger.info("testing the best model (trial %d) on the test split", trial_label(best.number))
    tested = evaluate_model_dir(configs[best.number], best_dir, splits=splits, runtime=runtime)
    record_test_metrics(best_dir, tested.metrics)
    write_reports(output_dir / BEST_REPORTS_DIR, histories[best.number], tested.metrics, tested.outcome,
                  tested.class_names)
    if tested.logits is not None and tested.logits.labels.numel():
        plot_reliability(output_dir / BEST_REPORTS_DIR, tested.logits.logits, tested.logits.labels,
                         tested.temperature)
    config = reproducible_config(configs[best.number], base)
    (output_dir / BEST_PARAMS_FILENAME).write_text(json.dumps({
        "objective": OBJECTIVE_METRIC, "value": best.value, "trial": trial_label(best.number),
        "hyperparameters": best.params, "test": tested.metrics, "config": config,
        "command": command_line(config),
    }, indent=2) + "\n")
    results = study.trials_dataframe()
    results.insert(0, "trial", results["number"] + 1)  # the number the trial lines and dirs use
    (output_dir / RESULTS_FILENAME).write_text(results.to_csv(index=False))
    # the validation images the trials were chosen on, as the test's data module holds them: a folder's, or those
    # carved out of train when the data has no validation split (``splits.valid`` is then None)
    warning = chance_warning(best_value, len(tested.class_names), tested.valid_images)
    return TuningResult(best_params=best.params, best_value=best_value, best_model_dir=best_dir,
                        table=_table(study, parameter_names(space)), test_metrics=tested.metrics, best_config=config,
                        warning=warning)
