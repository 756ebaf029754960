"""After training: fit the temperature and the abstention threshold on validation, measure them on test and
on non-dog images, and state what test-time augmentation costs. What comes out goes into the artifact
(temperature, abstention, tta) and into ``metrics.json`` (sections ``calibration``, ``abstention``, ``tta``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import pytorch_lightning as pl
import torch
from torchvision.models import ResNet

from dogbreed.config.options import TrainConfig
from dogbreed.core.abstention import SCORE_TYPES, AbstentionRule, accept_threshold, auroc, confidence_scores
from dogbreed.core.calibration import (
    ECE_BINS,
    calibrated_probabilities,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
)
from dogbreed.core.tta import views_per_image
from dogbreed.data.datamodule import DogBreedDataModule
from dogbreed.data.ood import ood_sets
from dogbreed.training.evaluation import SplitLogits, feature_logits, image_logits, tta_cost

TTA_COST_IMAGES = 16  # test images the TTA cost is timed on

logger = logging.getLogger(__name__)


@dataclass
class ServingFit:
    """What the artifact stores, what metrics.json reports, and the test logits for the reliability diagram."""

    temperature: float = 1.0
    abstention: AbstentionRule | None = None
    report: dict[str, Any] = field(default_factory=dict)
    test: SplitLogits | None = None


def calibration_measures(split: SplitLogits, temperature: float) -> dict[str, float]:
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


def choose_score(valid: torch.Tensor, ood: torch.Tensor, temperature: float, requested: str) -> tuple[str, dict]:
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
        "valid": calibration_measures(valid, temperature), "test": calibration_measures(test, temperature),
    }
    if score == "none":
        return fit
    chosen, selection = choose_score(valid.logits, ood_selection, temperature, score)
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


def _split_logits(config: TrainConfig, images: DogBreedDataModule, datamodule: pl.LightningDataModule,
                  net: ResNet, split: str, tta: str) -> SplitLogits:
    """Cached features when the run has them and no TTA is asked for; else decode and forward the images."""
    features = getattr(datamodule, "features", None)
    if tta == "none" and isinstance(features, dict) and split in features:
        return feature_logits(net, features[split])
    samples = images.datasets[split].samples
    return image_logits(net, [path for path, _ in samples], [label for _, label in samples],
                        pre=images.preprocessing, tta=tta, batch_size=config.batch_size,
                        num_workers=images.num_workers)


def tta_report(config: TrainConfig, images: DogBreedDataModule, datamodule: pl.LightningDataModule, net: ResNet,
               with_tta: SplitLogits) -> dict:
    """Test accuracy with and without TTA, and the per-image cost of each measured in this run."""
    plain = _split_logits(config, images, datamodule, net, "test", "none")
    paths = [path for path, _ in images.datasets["test"].samples[:TTA_COST_IMAGES]]
    return {"mode": config.tta, "views": views_per_image(config.tta), "test_acc": with_tta.accuracy,
            "test_acc_without_tta": plain.accuracy, "cost_measured_on_images": len(paths),
            **tta_cost(net, paths, pre=images.preprocessing, tta=config.tta)}


def calibrate_run(config: TrainConfig, images: DogBreedDataModule, datamodule: pl.LightningDataModule,
                  net: ResNet) -> ServingFit:
    """Everything after the test pass: served logits, temperature, abstention, TTA cost (rank 0 only)."""
    if not config.calibrate and config.abstention_score == "none" and config.tta == "none":
        return ServingFit()
    valid = _split_logits(config, images, datamodule, net, "valid", config.tta)
    test = _split_logits(config, images, datamodule, net, "test", config.tta)
    selection, report, source = ood_sets(config.ood_dir, seed=config.seed)
    ood = [image_logits(net, sources, pre=images.preprocessing, tta=config.tta, batch_size=config.batch_size,
                        num_workers=images.num_workers).logits
           for sources in ((selection, report) if config.abstention_score != "none" else ([], []))]
    fit = fit_serving(valid, test, ood[0], ood[1], calibrate=config.calibrate, score=config.abstention_score,
                      accept_rate=config.accept_rate, ood_source=source)
    if config.tta != "none":
        fit.report["tta"] = tta_report(config, images, datamodule, net, test)
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
