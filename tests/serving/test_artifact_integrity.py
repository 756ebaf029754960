"""The model artifact as one unit: schema-checked config, hashed weights, interrupted writes that lose nothing."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from dogbreed.core.errors import ArtifactError
from dogbreed.core.fileio import atomic_write, strict_json
from dogbreed.core.network import build_resnet50
from dogbreed.core.transforms import Preprocessing
from dogbreed.serving.artifact import ModelConfig, load_artifact, read_model_config, save_artifact
from dogbreed.serving.predictor import Predictor
from dogbreed.training.head_training import CachedFeatures, load_features, save_features
from entry_points import predict as predict_cli


@pytest.fixture
def model_dir(tiny_model_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny model dir, free to break."""
    return Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))


def _config(model_dir: Path) -> dict:
    return json.loads((model_dir / "model_config.json").read_text())


def _write_config(model_dir: Path, data: dict) -> None:
    (model_dir / "model_config.json").write_text(json.dumps(data))


REEXPORT = ("re-export the model (python -m entry_points.train --model-dir ...), or for weights from elsewhere make "
            "the model dir with python -m entry_points.import_model")


@pytest.mark.parametrize("field, value, message", [
    ("class_names", "abc", "class_names must be a list of breed names, got str 'abc'"),
    ("class_names", ["only one"], "class_names must hold 2 to 100000 names, got 1"),
    ("class_names", ["a", 7, "c"], "class_names[1] must be a non-empty string of at most 500 characters, got 7"),
    ("class_names", ["a", "", "c"], "class_names[1] must be a non-empty string of at most 500 characters, got ''"),
    ("num_classes", 4, "num_classes is 4 but class_names holds 3 names"),
    ("preprocessing.std", [0.2, 0, 0.2], "preprocessing.std[1] must be between 0.001 and 10, got 0"),
    ("preprocessing.std", [0.2, 0.2], "preprocessing.std must be a list of 3 numbers (R, G, B), got [0.2, 0.2]"),
    ("preprocessing.mean", [0.5, float("nan"), 0.5], "preprocessing.mean[1] must be a finite number, got nan"),
    ("preprocessing.image_size", 100000, "preprocessing.image_size must be between 8 and 2048, got 100000"),
    ("preprocessing.image_size", "224", "preprocessing.image_size must be an integer, got '224'"),
    ("preprocessing.resize_size", 10, "preprocessing.resize_size must be between 32 and 128, got 10"),
    ("preprocessing.interpolation", "cubic-ish", "preprocessing.interpolation must be one of nearest, nearest-exact, "
                                                 "bilinear, bicubic, box, hamming, lanczos, got 'cubic-ish'"),
    ("preprocessing", [], "preprocessing must be an object, got []"),
    ("hyperparameters", "lr=1", "hyperparameters must be an object, got 'lr=1'"),
    ("weights_sha256", "abc", "weights_sha256 must be 64 lower-case hex digits, got 'abc'"),
    ("format_version", True, "format_version must be an integer, got True"),
])
def test_each_bad_config_value_is_one_error_naming_the_field(model_dir: Path, field: str, value, message: str):
    data = _config(model_dir)
    target, key = (data["preprocessing"], field.split(".")[1]) if "." in field else (data, field)
    target[key] = value
    _write_config(model_dir, data)
    with pytest.raises(ArtifactError) as caught:
        load_artifact(model_dir)
    assert str(caught.value) == f"{model_dir / 'model_config.json'}: {message}: {REEXPORT}"


def test_unknown_optional_keys_are_tolerated(model_dir: Path) -> None:
    data = _config(model_dir)
    data["calibration"] = {"temperature": 1.5}
    data["preprocessing"]["future_option"] = True
    _write_config(model_dir, data)
    assert load_artifact(model_dir)[1].class_names == ["Affenpinscher", "Afghan hound", "Airedale terrier"]


@pytest.mark.parametrize("content, message", [  # what follows the file's path
    (b"\xff\xfe{not utf-8", " is not valid JSON (not UTF-8 text: invalid start byte at byte 0)"),
    (b"[" * 100000 + b"]" * 100000, " is not valid JSON (nested too deeply)"),
    (b"{\"class_names\": ", " is not valid JSON (Expecting value at line 1, column 17)"),
    (b"[1, 2]", ": the top level must be a JSON object, got list"),
])
def test_unreadable_config_file_is_an_artifact_error(model_dir: Path, content: bytes, message: str) -> None:
    (model_dir / "model_config.json").write_bytes(content)
    with pytest.raises(ArtifactError) as caught:
        read_model_config(model_dir)
    assert str(caught.value) == f"{model_dir / 'model_config.json'}{message}: {REEXPORT}"


class _RunsACommand:
    def __reduce__(self):
        return (os.system, ("true",))


@pytest.mark.parametrize("weights, message", [  # what follows the file's path
    (b"", "cannot be loaded as a state_dict (the file is empty)"),
    ("truncated", "cannot be loaded as a state_dict (its zip archive is incomplete or damaged: a cut-short or "
                  "corrupted copy)"),
    ("tensor", "is not a state_dict (a dict of tensors), got Tensor"),
    ("pickle", "cannot be loaded as a state_dict (it holds pickled Python objects, starting with "
               "dogbreed.core.errors.ArtifactError, not only tensors; dogbreed loads weights only and never runs code "
               "from a weights file)"),
    ("payload", "cannot be loaded as a state_dict (it holds pickled Python objects, starting with posix.system, not "
                "only tensors; dogbreed loads weights only and never runs code from a weights file)"),
])
def test_broken_weights_are_one_artifact_error_without_torch_advice(model_dir: Path, weights, message: str) -> None:
    path = model_dir / "model.pth"
    data = _config(model_dir)
    if weights == "truncated":
        path.write_bytes(path.read_bytes()[:1000])
    elif weights == "tensor":
        torch.save(torch.zeros(3), path)
    elif weights == "pickle":
        torch.save({"fc.weight": ArtifactError("not a tensor")}, path)  # a class of ours: refused
    elif weights == "payload":  # the attack: a pickle that would run a command (torch blocks the module os)
        torch.save({"fc.weight": _RunsACommand()}, path)
    else:
        path.write_bytes(weights)
    data.pop("weights_sha256")  # an older artifact without the hash: the load itself must fail cleanly
    _write_config(model_dir, data)
    with pytest.raises(ArtifactError) as caught:
        load_artifact(model_dir)
    # torch's own text advises "re-running torch.load with weights_only set to False": never repeated to a user
    assert str(caught.value) == f"{model_dir / 'model.pth'} {message}: {REEXPORT}"
    assert "weights_only" not in str(caught.value)


def test_torn_artifact_new_weights_old_config_is_refused(model_dir: Path, tmp_path: Path) -> None:
    """An interrupt between the two files: new weights written, the config still the previous export's."""
    old_config = (model_dir / "model_config.json").read_bytes()
    torch.manual_seed(1)
    save_artifact(tmp_path / "newer", build_resnet50(3).eval(), ModelConfig(
        class_names=["Affenpinscher", "Afghan hound", "Airedale terrier"], preprocessing=Preprocessing(image_size=32)))
    shutil.copy(tmp_path / "newer" / "model.pth", model_dir / "model.pth")
    assert (model_dir / "model_config.json").read_bytes() == old_config
    with pytest.raises(ArtifactError) as refused:
        load_artifact(model_dir)
    assert str(refused.value) == (
        f"{model_dir / 'model.pth'} does not belong to model_config.json (its SHA-256 differs from the one the config "
        "records: an export was interrupted between the two files, or one was replaced): re-export the model "
        "(python -m entry_points.train --model-dir ...), or for weights from elsewhere make the model dir with "
        "python -m entry_points.import_model")


def test_config_records_the_sha256_of_the_weights(model_dir: Path) -> None:
    import hashlib

    assert _config(model_dir)["weights_sha256"] == hashlib.sha256((model_dir / "model.pth").read_bytes()).hexdigest()


def test_nan_weights_are_refused_and_predict_never_prints_nan(model_dir: Path, tmp_path: Path, capsys) -> None:
    net, config = load_artifact(model_dir)
    with torch.no_grad():
        net.fc.weight.fill_(float("nan"))
    save_artifact(model_dir, net, config)  # a consistent artifact (hash matches) of a diverged model
    with pytest.raises(ArtifactError) as refused:
        load_artifact(model_dir)
    assert str(refused.value) == (f"{model_dir / 'model.pth'} contains NaN or infinite values (training diverged): "
                                  "retrain with a lower --lr")
    image = tmp_path / "dog.png"
    from PIL import Image

    Image.new("RGB", (40, 30), (200, 30, 30)).save(image)
    assert predict_cli.main(["--model-dir", str(model_dir), "--json", str(image)]) == 2
    captured = capsys.readouterr()
    assert "NaN" not in captured.out and captured.err == (
        f"error: {model_dir / 'model.pth'} contains NaN or infinite values (training diverged): retrain with a lower "
        "--lr\n")


def test_strict_json_writes_null_for_nan_and_inf() -> None:
    text = strict_json({"loss": float("nan"), "values": [1.5, float("inf"), -float("inf")], "name": "x"})
    assert json.loads(text) == {"loss": None, "values": [1.5, None, None], "name": "x"}
    assert "NaN" not in text and "Infinity" not in text


class _HalfWritten(RuntimeError):
    pass


def _write_half_then_fail(handle) -> None:
    handle.write(b"new content, half of it")
    raise _HalfWritten("disk full")


def test_atomic_write_interrupted_keeps_old_content_and_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "file.json"
    target.write_bytes(b"old content")
    with pytest.raises(_HalfWritten):
        atomic_write(target, _write_half_then_fail)
    assert target.read_bytes() == b"old content"
    assert [p.name for p in tmp_path.iterdir()] == ["file.json"]


def test_interrupted_export_keeps_the_previous_artifact_whole(model_dir: Path, monkeypatch) -> None:
    before = {name: (model_dir / name).read_bytes() for name in ("model.pth", "model_config.json")}
    net, config = load_artifact(model_dir)
    real_write = atomic_write

    def failing_config_write(path: Path, write, **options) -> None:
        if path.name == "model_config.json":
            return real_write(path, _write_half_then_fail)
        return real_write(path, write, **options)

    monkeypatch.setattr("dogbreed.serving.artifact.atomic_write", failing_config_write)
    with torch.no_grad():
        net.fc.bias.add_(1.0)
    with pytest.raises(_HalfWritten):
        save_artifact(model_dir, net, config)
    # model.pth was replaced, the config write failed half-way: the old config survives, no temp file remains,
    # and the pair is refused as torn instead of serving new weights under the old config.
    assert (model_dir / "model_config.json").read_bytes() == before["model_config.json"]
    assert sorted(p.name for p in model_dir.iterdir()) == ["model.pth", "model_config.json"]
    with pytest.raises(ArtifactError) as refused:
        Predictor.from_model_dir(model_dir, device="cpu")
    assert str(refused.value) == (
        f"{model_dir / 'model.pth'} does not belong to model_config.json (its SHA-256 differs from the one the config "
        "records: an export was interrupted between the two files, or one was replaced): re-export the model "
        "(python -m entry_points.train --model-dir ...), or for weights from elsewhere make the model dir with "
        "python -m entry_points.import_model")
    monkeypatch.setattr("dogbreed.serving.artifact.atomic_write", lambda path, write, **options: real_write(
        path, _write_half_then_fail))
    (model_dir / "model.pth").write_bytes(before["model.pth"])
    with pytest.raises(_HalfWritten):  # a weights write that fails half-way keeps the old weights
        save_artifact(model_dir, net, config)
    assert {name: (model_dir / name).read_bytes() for name in before} == before
    assert load_artifact(model_dir)[1].class_names == config.class_names


def test_interrupted_feature_cache_write_keeps_the_old_file(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "features.pt"
    old = CachedFeatures(features=torch.ones(4, 1, 8, dtype=torch.float16), labels=torch.tensor([0, 1, 2, 0]))
    save_features(path, "key-1", old)

    def fail_mid_save(obj, handle) -> None:
        handle.write(b"PK\x03\x04 partial zip")
        raise _HalfWritten("killed")

    monkeypatch.setattr("dogbreed.training.head_training.torch.save", fail_mid_save)
    new = CachedFeatures(features=torch.zeros(4, 1, 8, dtype=torch.float16), labels=torch.tensor([0, 1, 2, 0]))
    with pytest.raises(_HalfWritten):
        save_features(path, "key-2", new)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["features.pt"]
    loaded = load_features(path, "key-1", count=4, views=1)
    assert loaded is not None and torch.equal(loaded.features, old.features)


def test_loading_draws_no_random_initialisation(model_dir: Path, monkeypatch) -> None:
    """Cold start: the network is built on the meta device (its initialisers touch no memory and draw nothing) and
    takes the saved tensors themselves."""
    import torch

    from dogbreed.serving.artifact import load_artifact

    expected, _ = load_artifact(model_dir)
    devices: set[str] = set()
    for name in ("kaiming_normal_", "kaiming_uniform_", "uniform_", "normal_", "constant_", "ones_", "zeros_"):
        original = getattr(torch.nn.init, name)

        def spy(tensor, *args, _original=original, **kwargs):
            devices.add(tensor.device.type)
            return _original(tensor, *args, **kwargs)

        monkeypatch.setattr(torch.nn.init, name, spy)
    net, _ = load_artifact(model_dir)
    assert devices == {"meta"}  # the initialisers ran, on tensors without storage
    assert {t.device.type for t in [*net.parameters(), *net.buffers()]} == {"cpu"}
    state, reference = net.state_dict(), expected.state_dict()
    assert state.keys() == reference.keys() and all(torch.equal(state[k], reference[k]) for k in state)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_all_finite_finds_nan_and_inf_in_every_float_dtype(dtype, bad) -> None:
    from dogbreed.serving.artifact import all_finite

    good = [torch.ones(3, 4, dtype=dtype), torch.arange(5)]  # integer tensors are not checked
    assert all_finite(good)
    broken = torch.zeros(7, dtype=dtype)
    broken[5] = bad
    assert not all_finite([*good, broken])


@pytest.mark.parametrize("field, text, message", [  # {config}: the config file's path
    ("num_classes", "1" * 5000, "{config} is not valid JSON (a number of more than 4300 digits): " + REEXPORT),
    ("num_classes", "1" * 400,
     "{config}: num_classes must be between 2 and 100000, got an integer of about 399 digits: " + REEXPORT),
    ("temperature", "1" * 400, "{config}: temperature must be a finite number > 0, got an integer of 400 digits: "
                               + REEXPORT),
    ("abstention", '{"score": "energy", "threshold": -' + "1" * 310 + "}",
     "{config}: abstention threshold must be a finite number, got an integer of 310 digits: " + REEXPORT),
])
def test_huge_numbers_in_the_config_are_one_artifact_error(model_dir: Path, field, text, message) -> None:
    data = _config(model_dir)
    data[field] = 0
    raw = json.dumps(data).replace(f'"{field}": 0', f'"{field}": {text}')
    (model_dir / "model_config.json").write_text(raw)
    with pytest.raises(ArtifactError) as caught:
        read_model_config(model_dir)
    assert str(caught.value) == message.format(config=model_dir / "model_config.json")
    assert "sys.set_int" not in str(caught.value)


def test_model_config_keys_are_written_in_reading_order(tmp_path: Path) -> None:
    """A person opening model_config.json reads what the model is first and the bookkeeping last, not the keys
    sorted (abstention, architecture, class_names, ...)."""
    net = build_resnet50(2)
    config = ModelConfig(class_names=["beagle", "boxer"], preprocessing=Preprocessing(image_size=32),
                         precision="bf16")
    save_artifact(tmp_path, net, config)
    written = json.loads((tmp_path / "model_config.json").read_text(encoding="utf-8"))
    assert list(written) == ["format_version", "architecture", "num_classes", "class_names", "preprocessing",
                             "hyperparameters", "metrics", "versions", "temperature", "abstention", "tta",
                             "weights_sha256", "precision", "created_at"]
    text = (tmp_path / "model_config.json").read_text(encoding="utf-8")
    assert text.startswith('{\n  "format_version": ') and text.endswith('"\n}\n')  # indented 2, one newline at the end


def _rewrite_weights(model_dir: Path, state: dict) -> None:
    """Weights the config vouches for (its SHA-256 updated): only the content is wrong."""
    import hashlib
    import io

    buffer = io.BytesIO()
    torch.save(state, buffer)
    (model_dir / "model.pth").write_bytes(buffer.getvalue())
    data = _config(model_dir)
    data["weights_sha256"] = hashlib.sha256(buffer.getvalue()).hexdigest()
    _write_config(model_dir, data)


def test_a_head_for_another_class_count_names_both_counts(model_dir: Path) -> None:
    data = _config(model_dir)
    data["class_names"] = [*data["class_names"], "Akita"]
    data["num_classes"] = len(data["class_names"])
    _write_config(model_dir, data)
    with pytest.raises(ArtifactError) as refused:
        load_artifact(model_dir)
    assert str(refused.value) == (f"{model_dir / 'model.pth'} has a 3-class head but model_config.json names 4 "
                                  f"classes: they come from different models, {REEXPORT}")


def test_weights_missing_a_layer_are_refused_with_torchs_first_line(model_dir: Path) -> None:
    state = torch.load(model_dir / "model.pth", weights_only=True)
    del state["layer4.2.bn3.running_var"]
    _rewrite_weights(model_dir, state)
    with pytest.raises(ArtifactError) as refused:
        load_artifact(model_dir)
    assert str(refused.value) == (f"{model_dir / 'model.pth'} does not match model_config.json (Missing key(s) in "
                                  f'state_dict: "layer4.2.bn3.running_var"): {REEXPORT}')


def test_every_mismatch_is_on_one_line_and_a_long_one_is_cut(model_dir: Path) -> None:
    state = torch.load(model_dir / "model.pth", weights_only=True)
    del state["layer4.2.bn3.running_var"]
    state["extra.w"] = torch.zeros(1)
    state["layer1.0.conv1.weight"] = torch.zeros(64, 64, 3, 3)
    _rewrite_weights(model_dir, state)
    with pytest.raises(ArtifactError) as refused:
        load_artifact(model_dir)
    assert str(refused.value) == (
        f"{model_dir / 'model.pth'} does not match model_config.json (Missing key(s) in state_dict: "
        '"layer4.2.bn3.running_var"; Unexpected key(s) in state_dict: "extra.w"; size mismatch for '
        "layer1.0.conv1.weight: copying a param with shape torch.Size([64, 64, 3, 3]) from checkpoint, the shape in "
        f"current model is torch.Size([64, 64, 1, 1])): {REEXPORT}")
    for name in [k for k in state if k.startswith("layer4")]:
        state[name.replace("layer4", "stage4")] = state.pop(name)  # another network's names: ~100 keys each way
    _rewrite_weights(model_dir, state)
    with pytest.raises(ArtifactError) as refused:
        load_artifact(model_dir)
    reason = str(refused.value).split(" does not match model_config.json (", 1)[1].rsplit(f"): {REEXPORT}", 1)[0]
    assert len(reason) == 300 and reason.startswith('Missing key(s) in state_dict: "layer4.0.conv1.weight", ')
    assert reason.endswith("...") and "\n" not in reason


@pytest.mark.parametrize("value, shown", [({}, "{}"), ([], "[]"), ("", "''"), (0, "0"), (False, "False")])
def test_an_empty_or_falsy_abstention_is_refused_not_read_as_no_rule(tmp_path: Path, value, shown: str) -> None:
    """Only null (or no key) means "no rule"; an empty object is a damaged rule, refused like any other."""
    config = {"class_names": ["a", "b"], "preprocessing": {"image_size": 32}}
    (tmp_path / "model_config.json").write_text(json.dumps(config))
    assert read_model_config(tmp_path).abstention is None  # no key
    (tmp_path / "model_config.json").write_text(json.dumps({**config, "abstention": None}))
    assert read_model_config(tmp_path).abstention is None  # null
    (tmp_path / "model_config.json").write_text(json.dumps({**config, "abstention": value}))
    with pytest.raises(ArtifactError) as caught:
        read_model_config(tmp_path)
    assert str(caught.value) == (f'{tmp_path / "model_config.json"}: abstention must be an object with "score" and '
                                 f'"threshold", got {shown}: {REEXPORT}')
