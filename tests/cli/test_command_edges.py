"""Command edges the wiring registry passes through without pinning: which explicit options hpo keeps out of the
search, the --trials bounds, the class count package checks a dataset against, the serve work dir kept for its log
after a failed start, and the --check-images that export's int8 path hands on to its fp32 export. Each test was
written against a mutant the rest of the suite let live."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from dogbreed.cli import export, hpo, import_model, package, serve
from dogbreed.core.errors import ConfigError
from dogbreed.serving import local_endpoint
from dogbreed.tuning import local
from tests.helpers.builders import write_tree


class _Tuned(Exception):
    """Raised by the stand-in tune_locally: the arguments hpo chose are all these tests need."""

    def __init__(self, args: tuple, kwargs: dict[str, Any]) -> None:
        super().__init__("tuned")
        self.args_, self.kwargs = args, kwargs


def _tune(*args: Any, **kwargs: Any) -> None:
    raise _Tuned(args, kwargs)


def test_every_searched_option_given_explicitly_is_fixed_whatever_its_spelling(tmp_path, monkeypatch):
    monkeypatch.setattr(local, "tune_locally", _tune)
    with pytest.raises(_Tuned) as tuned:
        hpo.hpo_command(["--data-dir", str(tmp_path), "--local", "--tuning-dir", str(tmp_path / "hpo"),
                         "--batch-size", "32", "--weight_decay", "0.001", "--label-smoothing", "0.05", "--lr", "0.01"])
    assert [parameter.name for parameter in tuned.value.kwargs["space"]] == ["epochs"]
    config = tuned.value.args_[0]
    assert (config.optimisation.batch_size, config.optimisation.weight_decay, config.optimisation.label_smoothing,
            config.optimisation.lr) == (32, 0.001, 0.05, 0.01)


@pytest.mark.parametrize("trials", ["0", "1001"])
def test_trials_outside_1_to_1000_are_refused_before_any_trial(tmp_path, monkeypatch, trials):
    monkeypatch.setattr(local, "tune_locally", _tune)
    with pytest.raises(ConfigError) as refused:
        hpo.hpo_command(["--data-dir", str(tmp_path), "--local", "--trials", trials])
    assert str(refused.value) == (f"--trials must be between 1 and 1000 (each trial is a whole training run), got "
                                  f"{trials}")


def test_one_trial_and_a_thousand_are_searched(tmp_path, monkeypatch):
    monkeypatch.setattr(local, "tune_locally", _tune)
    for trials in (1, 1000):
        with pytest.raises(_Tuned) as tuned:
            hpo.hpo_command(["--data-dir", str(tmp_path), "--local", "--trials", str(trials), "--tuning-dir",
                             str(tmp_path / "hpo")])
        assert tuned.value.args_[1] == trials


def test_a_dataset_with_more_classes_than_the_model_is_refused(tmp_path, tiny_model_dir):
    breeds = ["001.A", "002.B", "003.C", "004.D"]  # the model predicts 3 breeds
    data = write_tree(tmp_path / "data", {"train": 1, "valid": 1}, breed_dirs=breeds)
    with pytest.raises(ConfigError) as refused:
        package.dataset_images(data, tiny_model_dir)
    assert str(refused.value) == (f"--data-dir {data}: {data / 'valid'} has 4 class folders but the model predicts 3 "
                                  "breeds: pass the dataset the model was trained on")


class _FailingEndpoint:
    def __init__(self, work_dir: Path, **kwargs: Any) -> None:
        self.log_path, self.url = work_dir / "ts.log", "http://127.0.0.1"

    def check_model_source(self) -> None:
        pass

    def start(self, timeout: float) -> None:
        if _FailingEndpoint.writes_log:
            self.log_path.write_text("worker died\n")
        raise local_endpoint.ServeError("the model did not load: see the log")

    writes_log = True


@pytest.mark.parametrize("writes_log", [True, False])
def test_a_failed_start_keeps_the_temp_work_dir_only_when_its_log_explains_it(tmp_path, monkeypatch, writes_log):
    work = tmp_path / "dogbreed-serve-x"
    work.mkdir()
    monkeypatch.setattr(serve.tempfile, "mkdtemp", lambda prefix: str(work))
    monkeypatch.setattr(local_endpoint, "LocalEndpoint", _FailingEndpoint)
    monkeypatch.setattr(_FailingEndpoint, "writes_log", writes_log)
    with pytest.raises(local_endpoint.ServeError):
        serve.serve_command(["--model-dir", str(tmp_path / "model")])
    assert work.is_dir() is writes_log
    if writes_log:
        assert (work / "ts.log").read_text() == "worker died\n"


def test_int8_export_checks_its_fp32_graph_on_the_images_given():
    args = argparse.Namespace(model_dir=Path("m"), check_images=[Path("a.jpg"), Path("b.png")])
    assert export._fp32_argv(args) == ["--model-dir", "m", "--check-images", "a.jpg", "b.png"]
    assert export._fp32_argv(argparse.Namespace(model_dir=Path("m"), check_images=None)) == ["--model-dir", "m"]


def test_prepare_takes_a_short_side_of_exactly_8192(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from dogbreed.cli import prepare
    from dogbreed.data import prepare as preparing

    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(preparing, "prepare_dataset", lambda *args, **kwargs: seen.append(kwargs) or SimpleNamespace(
        summary=lambda: "prepared"))
    assert prepare.prepare_command(["--data-dir", str(tmp_path), "--output", str(tmp_path / "p"), "--short-side",
                                    "8192"]) == "prepared"
    assert seen[0]["short_side"] == 8192


def test_trust_pickle_with_a_checkpoint_is_refused_like_the_other_state_dict_options(tmp_path):
    with pytest.raises(ConfigError) as refused:
        import_model.import_command(["--checkpoint", str(tmp_path / "epoch=3.ckpt"), "--trust-pickle", "--model-dir",
                                     str(tmp_path / "m")])
    assert str(refused.value) == ("--trust-pickle with --checkpoint: a checkpoint's classes and preprocessing come "
                                  "from its run (and it is always loaded weights-only); drop them")


def test_a_multi_line_error_is_folded_into_one_line_after_its_colon(capsys):
    from dogbreed.cli.runner import run_command
    from dogbreed.core.errors import DataError

    def body() -> None:
        raise DataError("2 unreadable image file(s):\n  /d/a.jpg: truncated\n  /d/b.jpg: not an image\n"
                        "Fix or delete them")

    assert run_command(body) == 2
    assert capsys.readouterr().err == ("error: 2 unreadable image file(s): /d/a.jpg: truncated; /d/b.jpg: not an "
                                       "image; Fix or delete them\n")
