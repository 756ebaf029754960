"""Small data facts the runs depend on: the demo's drawn images (the README quotes numbers measured on them), an
OOD folder split alternately into two disjoint halves, the split defaults a DataModule falls back to."""

from __future__ import annotations

import numpy as np
import pytest

from dogbreed.data.auto_split import AutoSplit
from dogbreed.data.demo import draw_breed_image
from dogbreed.data.ood import ood_sets
from tests.helpers.builders import save_image


@pytest.mark.parametrize("breed, size, mean", [
    # Measured once from the generator (numpy's PCG64 with seed 7 is the same everywhere); a change to the drawing
    # (palette jitter, pattern, noise) moves the channel means by whole levels and must be made on purpose.
    (0, (139, 174), (137.899, 118.678, 123.543)),
    (1, (139, 174), (227.480, 123.475, 107.796)),
    (2, (139, 174), (133.356, 144.322, 142.623)),
    (3, (139, 174), (141.335, 158.799, 137.361)),
    (4, (139, 174), (174.520, 176.586, 182.854)),
])
def test_a_demo_image_is_what_the_quoted_numbers_were_measured_on(breed, size, mean):
    pixels = np.asarray(draw_breed_image(breed, np.random.default_rng(7))).astype(np.float64)
    assert pixels.shape[:2] == size
    assert pixels.reshape(-1, 3).mean(0) == pytest.approx(mean, abs=0.05)


def test_the_demo_breeds_are_pinned():
    from dogbreed.data.demo import BREEDS

    assert [breed[0] for breed in BREEDS] == ["001.Zebra_Terrier", "002.Picket_Pointer", "003.Checkered_Collie",
                                              "004.Ringed_Retriever", "005.Spotted_Spaniel"]


def test_an_ood_folder_is_split_alternately_into_two_disjoint_halves(tmp_path):
    paths = [save_image(tmp_path / "ood" / f"{i}.png") for i in range(7)]
    selection, report, description = ood_sets(tmp_path / "ood", seed=3)
    assert (selection, report) == (paths[0::2], paths[1::2])
    assert description == f"{tmp_path / 'ood'} (7 images: 4 to choose and check the rule, 3 to report on)"


def test_the_split_defaults_a_datamodule_falls_back_to():
    assert AutoSplit() == AutoSplit(valid_pct=None, test_pct=None, seed=0)


class _ControlledRng:
    """uniform(low, high) answers low for a scalar (the direction), and low then high for the two colours: the
    gradient runs from start = black to end = white against both axes."""

    def __init__(self) -> None:
        self.colours = 0

    def uniform(self, low, high, size=None):
        if size is None:
            return float(low)
        self.colours += 1
        return np.full(size, float(low if self.colours == 1 else high))


def test_a_generated_gradient_runs_along_both_random_axis_weights():
    from dogbreed.data.ood import _gradient

    image = np.asarray(_gradient(_ControlledRng(), (5, 3)), dtype=np.float64)  # 5 wide, 3 high
    # weights -1 and -1: t = -(x + y) / 5, scaled to [0, 1] over the image: 1 - (x + y) / 6 of white
    y, x = np.mgrid[0:3, 0:5]
    expected = 255.0 * (1 - (x + y) / 6)
    assert image.shape == (3, 5, 3)
    assert np.abs(image - expected[..., None]).max() <= 1.0  # uint8 truncation
    assert image[0, 0].tolist() == [255, 255, 255] and image[2, 4].tolist() == [0, 0, 0]
