"""The best tuning trial's model, tested once at the end of a search: the same data path and metrics as training."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dogbreed.config.options import TrainConfig
from dogbreed.data.splits import SplitDirs
from dogbreed.serving.artifact import load_artifact
from dogbreed.training.evaluation import collect_test_outcome, image_logits, run_test
from dogbreed.training.module import DogBreedClassifier
from dogbreed.training.reports import TestOutcome
from dogbreed.training.run import build_datamodule, build_trainer, prepare_for_speed
from dogbreed.training.runtime import Runtime
from dogbreed.training.setup import resolve_num_workers


@dataclass
class ModelTest:
    metrics: dict[str, float]  # {"loss", "acc", "acc_top5", "f1_macro"}
    outcome: TestOutcome
    class_names: list[str]
    temperature: float  # the artifact's (1.0 when calibration was not applied)
    logits: Any = None  # SplitLogits of the test split as served (for the reliability diagram)
    valid_images: int = 0  # the validation split's images (its folder's, or those carved out of train)


def evaluate_model_dir(config: TrainConfig, model_dir: Path, *, splits: SplitDirs,
                       runtime: Runtime | None = None) -> ModelTest:
    """Test the model in ``model_dir`` on ``splits.test`` (the validation split without one), with the same data
    path and metrics as training, the way ``config`` trained it (head-only runs read the features from the cache)."""
    runtime = replace(runtime or Runtime.local(), progress_bar=False)
    net, model_config = load_artifact(model_dir)
    images = build_datamodule(config, splits, resolve_num_workers(config.runtime.num_workers, runtime.cpu_count))
    images.setup("test")
    model = DogBreedClassifier(num_classes=model_config.num_classes, finetune=config.optimisation.finetune)
    model.net.load_state_dict(net.state_dict())
    datamodule, model = prepare_for_speed(config, images, model)
    trainer = build_trainer(config, [], runtime=runtime)
    metrics = run_test(trainer, model, datamodule)
    outcome = collect_test_outcome(trainer, model, images)
    samples = images.datasets["test"].samples
    logits = image_logits(model.net, [p for p, _ in samples], [c for _, c in samples], pre=images.preprocessing,
                          tta="none", batch_size=config.optimisation.batch_size, num_workers=images.num_workers)
    return ModelTest(metrics=metrics, outcome=outcome, class_names=images.class_names, logits=logits,
                     temperature=model_config.temperature, valid_images=len(images.datasets["valid"]))
