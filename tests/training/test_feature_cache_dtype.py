"""The feature cache stores float16 unless a value would not fit: float16's largest finite value is 65504, so a
feature at or beyond it keeps the file in float32 (the largest value itself, though representable, is kept in
float32 too: the rule is strictly below)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dogbreed.core.transforms import Preprocessing
from dogbreed.data.datamodule import DogBreedDataModule
from dogbreed.data.splits import SplitDirs
from dogbreed.training import head_training


class _Constant(nn.Module):
    """A stand-in backbone: every image's 2048 features are ``value`` (one of them ``-value``)."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out = torch.full((len(images), 2048), self.value)
        out[:, 7] = -self.value
        return out


@pytest.mark.parametrize("value, dtype", [(60000.0, torch.float16), (65472.0, torch.float16),
                                          (65504.0, torch.float32), (-70000.0, torch.float32),
                                          (70000.0, torch.float32)])
def test_features_are_stored_in_float16_only_below_its_largest_value(tiny_tree, monkeypatch, value, dtype):
    monkeypatch.setattr(head_training, "feature_extractor", lambda net, device: _Constant(value))
    dm = DogBreedDataModule(SplitDirs.from_data_dir(tiny_tree), preprocessing=Preprocessing(image_size=32))
    dm.setup()
    samples = dm.datasets["valid"].samples
    built = head_training.build_split_features(nn.Identity(), samples, pre=Preprocessing(image_size=32), views=1,
                                               seed=0, batch_size=4, num_workers=0, device=torch.device("cpu"))
    assert built.features.dtype == dtype and built.features.shape == (len(samples), 1, 2048)
    assert built.features[0, 0, 0].item() == value and built.features[0, 0, 7].item() == -value  # exact either way
