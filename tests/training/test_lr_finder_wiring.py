"""The learning-rate finder's wiring, without a real search: the range and step count handed to Lightning's
Tuner, the rate an ``--lr auto`` model is built with, where the curve goes, and its title (a real finder run is in
the slow ``test_training_loop.py``)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import matplotlib.pyplot as plt
import pytest
from PIL import Image

from dogbreed.core.errors import ConfigError
from dogbreed.training import before_training


class _Finder:
    def __init__(self, suggestion: float | None, lrs: list[float]) -> None:
        self._suggestion, self.results = suggestion, {"lr": lrs, "loss": [1.0] * len(lrs)}

    def suggestion(self) -> float | None:
        return self._suggestion

    def plot(self, suggest: bool, show: bool):
        assert suggest is True and show is False
        figure, axes = plt.subplots(figsize=(3, 2))
        axes.plot(self.results["lr"], self.results["loss"])
        return figure


def _fake_tuner(monkeypatch, finder: _Finder, seen: dict) -> None:
    class Tuner:
        def __init__(self, trainer) -> None:
            seen["trainer"] = trainer

        def lr_find(self, model, **kwargs):
            seen["lr_at_search"] = model.hparams["lr"]
            seen["kwargs"] = kwargs
            return finder

    monkeypatch.setattr(before_training, "Tuner", Tuner)


def test_the_finder_searches_1e_7_to_1_over_the_given_steps_and_writes_the_titled_curve(tmp_path, monkeypatch):
    seen: dict = {}
    _fake_tuner(monkeypatch, _Finder(0.00123456, [1e-7, 1e-5, 1e-3]), seen)
    scratch_dirs: list[str] = []
    model = SimpleNamespace(hparams={"lr": 0.0})  # --lr auto: no rate yet
    titles: list[str] = []
    real_save = before_training.save_figure
    monkeypatch.setattr(before_training, "save_figure",
                        lambda figure, path: (titles.append(figure.axes[0].get_title()), real_save(figure, path))[1])
    found = before_training.find_lr(lambda scratch: scratch_dirs.append(scratch) or "trainer", model, "data",
                                    output_dir=tmp_path / "reports", steps=37)
    assert seen["kwargs"] == {"datamodule": "data", "min_lr": 1e-7, "max_lr": 1.0, "num_training": 37,
                              "update_attr": False}
    assert seen["trainer"] == "trainer" and seen["lr_at_search"] == 1e-7  # built with the range's low end
    assert len(scratch_dirs) == 1 and Path(scratch_dirs[0]).name.startswith("dogbreed-lr-find-")
    assert not Path(scratch_dirs[0]).exists()  # the throwaway dir is gone
    assert found.lr == 0.00123456 and found.steps == 3
    assert found.plot == tmp_path / "reports" / "lr_find.png"
    assert Image.open(found.plot).size == (300, 200)
    assert titles == ["learning-rate finder: suggested --lr 0.00123"]
    assert found.line() == (f"lr finder: suggested --lr 0.00123 (3 steps; the curve is in "
                            f"{tmp_path / 'reports' / 'lr_find.png'})")


def test_a_given_rate_is_left_as_it_is_while_the_finder_searches(tmp_path, monkeypatch):
    seen: dict = {}
    _fake_tuner(monkeypatch, _Finder(0.01, [1e-7, 1.0]), seen)
    model = SimpleNamespace(hparams={"lr": 0.25})
    before_training.find_lr(lambda scratch: "trainer", model, "data", output_dir=tmp_path)
    assert seen["lr_at_search"] == 0.25 and seen["kwargs"]["num_training"] == 100  # Lightning's default step count


@pytest.mark.parametrize("finder", [None, _Finder(None, [1e-7])])
def test_no_suggestion_is_refused_with_the_step_count_and_what_to_do(tmp_path, monkeypatch, finder):
    _fake_tuner(monkeypatch, finder, {})
    with pytest.raises(ConfigError) as raised:
        before_training.find_lr(lambda scratch: "trainer", SimpleNamespace(hparams={"lr": 0.1}), "data",
                                output_dir=tmp_path, steps=12)
    assert str(raised.value) == ("the learning-rate finder found no suggestion in 12 steps (too few batches?): "
                                 "give --lr a number")
    assert not (tmp_path / "lr_find.png").exists()
