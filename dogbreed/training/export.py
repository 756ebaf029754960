"""The end of a run on rank 0: the artifact (weights + ``model_config.json`` with metrics, timing, temperature,
abstention threshold and TTA mode), the reports, the reliability diagram, then the checkpoint dir's "finished"
marker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dogbreed.config.options import TrainConfig
from dogbreed.data.datamodule import DogBreedDataModule
from dogbreed.serving.artifact import ModelConfig, library_versions, save_artifact
from dogbreed.training.calibrate import ServingFit
from dogbreed.training.calibration_plot import plot_reliability
from dogbreed.training.checkpoints import ResumePlan, mark_finished
from dogbreed.training.module import DogBreedClassifier
from dogbreed.training.reports import TestOutcome, write_reports


def export_run(config: TrainConfig, model: DogBreedClassifier, images: DogBreedDataModule,
            history: list[dict[str, Any]], test_metrics: dict[str, float], outcome: TestOutcome | None,
            timing: dict[str, float], resume: ResumePlan, fit: ServingFit) -> None:
    """Rank 0: the artifact (weights + model_config.json with metrics and timing), the reports, then the
    checkpoint dir's "finished" marker."""
    hyperparameters = config.to_dict()
    if resume.record() is not None:
        hyperparameters["resumed_from"] = resume.record()
    model_config = ModelConfig(
        class_names=images.class_names,
        preprocessing=images.preprocessing,
        hyperparameters=hyperparameters,
        metrics={"test": test_metrics, "final_epoch": history[-1] if history else {}, "timing": timing,
                 **fit.report},
        versions=library_versions(),
        temperature=fit.temperature,
        abstention=fit.abstention,
        tta=config.tta,
    )
    save_artifact(config.model_dir, model.net, model_config)
    write_reports(config.output_dir, history, test_metrics, outcome, images.class_names, timing=timing,
                  extra=fit.report)
    if fit.test is not None and fit.test.labels.numel():
        plot_reliability(Path(config.output_dir), fit.test.logits, fit.test.labels, fit.temperature)
    if config.checkpoint_dir is not None:
        mark_finished(config.checkpoint_dir, len(history), Path(config.model_dir))
