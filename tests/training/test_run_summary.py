"""The end-of-run summary (phase durations, images/s, where everything went) and the durations recorded in
metrics.json and model_config.json."""

from __future__ import annotations

import json

import pytest
from pytorch_lightning.callbacks import Callback

from dogbreed.training.reports import PhaseTimer, RunCounts, callback_summary_lines, summary_lines, timing_record
from dogbreed.training.run import train
from tests.helpers.builders import fast_config


class StepClock:
    """A clock that the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _timed_run() -> tuple[PhaseTimer, RunCounts]:
    clock = StepClock()
    timer = PhaseTimer(clock)
    for name, seconds in (("data_check", 0.5), ("feature_cache", 100.0), ("fit", 12.0), ("test", 2.0)):
        with timer.phase(name):
            clock.now += seconds
    clock.now += 0.5  # outside any phase (building the model)
    counts = RunCounts(images={"train": 600, "valid": 100, "test": 100}, epochs=5, extracted_images=800)
    return timer, counts


def test_timing_record_has_every_phase_the_total_and_throughputs():
    timer, counts = _timed_run()
    assert timing_record(timer, counts) == {
        "data_check_s": 0.5, "feature_cache_s": 100.0, "fit_s": 12.0, "test_s": 2.0, "total_s": 115.0,
        "train_images_per_s": 250.0,  # 600 images x 5 epochs / 12 s
        "feature_images_per_s": 8.0,  # 800 backbone passes / 100 s
    }


def test_timing_record_rounds_seconds_to_the_millisecond_and_rates_to_the_hundredth():
    """Durations whose ratios do not end: the rounding of each figure is pinned, not only its formula."""
    clock = StepClock()
    timer = PhaseTimer(clock)
    for name, seconds in (("data_check", 0.12345), ("feature_cache", 30.0), ("fit", 7.0)):
        with timer.phase(name):
            clock.now += seconds
    counts = RunCounts(images={"train": 600}, epochs=5, extracted_images=800)
    assert timing_record(timer, counts) == {
        "data_check_s": 0.123, "feature_cache_s": 30.0, "fit_s": 7.0, "total_s": 37.123,
        "train_images_per_s": 428.57,  # 3000 / 7 = 428.5714...
        "feature_images_per_s": 26.67,  # 800 / 30 = 26.666...
    }


def test_summary_lines_read_as_a_table_with_extra_lines_and_places():
    timer, counts = _timed_run()
    lines = summary_lines(timer, counts, {"model artifact": "outputs/model/", "reports": "outputs/reports/"},
                          extra=["data wait: 3% of each step"])
    assert lines == [
        "run summary:",
        "  data check           0.5s  (train 600, valid 100, test 100 images)",
        "  feature cache       1m40s  (800 backbone passes, 8.0 img/s)",
        "  fit                   12s  (5 epoch(s), 250.0 train img/s)",
        "  test                 2.0s  (100 images)",
        "  total               1m55s",
        "  data wait: 3% of each step",
        "model artifact: outputs/model/",
        "reports:        outputs/reports/",
    ]


class DataWaitLine(Callback):
    def summary_lines(self) -> list[str]:
        return ["data wait: 1.0% of step time"]


@pytest.mark.slow  # a training run or subprocess: make test, not make test-quick
def test_a_run_records_durations_and_prints_where_everything_went(tmp_path, tiny_tree):
    config = fast_config(tmp_path, tiny_tree, epochs=1, batch_size=4)
    result = train(config, extra_callbacks=[DataWaitLine()])
    metrics = json.loads((config.outputs.output_dir / "metrics.json").read_text())
    timing = metrics["timing"]
    assert {"data_check_s", "fit_s", "test_s", "total_s", "train_images_per_s"} <= set(timing)
    assert "feature_cache_s" not in timing  # full fine-tune: no cache phase
    assert timing["total_s"] >= timing["fit_s"] + timing["test_s"] > 0
    # 12 training images (4 per breed x 3), one epoch
    # (fit_s is stored rounded to ms, the rate from the unrounded time, itself rounded to 0.01)
    assert timing["train_images_per_s"] == pytest.approx(12 / timing["fit_s"], rel=2e-3, abs=0.01)
    model_config = json.loads((config.outputs.model_dir / "model_config.json").read_text())
    assert model_config["metrics"]["timing"] == timing == result.timing
    text = "\n".join(result.summary)
    assert result.summary[0] == "run summary:"
    assert "(train 12, valid 6, test 6 images)" in text and "(1 epoch(s), " in text
    assert "  data wait: 1.0% of step time" in result.summary
    outputs = config.outputs
    assert f"model artifact: {outputs.model_dir}/ (model.pth, model_config.json)" in text
    [listed] = [line for line in result.summary if line.startswith("reports:")]
    assert listed == (f"reports:        {outputs.output_dir}/ (metrics.json, training_curves.png, "
                      "confusion_matrix.png, per_class_accuracy.csv, most_confused.csv, worst_predictions.png, "
                      "calibration.png)")
    written = {path.name for path in outputs.output_dir.iterdir() if path.is_file()}
    assert written == set(listed.split("(", 1)[1].rstrip(")").split(", "))  # every file listed, none missing


def test_callbacks_without_summary_lines_add_nothing():
    assert callback_summary_lines([Callback(), DataWaitLine()]) == ["data wait: 1.0% of step time"]


def test_a_resumed_run_reports_only_the_epochs_this_process_trained():
    timer, counts = _timed_run()
    counts.epochs, counts.resumed_after = 2, 3  # epochs 4 and 5 of 5 in 12 s
    assert timing_record(timer, counts)["train_images_per_s"] == 100.0  # 600 images x 2 epochs / 12 s
    lines = summary_lines(timer, counts, {})
    assert "  fit                   12s  (2 epoch(s), 100.0 train img/s; resumed after epoch 3)" in lines


def test_run_counts_count_backbone_passes_as_images_times_views_of_the_splits_built_now():
    from types import SimpleNamespace

    import torch

    from dogbreed.core.transforms import Preprocessing
    from dogbreed.training.gradual import HeadPhaseData
    from dogbreed.training.head_training import CachedFeatures, FeatureDataModule, run_counts

    images = SimpleNamespace(datasets={"train": [0] * 10, "valid": [0] * 4, "test": [0] * 6})
    features = {"train": CachedFeatures(torch.zeros(10, 3, 8), torch.zeros(10, dtype=torch.long)),  # 3 views
                "valid": CachedFeatures(torch.zeros(4, 1, 8), torch.zeros(4, dtype=torch.long)),
                "test": CachedFeatures(torch.zeros(6, 1, 8), torch.zeros(6, dtype=torch.long))}
    data = FeatureDataModule(features, class_names=["a"], preprocessing=Preprocessing(image_size=32), batch_size=4,
                             cache_hits={"train": False, "valid": False, "test": True})  # test read from the cache
    counts = run_counts(images, data, epochs=5, resumed_after=2)  # type: ignore[arg-type]
    assert (counts.images, counts.epochs, counts.resumed_after) == ({"train": 10, "valid": 4, "test": 6}, 3, 2)
    assert counts.extracted_images == 10 * 3 + 4  # the test split was a cache hit
    # a gradual run's head phase holds its features as feature_data
    gradual = HeadPhaseData(images, data, freeze_epochs=1)  # type: ignore[arg-type]
    assert run_counts(images, gradual, epochs=5).extracted_images == 34  # type: ignore[arg-type]
    assert run_counts(images, images, epochs=5).extracted_images == 0  # type: ignore[arg-type]  # images only
