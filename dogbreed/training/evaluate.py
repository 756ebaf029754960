"""Testing an exported model dir on a dataset's test split, with the same data path and metrics as training.

Used where training itself does not test: a tuning search tests only its best model, once, at the end.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from dogbreed.config.options import TrainConfig
from dogbreed.data.splits import SplitDirs
from dogbreed.serving.artifact import ModelConfig, load_artifact, save_artifact
from dogbreed.training.reports import TestOutcome
from dogbreed.training.run import build_datamodule, build_trainer, collect_test_outcome, run_test
from dogbreed.training.runtime import Runtime, resolve_num_workers
from dogbreed.training.throughput import prepare_for_speed


@dataclass
class ModelTest:
    metrics: dict[str, float]  # {"loss", "acc", "acc_top5", "f1_macro"}
    outcome: TestOutcome
    class_names: list[str]


def evaluate_model_dir(config: TrainConfig, model_dir: Path, *, splits: SplitDirs,
                   runtime: Runtime | None = None) -> ModelTest:
    """Test the model in ``model_dir`` on ``splits.test`` (the validation split without one), the way
    ``config`` trained it (head-only runs read the backbone features from the cache)."""
    from dogbreed.training.module import DogBreedClassifier

    runtime = replace(runtime or Runtime.local(), progress_bar=False)
    net, model_config = load_artifact(model_dir)
    images = build_datamodule(config, splits, resolve_num_workers(config.num_workers, runtime.cpu_count))
    images.setup("test")
    model = DogBreedClassifier(num_classes=model_config.num_classes, finetune=config.finetune)
    model.net.load_state_dict(net.state_dict())
    datamodule, model = prepare_for_speed(config, images, model)
    trainer = build_trainer(config, [], runtime=runtime)
    metrics = run_test(trainer, model, datamodule)
    outcome = collect_test_outcome(trainer, model, images)
    return ModelTest(metrics=metrics, outcome=outcome, class_names=images.class_names)


def record_test_metrics(model_dir: Path, metrics: dict[str, float]) -> None:
    """Write the test metrics into the artifact's model_config.json (the weights are rewritten unchanged)."""
    net, model_config = load_artifact(model_dir)
    updated = ModelConfig(**{**model_config.__dict__, "metrics": {**model_config.metrics, "test": metrics}})
    save_artifact(model_dir, net, updated)
