"""The end of a run on rank 0: the artifact (weights + ``model_config.json`` with the flat hyperparameters record,
metrics, timing, temperature, abstention threshold and TTA mode), the reports, the reliability diagram, then the
checkpoint dir's "finished" marker; and the test metrics of a model tested later, written into its artifact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dogbreed.data.datamodule import DogBreedDataModule
from dogbreed.serving.artifact import ModelConfig, library_versions, load_artifact, save_artifact
from dogbreed.training.checkpoints import ResumePlan, mark_finished
from dogbreed.training.evaluation import ServingFit
from dogbreed.training.module import DogBreedClassifier
from dogbreed.training.plots import plot_reliability
from dogbreed.training.reports import TestOutcome, write_reports


def export_run(model: DogBreedClassifier, images: DogBreedDataModule, *, hyperparameters: dict[str, Any],
               model_dir: Path, output_dir: Path, checkpoint_dir: Path | None, tta: str,
               history: list[dict[str, Any]], test_metrics: dict[str, Any], outcome: TestOutcome | None,
               timing: dict[str, float], resume: ResumePlan, fit: ServingFit,
               best: dict[str, Any] | None = None) -> list[Path]:
    """Rank 0: the artifact (weights + model_config.json with ``hyperparameters``, the run's flat options record,
    metrics and timing), the reports, then the checkpoint dir's "finished" marker; returns the reports written.
    ``best``: the epoch whose weights these are (``{"epoch", "monitor", "value"}``), recorded as ``metrics["best"]``."""
    hyperparameters = dict(hyperparameters)
    report = {"best": best, **fit.report}
    if resume.record() is not None:
        hyperparameters["resumed_from"] = resume.record()
    if images.split_record is not None:  # how the splits were made (the file lists are in splits.json)
        hyperparameters["splits"] = {k: v for k, v in images.split_record.items() if k != "files"}
    model_config = ModelConfig(
        class_names=images.class_names,
        preprocessing=images.preprocessing,
        hyperparameters=hyperparameters,
        metrics={"test": test_metrics, "final_epoch": history[-1] if history else {}, "timing": timing,
                 **report},
        versions=library_versions(),
        temperature=fit.temperature,
        abstention=fit.abstention,
        tta=tta,
    )
    save_artifact(model_dir, model.net, model_config)
    written = write_reports(Path(output_dir), history, test_metrics, outcome, images.class_names, timing=timing,
                            extra=report)
    if fit.test is not None and fit.test.labels.numel():
        written.append(plot_reliability(Path(output_dir), fit.test.logits, fit.test.labels, fit.temperature))
    if checkpoint_dir is not None:
        mark_finished(checkpoint_dir, len(history), Path(model_dir))
    return written


def record_test_metrics(model_dir: Path, metrics: dict[str, float]) -> None:
    """Write the test metrics into the artifact's model_config.json (the weights are rewritten unchanged)."""
    net, model_config = load_artifact(model_dir)
    updated = ModelConfig(**{**model_config.__dict__, "metrics": {**model_config.metrics, "test": metrics}})
    save_artifact(model_dir, net, updated)
