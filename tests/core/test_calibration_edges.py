"""dogbreed.core.calibration at its edges: the defaults, the dtypes, the refusals and the fit's bounds, each written
out (issue 24: the mutants that survived tests/core/test_calibration.py)."""

from __future__ import annotations

import math

import pytest
import torch

from dogbreed.core.calibration import (
    ECE_BINS,
    TEMPERATURE_BOUNDS,
    calibrated_probabilities,
    check_temperature,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
    reliability_bins,
)


def test_the_pinned_constants():
    assert TEMPERATURE_BOUNDS == (0.01, 100.0)
    assert ECE_BINS == 15


@pytest.mark.parametrize("value", [0, 0.0, -1.0, float("nan"), float("inf"), True, False, "2", None])
def test_a_bad_temperature_is_refused_with_the_default_name(value):
    with pytest.raises(ValueError) as refused:
        check_temperature(value)
    assert str(refused.value) == f"temperature must be a finite number > 0, got {value!r}"


def test_a_bad_temperature_is_refused_under_the_given_name():
    with pytest.raises(ValueError) as refused:
        check_temperature(-2, "model_config.json temperature")
    assert str(refused.value) == "model_config.json temperature must be a finite number > 0, got -2"


@pytest.mark.parametrize(("value", "expected"), [(2, 2.0), (1e-9, 1e-9), (0.5, 0.5)])
def test_a_good_temperature_comes_back_as_a_float(value, expected):
    checked = check_temperature(value)
    assert checked == expected and type(checked) is float


def test_probabilities_default_to_temperature_1_over_the_last_dimension():
    logits = torch.tensor([1.0, 2.0, 3.0])  # one image's logits: 1-d
    e = [math.exp(1.0), math.exp(2.0), math.exp(3.0)]
    expected = torch.tensor([v / sum(e) for v in e])
    assert torch.allclose(calibrated_probabilities(logits), expected, atol=1e-7)
    batch = torch.tensor([[0.0, math.log(3.0)], [math.log(4.0), 0.0]])
    assert torch.allclose(calibrated_probabilities(batch), torch.tensor([[0.25, 0.75], [0.8, 0.2]]), atol=1e-7)
    # T = 2 halves the logits: [0, log 3] / 2 -> probabilities 1 : sqrt(3)
    halved = calibrated_probabilities(batch, 2.0)[0]
    assert halved[1].item() == pytest.approx(math.sqrt(3) / (1 + math.sqrt(3)), abs=1e-7)


@pytest.mark.parametrize(("dtype", "expected"), [(torch.float16, torch.float32), (torch.bfloat16, torch.float32),
                                                 (torch.float32, torch.float32), (torch.float64, torch.float64)])
def test_probabilities_are_float32_unless_the_logits_are_float64(dtype, expected):
    assert calibrated_probabilities(torch.zeros(2, 3, dtype=dtype)).dtype == expected


def test_nll_defaults_to_temperature_1():
    logits, labels = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 1])
    # -log softmax: log(1 + e^-2) = 0.126928, log(1 + e^-1) = 0.313262; mean 0.220095
    assert negative_log_likelihood(logits, labels) == pytest.approx((0.1269280110 + 0.3132616875) / 2, abs=1e-9)
    # T = 2: log(1 + e^-1) and log(1 + e^-0.5) = 0.474077
    assert negative_log_likelihood(logits, labels, 2.0) == pytest.approx((0.3132616875 + 0.4740769842) / 2,
                                                                           abs=1e-9)


def test_the_fit_stops_at_its_bounds():
    # Every answer right by a small margin (0.01): the NLL keeps falling as T -> 0 and its gradient is still large
    # at T = 0.01 (margin / T = 1), so the fit ends at the lower bound. (With a wide margin LBFGS stops earlier, on
    # a vanishing gradient.)
    logits = torch.tensor([[0.01, 0.0], [0.0, 0.01]] * 4)
    labels = torch.tensor([0, 1] * 4)
    assert fit_temperature(logits, labels) == 0.01
    # Every answer wrong: the NLL keeps falling as T -> infinity (uniform), so it ends at the upper bound.
    assert fit_temperature(logits, 1 - labels) == 100.0


def test_the_fit_recovers_a_known_temperature_from_float32_inference_logits():
    torch.manual_seed(0)
    true_logits = torch.randn(400, 5) * 2
    labels = torch.distributions.Categorical(logits=true_logits).sample()
    with torch.inference_mode():
        scaled = (true_logits * 3).float()  # 3x overconfident
    assert fit_temperature(scaled, labels) == pytest.approx(3.0, rel=0.15)


def test_an_empty_split_has_no_calibration_error_and_empty_bins():
    empty = torch.zeros(0, 3)
    assert expected_calibration_error(empty, torch.zeros(0, dtype=torch.long)) == 0.0
    rows = reliability_bins(empty, torch.zeros(0, dtype=torch.long))
    assert len(rows) == 15 and all(r["count"] == 0 and r["confidence"] == 0.0 and r["accuracy"] == 0.0 for r in rows)
    assert rows[0]["lower"] == 0.0 and rows[-1]["upper"] == 1.0 and rows[1]["lower"] == pytest.approx(1 / 15)


def test_the_fit_refuses_an_empty_split_and_fits_a_single_image():
    with pytest.raises(ValueError) as refused:
        fit_temperature(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))
    assert str(refused.value) == "need (N, C) logits and N labels, got (0, 3) and (0,)"
    with pytest.raises(ValueError) as refused:
        fit_temperature(torch.zeros(2, 3), torch.zeros(3, dtype=torch.long))
    assert str(refused.value) == "need (N, C) logits and N labels, got (2, 3) and (3,)"
    with pytest.raises(ValueError) as refused:
        fit_temperature(torch.zeros(3), torch.zeros(3, dtype=torch.long))
    assert str(refused.value) == "need (N, C) logits and N labels, got (3,) and (3,)"
    single = fit_temperature(torch.tensor([[2.0, 0.0]]), torch.tensor([0]))  # right: sharpening helps, T < 1
    assert 0.01 <= single < 1.0


def test_the_fit_takes_float64_logits_and_labels_made_in_inference_mode():
    """Inference tensors cannot be saved for backward: the fit must copy them, even when no dtype changes."""
    with torch.inference_mode():
        logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 0.5]], dtype=torch.float64)
        labels = torch.tensor([0, 1, 1])
    assert logits.is_inference() and labels.is_inference()
    fitted = fit_temperature(logits, labels)
    assert 0.01 <= fitted <= 100.0 and fitted != 1.0
    assert logits.tolist() == [[2.0, 0.0], [0.0, 1.0], [1.0, 0.5]]  # the caller's logits untouched


def test_a_fit_that_ends_on_nan_serves_temperature_1():
    assert fit_temperature(torch.tensor([[float("nan"), 0.0], [0.0, 1.0]]), torch.tensor([0, 1])) == 1.0


def test_the_lowest_and_highest_confidences_land_in_the_first_and_last_bins():
    uniform = torch.full((4, 20), 1 / 20, dtype=torch.float64)  # top-1 probability 0.05 < 1/15: bin 0
    labels = torch.zeros(4, dtype=torch.long)
    counts = [row["count"] for row in reliability_bins(uniform, labels)]
    assert counts[0] == 4 and sum(counts) == 4
    confident = torch.tensor([[0.97, 0.03], [1.0 + 1e-12, 0.0], [0.9334, 0.0666]], dtype=torch.float64)
    rows = reliability_bins(confident, torch.tensor([0, 0, 1]))
    # 0.97 and 1 (+ rounding above 1) -> bin 14 (0.9333, 1]; 0.9334 -> bin 14 too; nothing is dropped
    assert [row["count"] for row in rows][13:] == [0, 3]
    assert rows[14]["accuracy"] == pytest.approx(2 / 3) and rows[14]["confidence"] == pytest.approx(
        (0.97 + 1.0 + 0.9334) / 3)
