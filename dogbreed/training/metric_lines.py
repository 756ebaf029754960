"""The plain metric lines printed to stdout: one format, parsed by SageMaker's metric regexes."""

from __future__ import annotations

from typing import Mapping

# One line per epoch, e.g. "epoch=3 train_loss=0.5123 train_acc=0.8400 val_loss=0.6012 val_acc=0.8100"
EPOCH_LINE_KEYS = ("train_loss", "train_acc", "val_loss", "val_acc", "val_acc_top5", "val_f1_macro")
TEST_LINE_KEYS = ("test_loss", "test_acc", "test_acc_top5", "test_f1_macro")
VALUE_FORMAT = "{:.6f}"


def _format(values: Mapping[str, float], keys: tuple[str, ...]) -> str:
    return " ".join(f"{k}={VALUE_FORMAT.format(values[k])}" for k in keys if k in values)


def epoch_line(epoch: int, values: Mapping[str, float]) -> str:
    return f"epoch={epoch} " + _format(values, EPOCH_LINE_KEYS)


def test_line(values: Mapping[str, float]) -> str:
    return "test: " + _format(values, TEST_LINE_KEYS)


# SageMaker parses stdout with these. A value is [0-9.]+ (or nan/inf, which match nothing: no metric).
_NUMBER = r"([0-9]+\.?[0-9]*)"
METRIC_DEFINITIONS: list[dict[str, str]] = [
    {"Name": "train_loss", "Regex": rf"^epoch=\d+ .*\btrain_loss={_NUMBER}"},
    {"Name": "train_acc", "Regex": rf"^epoch=\d+ .*\btrain_acc={_NUMBER}"},
    {"Name": "val_loss", "Regex": rf"^epoch=\d+ .*\bval_loss={_NUMBER}"},
    {"Name": "val_acc", "Regex": rf"^epoch=\d+ .*\bval_acc={_NUMBER}"},
    {"Name": "val_f1_macro", "Regex": rf"^epoch=\d+ .*\bval_f1_macro={_NUMBER}"},
    {"Name": "test_loss", "Regex": rf"^test: .*\btest_loss={_NUMBER}"},
    {"Name": "test_acc", "Regex": rf"^test: .*\btest_acc={_NUMBER}"},
]
# The tuning objective is a validation metric: tuning on test would leak the test set into model choice.
OBJECTIVE_METRIC = "val_acc"
OBJECTIVE_TYPE = "Maximize"


def metric_definitions() -> list[dict[str, str]]:
    """SageMaker ``metric_definitions`` for the lines above (a fresh copy)."""
    return [dict(d) for d in METRIC_DEFINITIONS]
