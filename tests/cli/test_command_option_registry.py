"""Every option of the other commands reaches its place (issue 24): predict, serve, hpo, prepare, export,
import_model, package, and train's own ``--config``.

``COMMAND_CASES[command][dest]`` runs the command with that option set to a non-default value and checks the value
where the command hands it on (the Predictor, the endpoint, the tuner, the preparer, the exporter, the importer,
the archive builder: recorded stand-ins for the heavy parts), or in the command's output. An option a parser gains
without a case fails ``test_every_command_option_has_a_wiring_case`` by name. The training options are in
``tests/config/test_option_registry.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import pytest

from dogbreed.cli import export, hpo, import_model, package, predict, prepare, serve
from dogbreed.config.options import option_fields
from dogbreed.config.parser import build_parser as build_training_parser
from tests.helpers.builders import save_image
from tests.helpers.report_checks import json_layout


class Recorder:
    """Records each call's arguments; returns ``result`` (or what ``result(*args, **kwargs)`` returns)."""

    def __init__(self, result: Any = None) -> None:
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        self.result = result

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((args, kwargs))
        return self.result(*args, **kwargs) if callable(self.result) else self.result

    @property
    def kwargs(self) -> dict[str, Any]:
        (_, kwargs), = self.calls
        return kwargs

    @property
    def args(self) -> tuple[Any, ...]:
        (args, _), = self.calls
        return args


class Env(SimpleNamespace):
    tmp: Path
    monkeypatch: pytest.MonkeyPatch
    model_dir: Path
    predictor: Any


# --- predict ------------------------------------------------------------------------------------------------------

def _images(env: Env) -> list[str]:
    return [str(save_image(env.tmp / "in" / f"{i}.jpg", size=(40 + i, 30))) for i in range(3)]


def _predict(env: Env, *options: str) -> tuple[str, Recorder, list[int]]:
    from dogbreed.serving.predictor import Predictor

    loaded = Recorder(env.predictor)
    env.monkeypatch.setattr(Predictor, "from_model_dir", classmethod(lambda cls, *a, **k: loaded(*a, **k)))
    batches: list[int] = []
    original = env.predictor.transform_batch
    env.monkeypatch.setattr(env.predictor, "transform_batch", lambda images: batches.append(len(images)) or
                            original(images))
    outcome = predict.predict_command([*_images(env), "--model-dir", str(env.model_dir), *options])
    return outcome.summary, loaded, batches


def _predict_json(env: Env, *options: str) -> list[dict[str, Any]]:
    return json.loads(_predict(env, "--json", *options)[0])


def _explain(env: Env, *options: str) -> tuple[str, Recorder]:
    from dogbreed.explain import gradcam

    written = Recorder(lambda predictor, images, out_dir, *, top_k: [out_dir / f"{p.stem}_gradcam.png" for p in images])
    env.monkeypatch.setattr(gradcam, "require_captum", lambda: None)
    env.monkeypatch.setattr(gradcam, "write_explanations", written)
    text, _, _ = _predict(env, "--explain", str(env.tmp / "cams"), *options)
    return text, written


def _check_explain(env: Env) -> None:
    text, written = _explain(env)
    assert written.args[2] == env.tmp / "cams"
    assert text.endswith(f"Grad-CAM overlays: {env.tmp / 'cams'}/ (3 files)")


PREDICT: dict[str, Callable[[Env], None]] = {
    "images": lambda env: ([r["image"] for r in _predict_json(env)], _images(env)),
    "model_dir": lambda env: (_predict(env)[1].args, (env.model_dir,)),
    "top_k": lambda env: ({len(r["predictions"]) for r in _predict_json(env, "--top-k", "2")}, {2}),
    "json": lambda env: ((len(json.loads(text := _predict(env, "--json")[0])), json_layout(text + "\n")),
                         (3, (2, True))),  # a list of 3 records, indented 2
    "jsonl": lambda env: ([json.loads(line)["image"] for line in _predict(env, "--jsonl")[0].splitlines()]
   , _images(env)),
    "batch_size": lambda env: (_predict(env, "--batch-size", "2")[2], [2, 1]),
    "device": lambda env: (_predict(env, "--device", "cpu")[1].kwargs["device"], "cpu"),
    "precision": lambda env: (_predict(env, "--precision", "bf16")[1].kwargs["precision"], "bf16"),
    "explain": _check_explain,
    "explain_top_k": lambda env: (_explain(env, "--explain-top-k", "2")[1].kwargs["top_k"], 2),
}


# --- serve --------------------------------------------------------------------------------------------------------

class FakeEndpoint:
    made: list[FakeEndpoint] = []

    def __init__(self, work_dir: Path, **kwargs: Any) -> None:
        self.work_dir, self.kwargs, self.timeout = work_dir, kwargs, None
        self.log_path, self.url = work_dir / "log", "http://127.0.0.1"
        FakeEndpoint.made.append(self)

    def check_model_source(self) -> None:
        pass

    def start(self, timeout: float) -> None:
        self.timeout = timeout


def _serve(env: Env, *options: str) -> FakeEndpoint:
    from dogbreed.serving import local_endpoint

    FakeEndpoint.made = []
    env.monkeypatch.setattr(local_endpoint, "LocalEndpoint", FakeEndpoint)
    env.monkeypatch.setattr(local_endpoint, "serve_until_interrupted", lambda endpoint, announce: 0)
    source = [] if "--model-data" in options else ["--model-dir", str(env.model_dir)]
    serve.serve_command([*source, *options])
    (endpoint,) = FakeEndpoint.made
    return endpoint


def _check_work_dir(env: Env) -> None:
    (env.tmp / "w").mkdir()
    endpoint = _serve(env, "--work-dir", str(env.tmp / "w"))
    assert endpoint.work_dir == env.tmp / "w" and (env.tmp / "w").is_dir()  # given: kept after the endpoint stops
    assert _serve(env).work_dir.name.startswith("dogbreed-serve-")  # not given: a temp dir


SERVE: dict[str, Callable[[Env], None]] = {
    "model_dir": lambda env: (_serve(env).kwargs["model_dir"], env.model_dir),
    "model_data": lambda env: (_serve(env, "--model-data", str(env.tmp / "m.tar.gz")).kwargs["model_data"]
   , env.tmp / "m.tar.gz"),
    "own_code": lambda env: (_serve(env, "--model-data", str(env.tmp / "m.tar.gz"), "--own-code").kwargs["own_code"]
   , True),
    "port": lambda env: (_serve(env, "--port", "9191").kwargs["port"], 9191),
    "workers": lambda env: (_serve(env, "--workers", "3").kwargs["workers"], 3),
    "work_dir": _check_work_dir,
    "timeout": lambda env: (_serve(env, "--timeout", "12.5").timeout, 12.5),
    "response_timeout": lambda env: (_serve(env, "--response-timeout", "7").kwargs["response_timeout"], 7),
}


# --- hpo (its own options; the training options are the training registry's) -------------------------------------

def _hpo(env: Env, *options: str) -> tuple[Recorder, Recorder]:
    from dogbreed.config.options import TrainConfig
    from dogbreed.diagnostics import run_policy
    from dogbreed.tuning import local

    result = SimpleNamespace(table="t", best_value=0.5, best_params={"lr": 0.01}, test_metrics={"acc": 0.5},
                             best_model_dir=env.tmp / "best", best_config=TrainConfig().to_dict(), warning="")
    tuned, trained = Recorder(result), Recorder(SimpleNamespace(summary=["trained"]))
    env.monkeypatch.setattr(local, "tune_locally", tuned)
    env.monkeypatch.setattr(run_policy, "train_with_diagnostics", trained)
    hpo.hpo_command(["--data-dir", str(env.tmp), *options])
    return tuned, trained


def _check_local(env: Env) -> None:
    tuned, trained = _hpo(env, "--local", "--tuning-dir", str(env.tmp / "hpo"))
    assert len(tuned.calls) == 1 and not trained.calls
    tuned, trained = _hpo(env)
    assert not tuned.calls and len(trained.calls) == 1  # without --local: one trial of a SageMaker tuning job


HPO: dict[str, Callable[[Env], None]] = {
    "local": _check_local,
    "trials": lambda env: (_hpo(env, "--local", "--trials", "3", "--tuning-dir", str(env.tmp / "h"))[0].args[1], 3),
    "tuning_dir": lambda env: (_hpo(env, "--local", "--tuning-dir", str(env.tmp / "h"))[0].args[2], env.tmp / "h"),
}


# --- train's own option ---------------------------------------------------------------------------------------------

def _check_config_file(env: Env) -> None:
    from dogbreed.config.parser import parse_command

    path = env.tmp / "best.json"
    path.write_text(json.dumps({"config": {"epochs": 4, "label-smoothing": 0.1}}))
    config = parse_command(["--config", str(path), "--epochs", "2"]).config
    assert (config.optimisation.epochs, config.optimisation.label_smoothing) == (2, 0.1)  # the command line wins


TRAIN = {"config_file": _check_config_file}


# --- prepare ------------------------------------------------------------------------------------------------------

def _prepare(env: Env, *options: str) -> Recorder:
    from dogbreed.data import prepare as preparing

    prepared = Recorder(SimpleNamespace(summary=lambda: "prepared"))
    env.monkeypatch.setattr(preparing, "prepare_dataset", prepared)
    prepare.prepare_command(["--data-dir", str(env.tmp / "d"), "--output", str(env.tmp / "p"), *options])
    return prepared


PREPARE: dict[str, Callable[[Env], None]] = {
    "data_dir": lambda env: (_prepare(env).args[0], env.tmp / "d"),
    "output": lambda env: (_prepare(env).args[1], env.tmp / "p"),
    "short_side": lambda env: (_prepare(env, "--short-side", "100").kwargs["short_side"], 100),
    "image_size": lambda env: (_prepare(env, "--image-size", "96").kwargs["image_size"], 96),
    "quality": lambda env: (_prepare(env, "--quality", "80").kwargs["jpeg_quality"], 80),
    "workers": lambda env: (_prepare(env, "--workers", "3").kwargs["workers"], 3),
    "skip_bad_images": lambda env: (_prepare(env, "--skip-bad-images").kwargs["skip_bad_images"], True),
}


# --- export -------------------------------------------------------------------------------------------------------

def _export(env: Env, *options: str) -> dict[str, Recorder]:
    from dogbreed.cli import package as package_cli
    from dogbreed.export import onnx_export, onnx_int8
    from dogbreed.serving import precision_check

    seen = {"export": Recorder(lambda model_dir, output: Path(output)), "parity": Recorder(0.0),
            "dataset": Recorder(([Path("t.jpg")], [Path("v.jpg")])),
            "int8": Recorder(SimpleNamespace(line=lambda: "agreement 100%"))}
    env.monkeypatch.setattr(onnx_export, "require_export_extra", lambda: None)
    env.monkeypatch.setattr(onnx_export, "export_onnx", seen["export"])
    env.monkeypatch.setattr(onnx_export, "parity", seen["parity"])
    env.monkeypatch.setattr(package_cli, "dataset_images", seen["dataset"])
    env.monkeypatch.setattr(onnx_int8, "export_int8", seen["int8"])
    env.monkeypatch.setattr(precision_check, "spread", lambda paths: list(paths))
    seen["line"] = export.export_command(["--model-dir", str(env.model_dir), *options])
    return seen


def _check_export_int8(env: Env) -> None:
    seen = _export(env, "--precision", "int8", "--data-dir", str(env.tmp / "d"), "--output", str(env.tmp / "q.onnx"))
    assert seen["int8"].args[1:] == (env.tmp / "q.onnx", env.model_dir, [Path("t.jpg")], [Path("v.jpg")])
    assert seen["dataset"].args == (env.tmp / "d", env.model_dir)


EXPORT: dict[str, Callable[[Env], None]] = {
    "model_dir": lambda env: (_export(env)["export"].args[0], env.model_dir),
    "output": lambda env: (_export(env, "--output", str(env.tmp / "x.onnx"))["export"].args[1], env.tmp / "x.onnx"),
    "check_images": lambda env: (_export(env, "--check-images", "a.jpg", "b.png")["parity"].args[2]
   , [Path("a.jpg"), Path("b.png")]),
    "precision": _check_export_int8,
    "data_dir": _check_export_int8,
}


# --- import_model -------------------------------------------------------------------------------------------------

def _import(env: Env, *options: str) -> dict[str, Recorder]:
    from dogbreed.serving import model_import
    from dogbreed.training import checkpoint_model

    seen = {"checkpoint": Recorder(lambda path, model_dir: (model_dir, SimpleNamespace(options={}, epoch=2,
                                                                                      class_dirs=["a", "b"]))),
            "classes": Recorder(["a", "b"]), "weights": Recorder(({}, False)), "save": Recorder()}
    env.monkeypatch.setattr(checkpoint_model, "import_checkpoint", seen["checkpoint"])
    env.monkeypatch.setattr(model_import, "read_class_names", seen["classes"])
    env.monkeypatch.setattr(model_import, "load_foreign_weights", seen["weights"])
    env.monkeypatch.setattr(model_import, "build_imported_net", lambda state, names, source: "net")
    env.monkeypatch.setattr(model_import, "file_sha256", lambda path: "sha")
    env.monkeypatch.setattr(model_import, "save_imported_model", seen["save"])
    source = [] if "--checkpoint" in options else ["--state-dict", str(env.tmp / "w.pth"), "--classes",
                                                   str(env.tmp / "classes.txt")]
    import_model.import_command([*source, "--model-dir", str(env.tmp / "out"), *options])
    return seen


def _preprocessing(env: Env, *options: str) -> Any:
    return _import(env, *options)["save"].args[3]


IMPORT: dict[str, Callable[[Env], None]] = {
    "checkpoint": lambda env: (_import(env, "--checkpoint", str(env.tmp / "e.ckpt"))["checkpoint"].args
   , (env.tmp / "e.ckpt", env.tmp / "out")),
    "state_dict": lambda env: (_import(env)["weights"].args, (env.tmp / "w.pth",)),
    "classes": lambda env: (_import(env)["classes"].args, (env.tmp / "classes.txt",)),
    "trust_pickle": lambda env: (_import(env, "--trust-pickle")["weights"].kwargs, {"trust_pickle": True}),
    "model_dir": lambda env: (_import(env)["save"].args[0], env.tmp / "out"),
    # round(64 * 232 / 224) = 66
    "image_size": lambda env: ((_preprocessing(env, "--image-size", "64").image_size,
                               _preprocessing(env, "--image-size", "64").resize_size), (64, 66)),
    "resize_size": lambda env: (_preprocessing(env, "--resize-size", "300").resize_size, 300),
    "mean": lambda env: (_preprocessing(env, "--mean", "0.5", "0.25", "0").mean, (0.5, 0.25, 0.0)),
    "std": lambda env: (_preprocessing(env, "--std", "0.5", "0.25", "2").std, (0.5, 0.25, 2.0)),
    "interpolation": lambda env: (_preprocessing(env, "--interpolation", "bicubic").interpolation, "bicubic"),
}


# --- package ------------------------------------------------------------------------------------------------------

def _package(env: Env, *options: str) -> dict[str, Any]:
    from dogbreed.serving import packaging

    def build(model_dir: Path, output: Path) -> Path:
        Path(output).write_bytes(b"x" * 2_500_000)
        return Path(output)

    seen = {"archive": Recorder(build), "reduce": Recorder("bf16: 100.0% top-1 agreement")}
    env.monkeypatch.setattr(packaging, "build_model_archive", seen["archive"])
    env.monkeypatch.setattr(packaging, "check_model_dir", lambda model_dir: None)
    env.monkeypatch.setattr(package, "reduce_precision", seen["reduce"])
    seen["line"] = package.package_command(["--model-dir", str(env.model_dir), "--output", str(env.tmp / "m.tar.gz"),
                                            *options])
    return seen


def _check_package_precision(env: Env) -> None:
    seen = _package(env, "--precision", "bf16", "--data-dir", str(env.tmp / "d"))
    assert seen["reduce"].args == (env.model_dir, "bf16", env.tmp / "d")
    assert seen["line"] == f"wrote {env.tmp / 'm.tar.gz'} (2.5 MB) (bf16: 100.0% top-1 agreement)"


PACKAGE: dict[str, Callable[[Env], None]] = {
    "model_dir": lambda env: (_package(env)["archive"].args[0], env.model_dir),
    "output": lambda env: (_package(env)["line"], f"wrote {env.tmp / 'm.tar.gz'} (2.5 MB)"),
    "precision": _check_package_precision,
    "data_dir": _check_package_precision,
}

TRAINING_OPTIONS = {f.name for f in option_fields()}
PARSERS: dict[str, Callable[[], Any]] = {
    "train": build_training_parser, "predict": predict.build_parser, "serve": serve.build_parser,
    "hpo": lambda: build_training_parser(hpo.PROG, hpo.DESCRIPTION, hpo.HPO_OPTIONS),
    "prepare": prepare.build_parser, "export": export.build_parser, "import_model": import_model.build_parser,
    "package": package.build_parser,
}
COMMAND_CASES: dict[str, dict[str, Callable[[Env], None]]] = {
    "train": TRAIN, "predict": PREDICT, "serve": SERVE, "hpo": {**TRAIN, **HPO}, "prepare": PREPARE,
    "export": EXPORT, "import_model": IMPORT, "package": PACKAGE,
}


def command_options(command: str) -> list[str]:
    """The dests of a command's options, without --help and the training options (their own registry)."""
    shared = TRAINING_OPTIONS if command in ("train", "hpo") else set()
    actions = PARSERS[command]()._actions
    return [action.dest for action in actions if action.dest != "help" and action.dest not in shared]


ALL = [(command, dest) for command in PARSERS for dest in command_options(command)]


def test_every_command_option_has_a_wiring_case():
    missing = [f"{command} --{dest.replace('_', '-')}" for command, dest in ALL
               if dest not in COMMAND_CASES[command]]
    assert not missing, f"command options without a wiring case in COMMAND_CASES: {', '.join(missing)}"
    stale = [f"{command} {dest}" for command, cases in COMMAND_CASES.items() for dest in cases
             if dest not in command_options(command)]
    assert not stale, f"wiring cases for options that no longer exist: {', '.join(stale)}"


@pytest.fixture(scope="module")
def tiny_predictor(tiny_model_dir):
    from dogbreed.serving.predictor import Predictor

    return Predictor.from_model_dir(tiny_model_dir, device="cpu")


@pytest.mark.parametrize("command,dest", ALL, ids=[f"{c}-{d}" for c, d in ALL])
def test_command_option_reaches_its_consumer(command, dest, tmp_path, monkeypatch, tiny_model_dir, tiny_predictor):
    case = COMMAND_CASES[command].get(dest)
    if case is None:
        pytest.fail(f"{command} --{dest.replace('_', '-')} has no wiring case: add one to COMMAND_CASES")
    monkeypatch.chdir(tmp_path)  # the commands' default outputs (model.onnx, model.tar.gz) land here
    seen = case(Env(tmp=tmp_path, monkeypatch=monkeypatch, model_dir=tiny_model_dir, predictor=tiny_predictor))
    if seen is not None:  # (what reached the consumer, what was set)
        actual, expected = seen
        assert actual == expected
