"""image_logits with nothing to score: an empty split gives (0, classes) logits and no labels, so every metric
downstream sees zero images rather than a phantom row."""

from __future__ import annotations

from dogbreed.core.network import build_resnet50
from dogbreed.core.transforms import Preprocessing
from dogbreed.training.evaluation import image_logits


def test_an_empty_split_has_zero_rows_of_logits():
    split = image_logits(build_resnet50(5), [], pre=Preprocessing(image_size=32), tta="none", batch_size=4)
    assert tuple(split.logits.shape) == (0, 5) and tuple(split.labels.shape) == (0,)
