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
