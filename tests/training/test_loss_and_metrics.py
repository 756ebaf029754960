"""The loss and the metrics a run reports, against values computed by hand or by torch itself."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dogbreed.config.parser import parse_config
from dogbreed.training.module import DogBreedClassifier
from dogbreed.training.run import build_model


def one_hot_logits(predicted: list[int], num_classes: int = 3) -> torch.Tensor:
    return F.one_hot(torch.tensor(predicted), num_classes).float() * 5.0


@pytest.fixture(scope="module")
def classifier() -> DogBreedClassifier:
    return DogBreedClassifier(num_classes=3, finetune="full")


def test_macro_f1_on_imbalanced_predictions_matches_the_hand_computed_value(classifier):
    # 6 x class 0 (all right), 2 x class 1 (one taken for 0), 2 x class 2 (both taken for 0).
    targets = torch.tensor([0, 0, 0, 0, 0, 0, 1, 1, 2, 2])
    predicted = [0, 0, 0, 0, 0, 0, 1, 0, 0, 0]
    metrics = classifier.val_metrics.clone()
    metrics.update(one_hot_logits(predicted), targets)
    values = {k: float(v) for k, v in metrics.compute().items()}
    # F1 per class: 0: 2*6/(2*6+3+0) = 0.8; 1: 2*1/(2*1+0+1) = 2/3; 2: 0. Macro = (0.8 + 2/3 + 0) / 3 = 22/45.
    assert values["val/f1_macro"] == pytest.approx(22 / 45, abs=1e-6)  # micro F1 would be 0.7, weighted 0.6133
    assert values["val/acc"] == pytest.approx(0.7, abs=1e-6)
    assert values["val/acc_top5"] == pytest.approx(1.0)  # top-3 of 3 classes: always right


def test_macro_f1_is_right_after_an_all_correct_first_batch(classifier):
    # torchmetrics compute groups once merged F1 into top-5 accuracy's state after such a batch (F1 = 1.0).
    metrics = classifier.test_metrics.clone()
    metrics.update(one_hot_logits([0, 1, 2]), torch.tensor([0, 1, 2]))
    metrics.update(one_hot_logits([0, 0, 0, 0, 0, 0, 1, 0, 0, 0]), torch.tensor([0, 0, 0, 0, 0, 0, 1, 1, 2, 2]))
    values = {k: float(v) for k, v in metrics.compute().items()}
    # 0: TP 7, FP 3, FN 0 -> 14/17; 1: TP 2, FN 1 -> 4/5; 2: TP 1, FN 2 -> 1/2.
    assert values["test/f1_macro"] == pytest.approx((14 / 17 + 4 / 5 + 1 / 2) / 3, abs=1e-6)
    assert values["test/acc"] == pytest.approx(10 / 13, abs=1e-6)


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_label_smoothing_option_reaches_the_training_loss(smoothing):
    config = parse_config(["--label-smoothing", str(smoothing), "--weights", "none", "--finetune", "full"])
    model = build_model(config, num_classes=3).eval()
    torch.manual_seed(0)
    images, targets = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 1])
    loss = model.training_step((images, targets), 0).detach()
    with torch.no_grad():
        logits = model(images)
    assert float(loss) == pytest.approx(float(F.cross_entropy(logits, targets, label_smoothing=smoothing)), rel=1e-5)
    if smoothing:
        assert abs(float(loss) - float(F.cross_entropy(logits, targets))) > 1e-3


def test_label_smoothing_is_what_torch_defines():
    # With smoothing s over C classes the target is (1 - s) one-hot + s / C: written out for one sample.
    model = DogBreedClassifier(num_classes=3, label_smoothing=0.3, finetune="full")
    logits, target = torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([0])
    log_p = torch.log_softmax(logits, dim=1)[0]
    expected = -((1 - 0.3 + 0.1) * log_p[0] + 0.1 * log_p[1] + 0.1 * log_p[2])
    assert float(model.loss_fn(logits, target)) == pytest.approx(float(expected), rel=1e-6)


def test_per_image_test_results_hold_each_images_own_loss_and_both_probabilities():
    import math

    model = DogBreedClassifier(num_classes=3, finetune="full")
    model.on_test_epoch_start()
    batches = [(torch.tensor([[2.0, 0.0, 0.0]]), torch.tensor([1])),  # wrong: predicted 0, true 1
               (torch.tensor([[0.0, 1.0, 3.0], [5.0, 5.0, 0.0]]), torch.tensor([2, 1]))]  # right; a tie -> 0
    for logits, targets in batches:
        model.test_confmat.update(logits, targets)
        model._keep_test_samples(logits, targets)
    model.on_test_epoch_end()
    samples = model.test_samples
    wrong_p, wrong_target = math.exp(2) / (math.exp(2) + 2), 1 / (math.exp(2) + 2)
    right_p = math.exp(3) / (1 + math.e + math.exp(3))
    tie_p = math.exp(5) / (2 * math.exp(5) + 1)
    assert samples["target"].tolist() == [1, 2, 1] and samples["predicted"].tolist() == [0, 2, 0]
    assert samples["predicted_probability"].tolist() == pytest.approx([wrong_p, right_p, tie_p], rel=1e-6)
    assert samples["target_probability"].tolist() == pytest.approx([wrong_target, right_p, tie_p], rel=1e-6)
    assert samples["loss"].tolist() == pytest.approx([-math.log(wrong_target), -math.log(right_p), -math.log(tie_p)],
                                                     rel=1e-6)
    assert model.test_confusion.tolist() == [[0, 0, 0], [2, 0, 0], [0, 0, 1]]
    assert model._test_parts == []
