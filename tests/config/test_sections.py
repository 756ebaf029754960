"""TrainConfig in sections: flat construction and flags, sectioned reading, the flat record, --help by section."""

import dataclasses
from pathlib import Path

import pytest

from dogbreed.config.options import TrainConfig, option_sections, section_descriptions
from dogbreed.config.parser import build_parser, parse_config
from dogbreed.config.sections import DataOptions

# Written out: every section and its options, in order (what --help groups and an options reference lists).
SECTIONS = {
    "data": ["data-dir", "train-dir", "valid-dir", "test-dir", "valid-pct", "test-pct", "image-size", "crop-scale",
             "crop-min-side", "augment", "random-erasing", "skip-bad-images", "allow-duplicates", "demo", "download",
             "dataset-url"],
    "outputs": ["model-dir", "output-dir", "top-k", "overwrite"],
    "optimisation": ["epochs", "batch-size", "lr", "lr-find", "weight-decay", "backbone-lr-scale", "label-smoothing",
                     "weights", "finetune", "freeze-epochs", "warmup-epochs", "accumulate-grad-batches", "seed"],
    "stopping": ["monitor", "early-stopping", "max-time"],
    "recipe": ["ema-decay", "mixup-alpha", "cutmix-alpha"],
    "runtime": ["num-workers", "accelerator", "precision", "compile"],
    "checkpoints": ["checkpoint-dir", "resume-anyway"],
    "cache": ["cached-views", "cache-dir"],
    "calibration": ["tta", "calibrate", "abstention-score", "accept-rate", "ood-dir"],
    "diagnostics": ["debug-dir", "debug-train-interval", "debug-eval-interval", "profiler", "monitor-interval-ms",
                    "show-batch", "profile-dir"],
    "tracking": ["logger", "log-dir"],
}


def test_every_option_is_in_exactly_one_section():
    assert option_sections() == SECTIONS
    names = [name for options in SECTIONS.values() for name in options]
    assert len(names) == len(set(names)) == 61


def test_flat_keywords_land_in_their_sections_and_the_rest_keeps_its_default():
    config = TrainConfig(epochs=2, image_size=64, logger="none", cached_views=0, profiler="simple")
    assert (config.optimisation.epochs, config.data.image_size, config.tracking.logger) == (2, 64, "none")
    assert (config.cache.cached_views, config.diagnostics.profiler) == (0, "simple")
    assert (config.optimisation.batch_size, config.outputs.model_dir) == (32, Path("outputs/model"))


def test_an_unknown_option_is_refused_by_name():
    with pytest.raises(TypeError) as refused:
        TrainConfig(batchsize=64)
    assert str(refused.value) == "unknown training option(s): batchsize"
    with pytest.raises(TypeError) as refused:  # every unknown name, sorted, the whole message
        TrainConfig(lr_rate=0.1, batchsize=64)
    assert str(refused.value) == "unknown training option(s): batchsize, lr_rate"


def test_a_whole_section_can_be_given_and_flat_options_then_change_it():
    config = TrainConfig(data=DataOptions(image_size=64, demo=True), image_size=96)
    assert (config.data.image_size, config.data.demo) == (96, True)
    with pytest.raises(TypeError) as refused:
        TrainConfig(data={"image_size": 64})
    assert str(refused.value) == "TrainConfig(data=...) takes a DataOptions, got dict"


def test_replace_changes_flat_options_and_keeps_everything_else():
    base = TrainConfig(epochs=3, weights="none", finetune="full")
    changed = base.replace(lr=0.01, profiler="simple")
    assert (changed.optimisation.lr, changed.diagnostics.profiler, changed.optimisation.epochs) == (0.01, "simple", 3)
    assert changed.optimisation.backbone_lr_scale == 1.0  # resolved from --weights none when base was made
    assert base.optimisation.lr == 1e-3  # a copy: the original is unchanged
    assert dataclasses.replace(base, lr=0.01) == changed.replace(profiler="")


def test_sections_cannot_be_changed_in_place():
    config = TrainConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.optimisation.lr = 1.0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.data = DataOptions()  # type: ignore[misc]


def test_every_section_refuses_a_change_in_place():
    config = TrainConfig()
    sections = [getattr(config, f.name) for f in dataclasses.fields(config)]
    assert len(sections) == 11 and all(dataclasses.is_dataclass(s) for s in sections)
    for section in sections:
        first = dataclasses.fields(section)[0].name
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(section, first, getattr(section, first))


def test_the_flat_record_holds_every_option_with_paths_as_strings():
    record = TrainConfig(data_dir=Path("data"), epochs=2).to_dict()
    assert list(record) == [name.replace("-", "_") for options in SECTIONS.values() for name in options]
    assert (record["data_dir"], record["model_dir"], record["epochs"]) == ("data", "outputs/model", 2)
    assert (record["backbone_lr_scale"], record["checkpoint_dir"], record["tta"]) == (0.1, None, "none")


def test_the_flags_stay_flat_and_fill_the_sections():
    config = parse_config(["--batch-size", "64", "--tta", "flip", "--log_dir", "logs", "--compile", "True"])
    assert (config.optimisation.batch_size, config.calibration.tta) == (64, "flip")
    assert (config.tracking.log_dir, config.runtime.compile) == (Path("logs"), True)


def test_help_groups_the_options_by_section_in_order():
    parser = build_parser()
    groups = {group.title: group for group in parser._action_groups}
    for section, options in SECTIONS.items():
        assert [action.option_strings[0] for action in groups[section]._group_actions] == [f"--{o}" for o in options]
    assert groups["data"].description == "Where the images come from and how the network sees them."
    assert section_descriptions()["tracking"] == "Experiment tracking: Lightning's loggers."
    text = parser.format_help()
    positions = [text.index(f"\n{section}:\n") for section in SECTIONS]
    assert positions == sorted(positions)
