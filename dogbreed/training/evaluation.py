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
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Sequence

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.models import ResNet

from dogbreed.config.sections import CalibrationOptions
from dogbreed.core.abstention import SCORE_TYPES, AbstentionRule, accept_threshold, auroc, confidence_scores
from dogbreed.core.calibration import (
    ECE_BINS,
    calibrated_probabilities,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
)
from dogbreed.core.images import ImageSource
from dogbreed.core.transforms import Preprocessing, decode_eval_image
from dogbreed.core.tta import build_tta_transform, tta_logits, views_per_image
from dogbreed.data.datamodule import DogBreedDataModule
from dogbreed.data.ood import ood_sets
from dogbreed.training.callbacks import stage_values
from dogbreed.training.head_training import CachedFeatures
from dogbreed.training.module import DogBreedClassifier
from dogbreed.training.reports import TestOutcome

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

@dataclass(frozen=True)
class SplitLogits:
    """``logits`` (N, C) float32 on the CPU, ``labels`` (N,) (-1 for images without a breed)."""

    logits: torch.Tensor
    labels: torch.Tensor

    @property
    def accuracy(self) -> float:
        if self.labels.numel() == 0:
            return float("nan")
        return float((self.logits.argmax(dim=1) == self.labels).double().mean())


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

@dataclass
class ServingFit:
    """What the artifact stores, what metrics.json reports, and the test logits for the reliability diagram."""

    temperature: float = 1.0
    abstention: AbstentionRule | None = None
    report: dict[str, Any] = field(default_factory=dict)
    test: SplitLogits | None = None


def _calibration_measures(split: SplitLogits, temperature: float) -> dict[str, float]:
    """ECE (15 bins) and NLL of a labelled split before (T = 1) and after temperature scaling."""
    before = calibrated_probabilities(split.logits, 1.0)
    after = calibrated_probabilities(split.logits, temperature)
    return {
        "ece_before": expected_calibration_error(before, split.labels, ECE_BINS),
        "ece_after": expected_calibration_error(after, split.labels, ECE_BINS),
        "nll_before": negative_log_likelihood(split.logits, split.labels, 1.0),
        "nll_after": negative_log_likelihood(split.logits, split.labels, temperature),
        "images": int(split.labels.numel()),
    }


def _choose_score(valid: torch.Tensor, ood: torch.Tensor, temperature: float, requested: str) -> tuple[str, dict]:
    """The requested score, or with ``auto`` the one whose validation-vs-OOD AUROC is higher (ties: max prob)."""
    selection = {s: auroc(confidence_scores(valid, temperature, s), confidence_scores(ood, temperature, s))
                 for s in SCORE_TYPES}
    if requested != "auto":
        return requested, selection
    return max(SCORE_TYPES, key=lambda s: (selection[s], s == "max_probability")), selection


def fit_serving(
    valid: SplitLogits, test: SplitLogits, ood_selection: torch.Tensor, ood_report: torch.Tensor, *,
    calibrate: bool, score: str, accept_rate: float, ood_source: str = "",
) -> ServingFit:
    """Temperature on validation (LBFGS on NLL), then the abstention threshold for ``accept_rate`` of validation.

    The score is chosen on validation vs ``ood_selection``; AUROC is reported on test vs ``ood_report``.
    """
    temperature = fit_temperature(valid.logits, valid.labels) if calibrate else 1.0
    fit = ServingFit(temperature=temperature, test=test)
    fit.report["calibration"] = {
        "temperature": temperature, "fitted": calibrate, "fitted_on": "valid", "bins": ECE_BINS,
        "valid": _calibration_measures(valid, temperature), "test": _calibration_measures(test, temperature),
    }
    if score == "none":
        return fit
    chosen, selection = _choose_score(valid.logits, ood_selection, temperature, score)
    threshold = accept_threshold(confidence_scores(valid.logits, temperature, chosen), accept_rate)
    rule = fit.abstention = AbstentionRule(chosen, threshold, accept_rate)

    def accepted(logits: torch.Tensor) -> float:
        return float(rule.accepts(confidence_scores(logits, temperature, chosen)).double().mean())

    fit.report["abstention"] = {
        "score": chosen, "threshold": threshold, "target_accept_rate": accept_rate, "ood_source": ood_source,
        "auroc_test_vs_ood": {s: auroc(confidence_scores(test.logits, temperature, s),
                                       confidence_scores(ood_report, temperature, s)) for s in SCORE_TYPES},
        "auroc_valid_vs_ood_selection": selection,
        "accept_rate": {"valid": accepted(valid.logits), "test": accepted(test.logits), "ood": accepted(ood_report)},
    }
    return fit


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


def calibrate_run(options: CalibrationOptions, images: DogBreedDataModule, datamodule: pl.LightningDataModule,
                  net: ResNet, *, batch_size: int, seed: int) -> ServingFit:
    """Everything after the test pass: served logits, temperature, abstention, TTA cost (rank 0 only)."""
    if not options.calibrate and options.abstention_score == "none" and options.tta == "none":
        return ServingFit()
    valid = _split_logits(images, datamodule, net, "valid", options.tta, batch_size)
    test = _split_logits(images, datamodule, net, "test", options.tta, batch_size)
    selection, report, source = ood_sets(options.ood_dir, seed=seed)
    ood = [image_logits(net, sources, pre=images.preprocessing, tta=options.tta, batch_size=batch_size,
                        num_workers=images.num_workers).logits
           for sources in ((selection, report) if options.abstention_score != "none" else ([], []))]
    fit = fit_serving(valid, test, ood[0], ood[1], calibrate=options.calibrate, score=options.abstention_score,
                      accept_rate=options.accept_rate, ood_source=source)
    if options.tta != "none":
        fit.report["tta"] = _tta_report(options.tta, images, datamodule, net, test, batch_size)
    return fit


def summary_line(report: dict[str, Any]) -> str:
    """One plain line for the log: temperature, test ECE before -> after, the abstention score and AUROC."""
    parts = []
    if "calibration" in report:
        cal = report["calibration"]
        parts.append(f"temperature={cal['temperature']:.4f} test_ece={cal['test']['ece_before']:.4f}"
                     f"->{cal['test']['ece_after']:.4f} test_nll={cal['test']['nll_before']:.4f}"
                     f"->{cal['test']['nll_after']:.4f}")
    if "abstention" in report:
        abst = report["abstention"]
        parts.append(f"abstention={abst['score']} threshold={abst['threshold']:.4f} "
                     f"auroc_test_vs_ood={abst['auroc_test_vs_ood'][abst['score']]:.4f} "
                     f"accept_test={abst['accept_rate']['test']:.3f} accept_ood={abst['accept_rate']['ood']:.3f}")
    if "tta" in report:
        tta = report["tta"]
        parts.append(f"tta={tta['mode']} test_acc={tta['test_acc']:.4f} (without {tta['test_acc_without_tta']:.4f}) "
                     f"cost_ratio={tta['end_to_end_cost_ratio']:.2f} (forward {tta['forward_cost_ratio']:.2f})")
    return "calibration: " + " ".join(parts) if parts else ""
