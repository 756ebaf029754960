"""The epoch and test lines, written out: six decimals, the keys in their fixed order, absent keys left out, and
SageMaker's metric regexes reading each value back."""

from __future__ import annotations

import re

from dogbreed.training.metric_lines import epoch_line, metric_definitions
from dogbreed.training.metric_lines import test_line as format_test_line


def test_an_epoch_line_has_six_decimals_in_the_fixed_key_order_and_skips_absent_keys():
    values = {"val_acc": 2 / 3, "train_loss": 1 / 7, "val_f1_macro": 0.5, "train_acc": 1.0, "lr": 0.001,
              "val_loss": 12.3456789}
    assert epoch_line(3, values) == ("epoch=3 train_loss=0.142857 train_acc=1.000000 val_loss=12.345679 "
                                     "val_acc=0.666667 val_f1_macro=0.500000")


def test_a_test_line_has_six_decimals_and_the_test_keys_only():
    values = {"test_acc_top5": 0.9, "test_loss": 3000 / 7, "test_acc": 1 / 3, "val_acc": 0.1, "test_f1_macro": 0.25}
    assert format_test_line(values) == ("test: test_loss=428.571429 test_acc=0.333333 test_acc_top5=0.900000 "
                                 "test_f1_macro=0.250000")


def test_sagemakers_regexes_read_every_printed_value_back():
    lines = [epoch_line(12, {"train_loss": 1 / 7, "train_acc": 0.25, "val_loss": 0.75, "val_acc": 0.125,
                             "val_f1_macro": 0.5}),
             format_test_line({"test_loss": 2.5, "test_acc": 1 / 3})]
    found = {}
    for definition in metric_definitions():
        for line in lines:
            if (match := re.search(definition["Regex"], line)) is not None:
                found[definition["Name"]] = match.group(1)
    assert found == {"train_loss": "0.142857", "train_acc": "0.250000", "val_loss": "0.750000", "val_acc": "0.125000",
                     "val_f1_macro": "0.500000", "test_loss": "2.500000", "test_acc": "0.333333"}
