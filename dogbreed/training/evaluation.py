"""Evaluating the trained model: the test pass (metrics, confusion matrix, per-image results for the reports), and
the model as it will be served: its logits (the artifact's TTA, float32) over a list of images or over cached
features, with the wall time per image; on them, the temperature and the abstention threshold fitted on validation
and measured on test and on non-dog images, and what test-time augmentation costs.

What comes out goes into the artifact (temperature, abstention, tta) and into ``metrics.json`` (sections
``calibration``, ``abstention``, ``tta``).
"""

from __future__ import annotations

import statistics
import time
from functools import partial
from typing import Sequence

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from dogbreed.config.sections import CalibrationOptions
from dogbreed.core.images import ImageSource
from dogbreed.core.resnet import ResNet
from dogbreed.core.transforms import Preprocessing, decode_eval_image
from dogbreed.core.tta import build_tta_transform, tta_logits, views_per_image
from dogbreed.data.datamodule import DogBreedDataModule
from dogbreed.data.ood import GENERATED_PER_SET, ood_sets
from dogbreed.training.callbacks import stage_values
from dogbreed.training.head_training import CachedFeatures
from dogbreed.training.module import DogBreedClassifier
from dogbreed.training.reports import TestOutcome
from dogbreed.training.serving_fit import (
    MIN_ABSTENTION_OOD,
    MIN_ABSTENTION_VALID,
    ServingFit,
    SplitLogits,
    fit_serving,
    summary_line,
)

__all__ = ["ServingFit", "SplitLogits", "calibrate_run", "collect_test_outcome", "fit_serving", "image_logits",
           "run_test", "summary_line", "tta_cost"]

# --- the test pass ------------------------------------------------------------------------------------------------

def run_test(trainer: pl.Trainer, model: DogBreedClassifier, datamodule: pl.LightningDataModule) -> dict[str, float]:
    """``trainer.test`` -> ``{"loss", "acc", "acc_top5", "f1_macro"}``."""
    tested = trainer.test(model, datamodule=datamodule, verbose=False)[0]
    return {k[len("test_"):]: v for k, v in stage_values(tested, "test").items()}


def collect_test_outcome(trainer: pl.Trainer, model: DogBreedClassifier, images: DogBreedDataModule) -> TestOutcome:
    """The confusion matrix and per-image results of the last ``trainer.test`` (for the reports)."""
    if model.test_confusion is None:
        raise RuntimeError("trainer.test() ran but produced no confusion matrix")
    # Per-image results follow the test loader's order only in a single process (DDP shards the split).
    samples = model.test_samples if trainer.world_size == 1 else {}
    return TestOutcome(confusion=model.test_confusion, samples=samples,
                       paths=[path for path, _ in images.datasets["test"].samples])


# --- the served model's logits ------------------------------------------------------------------------------------

class _Images(Dataset):
    def __init__(self, sources: Sequence[ImageSource], pre: Preprocessing, tta: str) -> None:
        self.sources, self.transform = list(sources), build_tta_transform(pre, tta)
        self.decode = partial(decode_eval_image, pre=pre)

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.transform(self.decode(self.sources[index]))


@torch.inference_mode()
def image_logits(
    net: ResNet, sources: Sequence[ImageSource], labels: Sequence[int] | None = None, *, pre: Preprocessing,
    tta: str, batch_size: int, num_workers: int = 0,
) -> SplitLogits:
    """Decode and preprocess exactly as serving does, forward every TTA view, average the logits."""
    device = next(net.parameters()).device
    was_training = net.training
    net.eval()
    # PIL images in memory cannot go to worker processes cheaply; files can.
    workers = num_workers if all(not hasattr(s, "getpixel") for s in sources) else 0
    loader = DataLoader(_Images(sources, pre, tta), batch_size=batch_size, shuffle=False, num_workers=workers)
    chunks = [tta_logits(net, batch.to(device, non_blocking=True), tta, pre.image_size).cpu() for batch in loader]
    net.train(was_training)
    logits = torch.cat(chunks) if chunks else torch.empty(0, net.fc.out_features)
    targets = torch.tensor(list(labels) if labels is not None else [-1] * len(sources), dtype=torch.long)
    return SplitLogits(logits, targets)


@torch.inference_mode()
def tta_cost(net: ResNet, sources: Sequence[ImageSource], *, pre: Preprocessing, tta: str,
             repeats: int = 3) -> dict[str, float]:
    """Seconds per image with ``tta`` and without, on the same images, interleaved after a warm-up (medians of
    ``repeats``): end to end (decode, preprocess, forward, as serving runs it) and the forward alone."""
    device = next(net.parameters()).device
    was_training = net.training
    net.eval()
    modes = {"tta": (tta, build_tta_transform(pre, tta)), "none": ("none", build_tta_transform(pre, "none"))}

    def timed(mode: str, transform: object, decoded: list | None) -> tuple[float, float]:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        images = decoded if decoded is not None else [decode_eval_image(source, pre) for source in sources]
        batch = torch.stack([transform(image) for image in images]).to(device)  # type: ignore[operator]
        forward_start = time.perf_counter()
        tta_logits(net, batch, mode, pre.image_size)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        end = time.perf_counter()
        return end - start, end - forward_start

    for mode, transform in modes.values():  # warm-up: lazy initialisation, caches
        timed(mode, transform, None)
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in modes}
    for _ in range(repeats):
        for name, (mode, transform) in modes.items():
            runs[name].append(timed(mode, transform, None))
    net.train(was_training)
    count = max(1, len(sources))
    cost = {f"{kind}_seconds_per_image{'' if name == 'tta' else '_without_tta'}":
            statistics.median(run[index] for run in runs[name]) / count
            for name in modes for index, kind in enumerate(("end_to_end", "forward"))}
    cost["end_to_end_cost_ratio"] = cost["end_to_end_seconds_per_image"] / max(
        cost["end_to_end_seconds_per_image_without_tta"], 1e-12)
    cost["forward_cost_ratio"] = cost["forward_seconds_per_image"] / max(
        cost["forward_seconds_per_image_without_tta"], 1e-12)
    return cost


@torch.inference_mode()
def _feature_logits(net: ResNet, cached: CachedFeatures) -> SplitLogits:
    """The head applied to cached eval-view features (view 0): the no-TTA logits without a backbone pass."""
    head = net.fc
    device = head.weight.device
    logits = head(cached.features[:, 0].to(device, dtype=head.weight.dtype)).float().cpu()
    return SplitLogits(logits, cached.labels.clone())


# --- calibration, abstention, the TTA report ----------------------------------------------------------------------

TTA_COST_IMAGES = 16  # test images the TTA cost is timed on


def _split_logits(images: DogBreedDataModule, datamodule: pl.LightningDataModule, net: ResNet, split: str, tta: str,
                  batch_size: int) -> SplitLogits:
    """Cached features when the run has them and no TTA is asked for; else decode and forward the images."""
    features = getattr(datamodule, "features", None)
    if tta == "none" and isinstance(features, dict) and split in features:
        return _feature_logits(net, features[split])
    samples = images.datasets[split].samples
    return image_logits(net, [path for path, _ in samples], [label for _, label in samples],
                        pre=images.preprocessing, tta=tta, batch_size=batch_size, num_workers=images.num_workers)


def _tta_report(tta: str, images: DogBreedDataModule, datamodule: pl.LightningDataModule, net: ResNet,
                with_tta: SplitLogits, batch_size: int) -> dict:
    """Test accuracy with and without TTA, and the per-image cost of each measured in this run."""
    plain = _split_logits(images, datamodule, net, "test", "none", batch_size)
    paths = [path for path, _ in images.datasets["test"].samples[:TTA_COST_IMAGES]]
    return {"mode": tta, "views": views_per_image(tta), "test_acc": with_tta.accuracy,
            "test_acc_without_tta": plain.accuracy, "cost_measured_on_images": len(paths),
            **tta_cost(net, paths, pre=images.preprocessing, tta=tta)}


def ood_set_size(valid_images: int) -> int:
    """Generated non-dog images per set, sized to the job: as many as validation images, at least enough to check
    the rule on (2 x the minimum per half), at most :data:`GENERATED_PER_SET`; none when validation is too small
    for abstention to be checked at all (it will be off)."""
    if valid_images < MIN_ABSTENTION_VALID:
        return 0
    return max(2 * MIN_ABSTENTION_OOD, min(valid_images, GENERATED_PER_SET))


def calibrate_run(options: CalibrationOptions, images: DogBreedDataModule, datamodule: pl.LightningDataModule,
                  net: ResNet, *, batch_size: int, seed: int) -> ServingFit:
    """Everything after the test pass: served logits, temperature, abstention, TTA cost (rank 0 only).

    Validation and test logits come from the cached features when the run has them (no backbone pass); the
    non-dog images are the only new backbone work, and only when abstention can be checked at all."""
    if not options.calibrate and options.abstention_score == "none" and options.tta == "none":
        return ServingFit()
    valid = _split_logits(images, datamodule, net, "valid", options.tta, batch_size)
    test = _split_logits(images, datamodule, net, "test", options.tta, batch_size)
    count = ood_set_size(int(valid.labels.numel())) if options.abstention_score != "none" else 0
    selection, report, source = ood_sets(options.ood_dir, seed=seed, count=count) if count else ([], [], "")
    ood = [image_logits(net, sources, pre=images.preprocessing, tta=options.tta, batch_size=batch_size,
                        num_workers=images.num_workers).logits for sources in (selection, report)]
    fit = fit_serving(valid, test, ood[0], ood[1], calibrate=options.calibrate, score=options.abstention_score,
                      accept_rate=options.accept_rate, ood_source=source)
    if options.tta != "none":
        fit.report["tta"] = _tta_report(options.tta, images, datamodule, net, test, batch_size)
    return fit
