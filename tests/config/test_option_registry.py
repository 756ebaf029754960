"""Every training option reaches its place (issue 24): a registry of wiring cases, one per option.

``TRAINING_CASES`` maps each option of :func:`dogbreed.config.options.option_fields` to a non-default value and a
check that builds the option's consumer (the data module, the model, the callbacks, the Trainer's keyword
arguments, the loader settings, the calibration, the output checks...) and asserts the value's effect there.
Three generic tests run over every option as well: the value round-trips through the command line into the flat
record written to ``model_config.json``, and the resume fingerprint changes exactly for the options that are not in
:data:`dogbreed.training.checkpoints.NOT_TRAINING_OPTIONS`.

An option added to a section without a case here fails ``test_every_option_has_a_wiring_case`` (by name) and its
own ``test_option_reaches_its_consumer[<name>]``. The options of the other commands (predict, serve, hpo,
prepare, export, import_model, package) are in ``tests/cli/test_command_option_registry.py``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import pytest
import torch

from dogbreed.config.options import DEMO_OVERRIDES, TrainConfig, option_fields, validate_config
from dogbreed.config.parser import parse_command
from dogbreed.config.sections import AUTO_LR
from dogbreed.training import run as run_module
from dogbreed.training.checkpoints import NOT_TRAINING_OPTIONS, run_fingerprint
from dogbreed.training.runtime import Runtime
from tests.helpers.builders import write_tree


@dataclass
class Ctx:
    """What a wiring check gets: the config with the option set, a scratch dir, the data tree, monkeypatch."""

    config: TrainConfig
    tmp: Path
    tree: Path
    monkeypatch: pytest.MonkeyPatch
    value: Any


@dataclass(frozen=True)
class Case:
    value: Any  # the non-default value the check sets (a callable of the scratch dir for paths)
    check: Callable[[Ctx], None]
    requires: dict[str, Any] = field(default_factory=dict)  # other options the value needs to be valid
    cli: str | None = None  # how it is typed on the command line, when not str(value)


# --- the consumers, built cheaply ----------------------------------------------------------------------------------

def _datamodule(ctx: Ctx, setup: bool = False):
    from dogbreed.data.sources import resolve_splits

    splits = resolve_splits(ctx.config.data, seed=ctx.config.optimisation.seed)
    datamodule = run_module.build_datamodule(ctx.config, splits, num_workers=0)
    if setup:
        datamodule.setup("fit")
    return datamodule


def _small_net(num_classes: int):
    """ResNet18 with the same head name and layout: the wiring does not need ResNet50's depth (5x faster)."""
    from torchvision.models import resnet18

    return resnet18(num_classes=num_classes)


def _model(ctx: Ctx):
    from dogbreed.training import module

    ctx.monkeypatch.setattr(module, "build_resnet50", _small_net)
    return run_module.build_model(ctx.config, num_classes=3)


def _groups(ctx: Ctx) -> list[dict[str, Any]]:
    return _model(ctx).configure_optimizers()["optimizer"].param_groups


def _callbacks(ctx: Ctx, kind: type) -> list[Any]:
    return [c for c in run_module.build_callbacks(ctx.config) if isinstance(c, kind)]


def _trainer(ctx: Ctx) -> dict[str, Any]:
    return run_module.trainer_settings(ctx.config, Runtime(cpu_count=8))


def _locations(ctx: Ctx) -> dict[str, Path]:
    from dogbreed.training.setup import output_locations

    config = ctx.config
    return output_locations(config.outputs, checkpoint_dir=config.checkpoints.checkpoint_dir,
                            debug_dir=config.diagnostics.debug_dir, cache_dir=run_module._cache_dir(config),
                            profile_dir=config.diagnostics.profile_dir_for(config.outputs.output_dir)
                            if config.diagnostics.profiler else None)


def _preprocessing(ctx: Ctx, name: str) -> None:
    """A preprocessing option reaches the data module's Preprocessing, and through it the training transform."""
    from dogbreed.core.transforms import build_train_transform

    pre = _datamodule(ctx).preprocessing
    expected = (ctx.value, 1.0) if name == "crop_scale" else ctx.value
    assert getattr(pre, name) == expected
    transform = build_train_transform(pre)
    if name == "crop_scale":
        assert transform.scale == (ctx.value, 1.0)
    elif name == "crop_min_side":
        assert transform.min_side == ctx.value
    elif name == "random_erasing":
        assert transform.erasing.p == ctx.value


def _calibration(ctx: Ctx) -> dict[str, Any]:
    """calibrate_run with its heavy parts recorded: what it asked for and what fit_serving got."""
    from dogbreed.training import evaluation

    seen: dict[str, Any] = {"split_tta": [], "ood": None, "fit": None, "tta_report": None}
    logits = SimpleNamespace(labels=torch.zeros(40), logits=torch.zeros(40, 3))

    def split_logits(images, datamodule, net, split, tta, batch_size):
        seen["split_tta"].append(tta)
        return logits

    def ood_sets(ood_dir, *, seed, count):
        seen["ood"] = (ood_dir, seed, count)
        return [], [], "source"

    def fit_serving(valid, test, ood_a, ood_b, **kwargs):
        seen["fit"] = kwargs
        return SimpleNamespace(report={})

    monkeypatch = ctx.monkeypatch
    monkeypatch.setattr(evaluation, "_split_logits", split_logits)
    monkeypatch.setattr(evaluation, "ood_sets", ood_sets)
    monkeypatch.setattr(evaluation, "image_logits", lambda *a, **k: SimpleNamespace(logits=torch.zeros(0, 3)))
    monkeypatch.setattr(evaluation, "fit_serving", fit_serving)
    monkeypatch.setattr(evaluation, "_tta_report", lambda tta, *a: seen.__setitem__("tta_report", tta) or {})
    images = SimpleNamespace(preprocessing=None, num_workers=0)
    seen["result"] = evaluation.calibrate_run(ctx.config.calibration, images, None, None, batch_size=4, seed=5)
    return seen


def _before_training(ctx: Ctx) -> tuple[bool, Any, dict[str, Any]]:
    """_Run.before_training with the picture and the LR finder recorded."""
    from dogbreed.training.before_training import LRSuggestion

    seen: dict[str, Any] = {}
    ctx.monkeypatch.setattr(run_module, "show_batch", lambda images, out: seen.setdefault("show_batch", out) and "x")

    def find_lr(make_trainer, model, datamodule, *, output_dir):
        seen["find_lr"] = output_dir
        return LRSuggestion(lr=0.0123, plot=Path(output_dir) / "lr_find.png", steps=20)

    ctx.monkeypatch.setattr(run_module, "find_lr", find_lr)
    run = run_module._Run(ctx.config, Runtime(), test=True, epoch_lines=False)
    model = SimpleNamespace(backbone_frozen=False, hparams={})
    stopped = run.before_training(SimpleNamespace(), model, None, {})
    return stopped, run, {**seen, "hparams": model.hparams}


# --- one check per option -------------------------------------------------------------------------------------------

def _check_data_dir(ctx: Ctx) -> None:
    splits = _datamodule(ctx).splits
    assert (splits.train, splits.valid, splits.test) == (ctx.value / "train", ctx.value / "valid", ctx.value / "test")


def _check_split_dir(name: str) -> Callable[[Ctx], None]:
    def check(ctx: Ctx) -> None:
        assert getattr(_datamodule(ctx).splits, name) == ctx.value
    return check


def _check_shares(ctx: Ctx) -> None:
    # 10 images per class: valid max(1, floor(10 * 0.3)) = 3, test floor(10 * 0.2) = 2, train 5; three classes
    datamodule = _datamodule(ctx, setup=True)
    counts = {split: len(dataset) for split, dataset in datamodule.datasets.items()}
    assert counts == {"train": 15, "valid": 9, "test": 6}
    assert datamodule.split_record is not None


def _check_image_size(ctx: Ctx) -> None:
    pre = _datamodule(ctx).preprocessing
    assert (pre.image_size, pre.resize_size) == (40, 41)  # round(40 * 232 / 224) = 41


def _check_augment(ctx: Ctx) -> None:
    from dogbreed.core.transforms import build_train_transform

    pre = _datamodule(ctx).preprocessing
    assert pre.augment == "trivialaugment"
    assert type(build_train_transform(pre).policy).__name__ == "TrivialAugmentWide"


def _check_skip_bad_images(ctx: Ctx) -> None:
    (ctx.tree / "train" / "001.Affenpinscher" / "broken.jpg").write_bytes(b"not an image")
    datamodule = _datamodule(ctx, setup=True)  # without the option the data check refuses the broken file
    assert datamodule.skip_bad_images is True
    assert all(d.skip_bad_images for d in datamodule.datasets.values())


def _check_allow_duplicates(ctx: Ctx) -> None:
    from dogbreed.core.errors import DataError

    tree = write_tree(ctx.tmp / "dup", {"train": 2, "valid": 1, "test": 1})
    breed = "001.Affenpinscher"
    (tree / "valid" / breed / "copy.jpg").write_bytes((tree / "train" / breed / "000.jpg").read_bytes())
    config = ctx.config.replace(data_dir=tree)
    datamodule = _datamodule(Ctx(config, ctx.tmp, tree, ctx.monkeypatch, ctx.value), setup=True)
    assert datamodule.allow_duplicates is True and len(datamodule.datasets["valid"]) == 4
    with pytest.raises(DataError):  # without it the byte-identical copy across splits is refused
        _datamodule(Ctx(config.replace(allow_duplicates=False), ctx.tmp, tree, ctx.monkeypatch, False), setup=True)


def _check_demo(ctx: Ctx) -> None:
    from dogbreed.data import demo

    made: list[tuple[Path, int]] = []

    def generate(root: Path, *, seed: int) -> Path:
        made.append((Path(root), seed))
        return ctx.tree

    ctx.monkeypatch.setattr(demo, "generate_demo_dataset", generate)
    assert _datamodule(ctx).splits.train == ctx.tree / "train"
    assert made == [(ctx.config.data.data_dir, 42)]


def _check_download(ctx: Ctx) -> None:
    from dogbreed.core.constants import DOGIMAGES_URL
    from dogbreed.data import sources

    asked: list[tuple[str, Path]] = []
    ctx.monkeypatch.setattr(sources, "download_dataset", lambda url, dest: asked.append((url, dest)) or ctx.tree)
    _datamodule(ctx)
    expected_url = ctx.config.data.dataset_url or DOGIMAGES_URL
    assert asked == [(expected_url, ctx.config.data.data_dir)]


def _check_model_dir(ctx: Ctx) -> None:
    assert _locations(ctx)["--model-dir"] == ctx.value


def _check_output_dir(ctx: Ctx) -> None:
    from dogbreed.training.setup import log_dir

    assert _locations(ctx)["--output-dir"] == ctx.value
    assert log_dir(ctx.config.tracking, ctx.config.outputs.output_dir) == ctx.value / "logs"


def _check_top_k(ctx: Ctx) -> None:
    from dogbreed.cli import demo

    asked: list[int] = []
    predictor = SimpleNamespace(predict_answers=lambda images, k: asked.append(k) or [])
    ctx.monkeypatch.setattr(demo.Predictor, "from_model_dir", classmethod(lambda cls, path: predictor))
    ctx.monkeypatch.setattr(demo, "holdout_images", lambda root: [])
    demo.show_demo_predictions(ctx.config, SimpleNamespace(model_dir=ctx.tmp, test_metrics={"acc": 1.0}))
    assert asked == [7]


def _check_overwrite(ctx: Ctx) -> None:
    from dogbreed.cli.run_claim import check_model_dir_free
    from dogbreed.core.errors import ConfigError

    model_dir = Path(ctx.config.outputs.model_dir)
    model_dir.mkdir(parents=True)
    (model_dir / "model.pth").write_bytes(b"another run's weights")
    os.utime(model_dir / "model.pth", (1_700_000_000, 1_700_000_000))  # 2023-11-14 22:13:20 UTC, named in the refusal
    check_model_dir_free(ctx.config)  # --overwrite: a model of another run may be replaced
    with pytest.raises(ConfigError) as refused:
        check_model_dir_free(ctx.config.replace(overwrite=False))
    assert str(refused.value) == (f"--model-dir {model_dir} holds the model of another run (written 2023-11-14 22:13 "
                                  "UTC): pass --overwrite to replace it, or choose another --model-dir")


def _check_epochs(ctx: Ctx) -> None:
    assert _trainer(ctx)["max_epochs"] == 4


def _check_batch_size(ctx: Ctx) -> None:
    from dogbreed.training.setup import run_loader_settings

    assert _datamodule(ctx).batch_size == 16
    loader = run_loader_settings(dataclasses.replace(ctx.config.runtime, num_workers=2),
                                 ctx.config.optimisation.batch_size, Runtime())
    assert loader.prefetch_factor == 8  # 128 images per worker / 16 per batch


def _check_lr(ctx: Ctx) -> None:
    # head lr, backbone lr * scale (base scale 1.0)
    assert [g["lr"] for g in _groups(ctx)] == [0.05, 0.05]
    assert _callbacks(ctx, run_module.NonFiniteGuard)[0].lr == 0.05


def _check_lr_find(ctx: Ctx) -> None:
    stopped, run, seen = _before_training(ctx)
    assert stopped is True
    assert seen["find_lr"] == ctx.config.outputs.output_dir
    assert "--lr-find: stopped before training; train with --lr 0.0123" in run.notes[-1]


def _check_lr_auto(ctx: Ctx) -> None:
    stopped, run, seen = _before_training(ctx)
    assert stopped is False
    assert run.config.optimisation.lr == 0.0123 and run.lr_found == 0.0123 and seen["hparams"] == {"lr": 0.0123}


def _check_weight_decay(ctx: Ctx) -> None:
    assert {g["weight_decay"] for g in _groups(ctx)} == {0.03}


def _check_backbone_lr_scale(ctx: Ctx) -> None:
    assert [g["lr"] for g in _groups(ctx)] == [2e-3, pytest.approx(2e-3 * 0.25)]


def _check_label_smoothing(ctx: Ctx) -> None:
    assert _model(ctx).loss_fn.label_smoothing == 0.2


def _check_weights(ctx: Ctx) -> None:
    state = _small_net(3).state_dict()
    state["conv1.weight"] = torch.full_like(state["conv1.weight"], 0.25)
    asked: list[str] = []
    ctx.monkeypatch.setattr(run_module, "load_backbone_state_dict", lambda weights: asked.append(weights) or state)
    model = _model(ctx)
    assert asked == [str(ctx.value)]
    assert torch.all(model.net.conv1.weight == 0.25)


def _check_finetune(ctx: Ctx) -> None:
    model = _model(ctx)
    assert model.backbone_frozen is True  # gradual: the head first
    assert len(model.configure_optimizers()["optimizer"].param_groups) == 1
    assert [c.freeze_epochs for c in _callbacks(ctx, run_module.GradualUnfreeze)] == [1]


def _check_freeze_epochs(ctx: Ctx) -> None:
    assert [c.freeze_epochs for c in _callbacks(ctx, run_module.GradualUnfreeze)] == [2]
    model = _model(ctx)
    model._trainer = SimpleNamespace(estimated_stepping_batches=30, max_epochs=3)
    assert model._schedule_steps() == (20, 0)  # the head phase: 30 steps * 2 of 3 epochs


def _check_warmup_epochs(ctx: Ctx) -> None:
    model = _model(ctx)
    model._trainer = SimpleNamespace(estimated_stepping_batches=30, max_epochs=3)
    scheduler = model.configure_optimizers()["lr_scheduler"]["scheduler"]
    assert type(scheduler).__name__ == "SequentialLR"
    assert scheduler._milestones == [10]  # 30 steps * 1 of 3 epochs


def _check_accumulate(ctx: Ctx) -> None:
    assert _trainer(ctx)["accumulate_grad_batches"] == 3


def _check_seed(ctx: Ctx) -> None:
    from dogbreed.data import demo

    assert _datamodule(ctx).auto_split.seed == 7
    made: list[int] = []
    ctx.monkeypatch.setattr(demo, "generate_demo_dataset", lambda root, *, seed: made.append(seed) or ctx.tree)
    _datamodule(ctx.__class__(**{**vars(ctx), "config": ctx.config.replace(demo=True)}))
    assert made == [7]  # the demo generator's seed too


def _check_monitor(ctx: Ctx) -> None:
    from dogbreed.training.selection import BestEpoch, EarlyStop

    best = _callbacks(ctx, BestEpoch)[0]
    assert (best.monitor, best.mode) == ("val_loss", "min")
    stop = _callbacks(ctx.__class__(**{**vars(ctx), "config": ctx.config.replace(early_stopping=2)}), EarlyStop)[0]
    assert (stop.monitor, stop.mode) == ("val/loss", "min")


def _check_early_stopping(ctx: Ctx) -> None:
    from dogbreed.training.selection import EarlyStop

    assert [(c.patience, c.monitor, c.mode) for c in _callbacks(ctx, EarlyStop)] == [(3, "val/acc", "max")]


def _check_max_time(ctx: Ctx) -> None:
    from dogbreed.training.selection import TimeBudget

    (budget,) = _callbacks(ctx, TimeBudget)
    assert budget._duration == timedelta(hours=1, minutes=2, seconds=3).total_seconds()


def _check_ema(ctx: Ctx) -> None:
    assert [c.decay for c in _callbacks(ctx, run_module.EMAWeights)] == [0.9]


def _check_mix(ctx: Ctx) -> None:
    mix = _model(ctx).batch_mix
    name = "MixUp" if ctx.config.recipe.mixup_alpha else "CutMix"
    assert type(mix).__name__ == name and mix.alpha == 0.4


def _check_num_workers(ctx: Ctx) -> None:
    from dogbreed.training.setup import run_loader_settings

    loader = run_loader_settings(ctx.config.runtime, ctx.config.optimisation.batch_size, Runtime(cpu_count=4))
    assert (loader.num_workers, loader.prefetch_factor) == (3, 8)  # 3 <= 2 x 4 CPUs; 128 / 4 per batch, at most 8


def _check_accelerator(ctx: Ctx) -> None:
    assert _trainer(ctx)["accelerator"] == "cpu"


def _check_precision(ctx: Ctx) -> None:
    assert _trainer(ctx)["precision"] == "bf16-mixed"


def _check_compile(ctx: Ctx) -> None:
    model = _model(ctx)
    compiled: list[bool] = []
    ctx.monkeypatch.setattr(model.net, "compile", lambda: compiled.append(True))  # torch.compile: seconds to load
    _, prepared = run_module.prepare_for_speed(ctx.config, None, model)
    assert prepared is model and compiled == [True]


def _check_checkpoint_dir(ctx: Ctx) -> None:
    from dogbreed.training.checkpoints import EpochCheckpoint, FinalNameCheckpointIO

    (checkpoint,) = _callbacks(ctx, EpochCheckpoint)
    assert Path(checkpoint.checkpoint_dir) == ctx.value
    assert _locations(ctx)["--checkpoint-dir"] == ctx.value
    assert [type(p) for p in _trainer(ctx)["plugins"]] == [FinalNameCheckpointIO]


def _check_resume_anyway(ctx: Ctx) -> None:
    asked: list[dict[str, Any]] = []
    ctx.monkeypatch.setattr(run_module, "plan_resume", lambda directory, fingerprint, **kw: asked.append(kw) or
                            run_module.ResumePlan())
    ctx.monkeypatch.setattr(run_module, "build_model", lambda config, num_classes: None)
    run_module._Run(ctx.config, Runtime(), test=True, epoch_lines=False).model(_datamodule(ctx, setup=True))
    assert asked == [{"resume_anyway": True, "num_classes": 3}]


def _check_cached_views(ctx: Ctx) -> None:
    assert run_module._cache_dir(ctx.config) is None  # 0: head-only training decodes images
    assert run_module._cache_dir(ctx.config.replace(cached_views=1)) is not None


def _check_cache_dir(ctx: Ctx) -> None:
    assert run_module._cache_dir(ctx.config) == ctx.value
    assert _locations(ctx)["--cache-dir"] == ctx.value


def _check_tta(ctx: Ctx) -> None:
    seen = _calibration(ctx)
    assert seen["split_tta"] == ["flip", "flip"] and seen["tta_report"] == "flip"


def _check_calibrate(ctx: Ctx) -> None:
    assert _calibration(ctx)["fit"]["calibrate"] is False


def _check_abstention_score(ctx: Ctx) -> None:
    seen = _calibration(ctx)
    assert seen["fit"]["score"] == "energy"
    assert seen["ood"][2] == 32  # 40 validation images: max(2 * 10, min(40, 32 generated per set))


def _check_accept_rate(ctx: Ctx) -> None:
    assert _calibration(ctx)["fit"]["accept_rate"] == 0.8


def _check_ood_dir(ctx: Ctx) -> None:
    assert _calibration(ctx)["ood"][0] == ctx.value


def _smdebug(ctx: Ctx):
    from dogbreed.diagnostics.smdebug_hook import SmDebugCallback

    return SmDebugCallback.from_options(ctx.config.diagnostics)


def _check_debug_dir(ctx: Ctx) -> None:
    assert Path(_smdebug(ctx).debug_dir) == ctx.value
    assert _locations(ctx)["--debug-dir"] == ctx.value.parent


def _check_debug_interval(attribute: str) -> Callable[[Ctx], None]:
    def check(ctx: Ctx) -> None:
        assert getattr(_smdebug(ctx), attribute) == 7
    return check


def _check_profiler(ctx: Ctx) -> None:
    from pytorch_lightning.profilers import SimpleProfiler

    from dogbreed.diagnostics.profiling import build_profiler

    profiler = build_profiler(ctx.config.diagnostics, ctx.config.outputs.output_dir)
    assert isinstance(profiler, SimpleProfiler)
    assert Path(profiler.dirpath) == Path(ctx.config.outputs.output_dir) / "profile"


def _profiling(ctx: Ctx):
    from dogbreed.diagnostics.profiling import profiling_callbacks

    (callback,) = profiling_callbacks(ctx.config.diagnostics, output_dir=ctx.config.outputs.output_dir, batch_size=4,
                                      num_workers=0)
    return callback


def _check_monitor_interval(ctx: Ctx) -> None:
    callback = _profiling(ctx)
    assert callback.interval_ms == 250 and callback.monitor.interval_s == 0.25


def _check_show_batch(ctx: Ctx) -> None:
    stopped, _, seen = _before_training(ctx)
    assert stopped is False and seen["show_batch"] == ctx.config.outputs.output_dir


def _check_profile_dir(ctx: Ctx) -> None:
    from dogbreed.diagnostics.profiling import build_profiler

    assert Path(build_profiler(ctx.config.diagnostics, ctx.config.outputs.output_dir).dirpath) == ctx.value
    callback = _profiling(ctx)
    assert (callback.out_dir, callback.copy_to) == (ctx.value, Path(ctx.config.outputs.output_dir) / "profile")
    assert _locations(ctx)["--profile-dir"] == ctx.value


def _check_logger(ctx: Ctx) -> None:
    assert _trainer(ctx)["logger"] is False


def _check_log_dir(ctx: Ctx) -> None:
    assert Path(_trainer(ctx)["logger"].save_dir) == ctx.value


def _tmp(name: str) -> Callable[[Path], Path]:
    return lambda tmp: tmp / name


GRADUAL = {"finetune": "gradual", "freeze_epochs": 1}
HEAD = {"finetune": "head", "weights": "imagenet"}

TRAINING_CASES: dict[str, Case] = {
    # data
    "data_dir": Case(lambda tmp: tmp / "other_data", _check_data_dir),
    "train_dir": Case(_tmp("t/train"), _check_split_dir("train")),
    "valid_dir": Case(_tmp("t/valid"), _check_split_dir("valid"), requires={"train_dir": Path("t/train")}),
    "test_dir": Case(_tmp("t/test"), _check_split_dir("test"), requires={"train_dir": Path("t/train")}),
    "valid_pct": Case(0.3, _check_shares, requires={"test_pct": 0.2}),
    "test_pct": Case(0.2, _check_shares, requires={"valid_pct": 0.3}),
    "image_size": Case(40, _check_image_size),
    "crop_scale": Case(0.5, lambda ctx: _preprocessing(ctx, "crop_scale")),
    "crop_min_side": Case(0.25, lambda ctx: _preprocessing(ctx, "crop_min_side")),
    "augment": Case("trivialaugment", _check_augment),
    "random_erasing": Case(0.3, lambda ctx: _preprocessing(ctx, "random_erasing")),
    "skip_bad_images": Case(True, _check_skip_bad_images),
    "allow_duplicates": Case(True, _check_allow_duplicates),
    "demo": Case(True, _check_demo),
    "download": Case(True, _check_download),
    "dataset_url": Case("https://example.com/dogs.zip", _check_download, requires={"download": True}),
    # outputs
    "model_dir": Case(_tmp("m"), _check_model_dir),
    "output_dir": Case(_tmp("o"), _check_output_dir),
    "top_k": Case(7, _check_top_k),
    "overwrite": Case(True, _check_overwrite),
    # optimisation
    "epochs": Case(4, _check_epochs),
    "batch_size": Case(16, _check_batch_size),
    "lr": Case(0.05, _check_lr),
    "lr_find": Case(True, _check_lr_find),
    "weight_decay": Case(0.03, _check_weight_decay),
    "backbone_lr_scale": Case(0.25, _check_backbone_lr_scale),
    "label_smoothing": Case(0.2, _check_label_smoothing),
    "weights": Case(lambda tmp: str(tmp / "resnet50.pth"), _check_weights),
    "finetune": Case("gradual", _check_finetune, requires={"freeze_epochs": 1}),
    "freeze_epochs": Case(2, _check_freeze_epochs, requires={"finetune": "gradual"}),
    "warmup_epochs": Case(1, _check_warmup_epochs),
    "accumulate_grad_batches": Case(3, _check_accumulate),
    "seed": Case(7, _check_seed),
    # stopping
    "monitor": Case("val_loss", _check_monitor),
    "early_stopping": Case(3, _check_early_stopping),
    "max_time": Case("01:02:03", _check_max_time),
    # recipe
    "ema_decay": Case(0.9, _check_ema),
    "mixup_alpha": Case(0.4, _check_mix),
    "cutmix_alpha": Case(0.4, _check_mix),
    # runtime
    "num_workers": Case(3, _check_num_workers),
    "accelerator": Case("cpu", _check_accelerator),
    "precision": Case("bf16-mixed", _check_precision),
    "compile": Case(True, _check_compile),
    # checkpoints
    "checkpoint_dir": Case(_tmp("ckpt"), _check_checkpoint_dir),
    "resume_anyway": Case(True, _check_resume_anyway),
    # cache
    "cached_views": Case(0, _check_cached_views, requires=HEAD),
    "cache_dir": Case(_tmp("cache"), _check_cache_dir, requires=HEAD),
    # calibration
    "tta": Case("flip", _check_tta),
    "calibrate": Case(False, _check_calibrate),
    "abstention_score": Case("energy", _check_abstention_score),
    "accept_rate": Case(0.8, _check_accept_rate),
    "ood_dir": Case(_tmp("not_dogs"), _check_ood_dir),
    # diagnostics
    "debug_dir": Case(_tmp("trial/debug"), _check_debug_dir),
    "debug_train_interval": Case(7, _check_debug_interval("train_interval")),
    "debug_eval_interval": Case(7, _check_debug_interval("eval_interval")),
    "profiler": Case("simple", _check_profiler),
    "monitor_interval_ms": Case(250, _check_monitor_interval, requires={"profiler": "simple"}),
    "show_batch": Case(True, _check_show_batch),
    "profile_dir": Case(_tmp("prof"), _check_profile_dir, requires={"profiler": "simple"}),
    # tracking
    "logger": Case("none", _check_logger),
    "log_dir": Case(_tmp("logs_here"), _check_log_dir),
}
# A second value of --lr that takes another path: auto (the learning-rate finder, then training with its choice).
EXTRA_CASES: dict[str, tuple[str, Case]] = {"lr=auto": ("lr", Case(AUTO_LR, _check_lr_auto, cli="auto"))}

# Base of every case: tiny, CPU, full fine-tuning from scratch (what the fast tests train with). A case's value must
# differ from this base and from the field's default.
BASE = dict(epochs=3, batch_size=4, image_size=32, weights="none", finetune="full", num_workers=0, lr=2e-3,
            backbone_lr_scale=1.0)
OPTION_NAMES = [f.name for f in option_fields()]
DEFAULTS = {f.name: f.default for f in option_fields()}


def _resolve(value: Any, tmp: Path) -> Any:
    if callable(value):
        return value(tmp)
    return tmp / value if isinstance(value, Path) and not value.is_absolute() else value


def _case_config(name: str, case: Case, tmp: Path, tree: Path) -> tuple[TrainConfig, Any]:
    value = _resolve(case.value, tmp)
    requires = {k: _resolve(v, tmp) for k, v in case.requires.items()}
    base = dict(BASE, data_dir=tree, model_dir=tmp / "model", output_dir=tmp / "reports")
    if name in ("train_dir", "valid_dir", "test_dir", "data_dir"):
        for split in ("train", "valid", "test"):
            write_tree(tmp / "t" / split if name != "data_dir" else value / split, {"": 2})
        if name != "data_dir":
            base.pop("data_dir")
    if name in ("valid_pct", "test_pct"):
        base["data_dir"] = write_tree(tmp / "flat", {"": 10})
    return TrainConfig(**{**base, **requires, name: value}), value


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return write_tree(tmp_path_factory.mktemp("registry") / "data", {"train": 2, "valid": 1, "test": 1})


def _run_case(name: str, case: Case, tmp_path: Path, tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if name == "skip_bad_images":  # the case breaks an image: its own copy of the tree
        tree = write_tree(tmp_path / "own_tree", {"train": 2, "valid": 1, "test": 1})
    config, value = _case_config(name, case, tmp_path, tree)
    validate_config(config)  # a case sets a value a user could set
    case.check(Ctx(config=config, tmp=tmp_path, tree=tree, monkeypatch=monkeypatch, value=value))


def test_every_option_has_a_wiring_case():
    missing = sorted(set(OPTION_NAMES) - set(TRAINING_CASES))
    stale = sorted(set(TRAINING_CASES) - set(OPTION_NAMES))
    assert not missing, f"training options without a wiring case in TRAINING_CASES: {', '.join(missing)}"
    assert not stale, f"wiring cases for options that no longer exist: {', '.join(stale)}"


@pytest.mark.parametrize("name", OPTION_NAMES)
def test_option_reaches_its_consumer(name, tmp_path, tree, monkeypatch):
    if name not in TRAINING_CASES:
        pytest.fail(f"--{name.replace('_', '-')} has no wiring case: add one to TRAINING_CASES in {__name__}")
    _run_case(name, TRAINING_CASES[name], tmp_path, tree, monkeypatch)


@pytest.mark.parametrize("label", sorted(EXTRA_CASES))
def test_option_value_with_its_own_path_reaches_its_consumer(label, tmp_path, tree, monkeypatch):
    name, case = EXTRA_CASES[label]
    _run_case(name, case, tmp_path, tree, monkeypatch)


@pytest.mark.parametrize("name", OPTION_NAMES)
def test_case_value_is_not_a_default(name, tmp_path):
    case = TRAINING_CASES.get(name)
    if case is None:
        pytest.fail(f"--{name.replace('_', '-')} has no wiring case")
    value = _resolve(case.value, tmp_path)
    assert value != DEFAULTS[name], f"{name}: the case sets the default value"
    assert value != BASE.get(name, DEFAULTS[name]), f"{name}: the case sets the base value"


def _cli_value(case: Case, value: Any) -> str:
    if case.cli is not None:
        return case.cli
    return str(value).lower() if isinstance(value, bool) else str(value)


@pytest.mark.parametrize("name", [*OPTION_NAMES, *sorted(EXTRA_CASES)])
def test_option_round_trips_from_the_command_line_to_the_record(name, tmp_path, tree):
    """``--option value`` lands in that option (no two swapped) and in the flat record of model_config.json."""
    option, case = EXTRA_CASES[name] if name in EXTRA_CASES else (name, TRAINING_CASES.get(name))
    if case is None:
        pytest.fail(f"--{name.replace('_', '-')} has no wiring case")
    config, value = _case_config(option, case, tmp_path, tree)
    argv = [f"--{option.replace('_', '-')}", _cli_value(case, value)]
    for other, other_value in config.to_dict().items():
        if other != option and other_value != DEFAULTS[other] and other_value is not None:
            argv += [f"--{other.replace('_', '-')}", _cli_value(Case(None, print), other_value)]
    record = parse_command(argv).config.to_dict()
    expected = str(value) if isinstance(value, Path) else value
    assert record[option] == expected
    presets = DEMO_OVERRIDES if option == "demo" else {}  # --demo's presets, for the options not given
    preset = {k: v for k, v in presets.items() if f"--{k.replace('_', '-')}" not in argv}
    assert record == {**config.to_dict(), **preset}


def _fingerprint(config: TrainConfig) -> dict[str, Any]:
    return run_fingerprint(config.to_dict(), ["a", "b"], {}, {})["options"]


@pytest.mark.parametrize("name", OPTION_NAMES)
def test_fingerprint_changes_exactly_for_options_that_change_what_is_learned(name, tmp_path, tree):
    """A resumed run must refuse another run's checkpoint: every option changes the fingerprint, except the ones
    NOT_TRAINING_OPTIONS lists (pinned in tests/config/test_pinned_lists.py)."""
    case = TRAINING_CASES.get(name)
    if case is None:
        pytest.fail(f"--{name.replace('_', '-')} has no wiring case")
    config, _ = _case_config(name, case, tmp_path, tree)
    base = TrainConfig(**{**{k: v for k, v in config.to_dict().items() if k != name}})
    changed = _fingerprint(config) != _fingerprint(base.replace(**{name: DEFAULTS[name]}))
    assert changed is (name not in NOT_TRAINING_OPTIONS)
