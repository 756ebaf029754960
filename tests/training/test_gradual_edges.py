"""--finetune gradual's data switch: cached features during the head phase for training and validation, images
from the first unfrozen epoch, and the test split always as images (it measures the final network)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from dogbreed.training.gradual import HeadPhaseData


@pytest.mark.parametrize("testing, epoch, features", [
    (False, 0, True), (False, 1, True), (False, 2, False), (False, 5, False),
    (True, 0, False), (True, 3, False),
])
def test_features_are_served_in_the_head_phase_only_and_never_to_test(testing, epoch, features):
    data = HeadPhaseData(images=SimpleNamespace(), feature_data=SimpleNamespace(), freeze_epochs=2)
    data.trainer = SimpleNamespace(testing=testing, current_epoch=epoch)
    assert data.serves_features() is features


def test_without_a_trainer_it_serves_features():
    assert HeadPhaseData(images=SimpleNamespace(), feature_data=SimpleNamespace(), freeze_epochs=2).serves_features()
