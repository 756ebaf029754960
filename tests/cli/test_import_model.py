"""Models in: a torchvision ResNet50 (state_dict, or a trusted pickle) becomes a model dir that predicts, packages
and serves like a trained one, with the same probabilities as the torchvision model itself."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from torchvision import transforms as T
from torchvision.models import resnet50

from dogbreed.cli import export, import_model, package, predict
from dogbreed.serving.artifact import load_artifact, read_model_config
from tests.helpers.inference_support import dog_image

CLASSES = ["Beagle", "Poodle", "Whippet"]
pytestmark = pytest.mark.slow  # full-size ResNet50 files (about 100 MB each) and 224 px forward passes


def _run(main, argv, capsys) -> tuple[int, str, str]:
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def foreign(tmp_path_factory) -> dict[str, Path]:
    """A torchvision resnet50(num_classes=3) saved as a state_dict and whole, with its classes file and an image."""
    root = tmp_path_factory.mktemp("foreign")
    torch.manual_seed(3)
    net = resnet50(num_classes=3).eval()
    with torch.no_grad():  # a head that separates the classes, so the probabilities are far from uniform
        net.fc.weight.mul_(40)
    torch.save(net.state_dict(), root / "weights.pth")
    torch.save(net, root / "whole_model.pt")
    (root / "classes.txt").write_text("\n".join(CLASSES) + "\n", encoding="utf-8")
    dog_image(1, seed=4).resize((300, 260)).save(root / "dog.png")
    return {"root": root, "state_dict": root / "weights.pth", "pickle": root / "whole_model.pt",
            "classes": root / "classes.txt", "image": root / "dog.png"}


def test_imported_state_dict_predicts_the_torchvision_probabilities(foreign, tmp_path, capsys):
    model_dir = tmp_path / "model"
    status, out, err = _run(import_model.main, ["--state-dict", foreign["state_dict"], "--classes",
                                                foreign["classes"], "--model-dir", model_dir], capsys)
    assert status == 0, err
    assert "3 classes, state_dict; preprocessing: crop 224, resize 232" in out
    status, out, err = _run(predict.main, [foreign["image"], "--model-dir", model_dir, "--json", "--top-k", "3"],
                            capsys)
    assert status == 0, err
    predictions = json.loads(out)[0]["predictions"]
    ours = torch.tensor([p["probability"] for p in sorted(predictions, key=lambda p: p["index"])])
    assert [p["breed"] for p in sorted(predictions, key=lambda p: p["index"])] == CLASSES

    net = resnet50(num_classes=3)
    net.load_state_dict(torch.load(foreign["state_dict"], weights_only=True))
    recipe = T.Compose([T.Resize(232), T.CenterCrop(224), T.ToTensor(),
                        T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    with torch.no_grad():
        reference = net.eval()(recipe(Image.open(foreign["image"]).convert("RGB")).unsqueeze(0)).softmax(1)[0]
    assert reference.max() > 0.6  # a decisive model: equal probabilities would hide a wrong class order
    assert torch.allclose(ours, reference, atol=1e-5, rtol=0), (ours, reference)

    config = read_model_config(model_dir)
    assert config.preprocessing.eval_dict() == {"image_size": 224, "resize_size": 232, "mean": (0.485, 0.456, 0.406),
                                                "std": (0.229, 0.224, 0.225), "interpolation": "bilinear"}
    record = config.hyperparameters["imported_from"]
    assert record["state_dict"] == "weights.pth" and record["pickled"] is False and len(record["sha256"]) == 64


def test_the_imported_model_packages_serves_and_exports(foreign, tmp_path, capsys):
    from dogbreed.serving.handlers import input_fn, model_fn, output_fn, predict_fn
    from dogbreed.serving.packaging import extract_model_archive

    model_dir = tmp_path / "model"
    assert _run(import_model.main, ["--state-dict", foreign["state_dict"], "--classes", foreign["classes"],
                                    "--model-dir", model_dir, "--image-size", "64"], capsys)[0] == 0
    status, out, err = _run(package.main, ["--model-dir", model_dir, "--output", tmp_path / "model.tar.gz"], capsys)
    assert status == 0, err
    served = extract_model_archive(tmp_path / "model.tar.gz", tmp_path / "served")
    predictor = model_fn(served)
    body = io.BytesIO()
    Image.open(foreign["image"]).save(body, format="PNG")
    answer = json.loads(output_fn(predict_fn(input_fn(body.getvalue(), "image/png"), predictor),
                                  "application/json")[0])
    status, out, err = _run(predict.main, [foreign["image"], "--model-dir", model_dir, "--json", "--top-k", "3"],
                            capsys)
    local = json.loads(out)[0]["predictions"]
    served_top = answer["predictions"] if "predictions" in answer else answer[0]["predictions"]
    assert [p["breed"] for p in served_top[:3]] == [p["breed"] for p in local]
    assert [p["probability"] for p in served_top[:3]] == pytest.approx([p["probability"] for p in local], abs=1e-6)
    assert read_model_config(served).preprocessing.image_size == 64
    import onnxruntime  # noqa: F401  (the [export] extra, part of dev: missing is a failure, never a skip)
    status, out, err = _run(export.main, ["--model-dir", model_dir, "--output", tmp_path / "m.onnx"], capsys)
    assert status == 0 and "(onnxruntime parity on 2 image(s)" in out, err


def test_a_pickled_model_needs_trust_pickle(foreign, tmp_path, capsys):
    model_dir = tmp_path / "model"
    argv = ["--state-dict", foreign["pickle"], "--classes", foreign["classes"], "--model-dir", model_dir]
    status, out, err = _run(import_model.main, argv, capsys)
    assert status == 2 and not model_dir.exists()
    # the first object it asks for, in our words: torch's own text advises weights_only=False
    assert err == (
        f"error: {foreign['pickle']} is not a plain state_dict: it holds pickled Python objects "
        "(torchvision.models.resnet.ResNet first), such as a whole model saved with torch.save(model, file). Loading "
        "it runs code from the file. If you trust where it comes from, pass --trust-pickle; otherwise save "
        "model.state_dict() where it was made and import that file\n")
    assert "Traceback" not in err
    status, out, err = _run(import_model.main, [*argv, "--trust-pickle"], capsys)
    assert status == 0, err and "pickled model" in out
    net, config = load_artifact(model_dir)
    expected = torch.load(foreign["state_dict"], weights_only=True)
    assert all(torch.equal(net.state_dict()[k], v) for k, v in expected.items())
    assert config.hyperparameters["imported_from"]["pickled"] is True


def test_trust_pickle_still_loads_a_plain_state_dict_weights_only(foreign, tmp_path, capsys):
    status, out, err = _run(import_model.main, ["--state-dict", foreign["state_dict"], "--classes",
                                                foreign["classes"], "--model-dir", tmp_path / "m", "--trust-pickle"],
                            capsys)
    assert status == 0, err
    assert read_model_config(tmp_path / "m").hyperparameters["imported_from"]["pickled"] is False


@pytest.mark.parametrize("extra,message", [
    (["--classes", "TWO"], "--state-dict {state_dict} has a 3-class head but the classes file names 2 classes: give "
                           "one name per output, in output order"),
    (["--classes", "CLASSES", "--image-size", "16"], "--image-size must be between 32 and 2048, got 16"),
    (["--classes", "CLASSES", "--image-size", "64", "--resize-size", "60"], "--resize-size must be at least the "
                                                                            "crop size (64) and at most 4096, got 60"),
    (["--classes", "CLASSES", "--std", "0.2", "0", "0.2"],
     "--std must be three positive finite numbers, got 0.2 0 0.2"),
    ([], "--state-dict needs --classes FILE: the class names in output order, one per line"),
])
def test_bad_import_requests_are_one_line_errors(foreign, tmp_path, capsys, extra, message):
    (tmp_path / "two.txt").write_text("Beagle\nPoodle\n", encoding="utf-8")
    files = {"TWO": str(tmp_path / "two.txt"), "CLASSES": str(foreign["classes"])}
    argv = ["--state-dict", foreign["state_dict"], "--model-dir", tmp_path / "m", *[files.get(a, a) for a in extra]]
    status, out, err = _run(import_model.main, argv, capsys)
    expected = f"error: {message.format(state_dict=foreign['state_dict'])}\n"
    assert status == 2 and err == expected and not (tmp_path / "m").exists(), err


def test_a_damaged_state_dict_file_is_named(foreign, tmp_path, capsys):
    damaged = tmp_path / "damaged.pth"
    damaged.write_bytes(foreign["state_dict"].read_bytes()[:5000])
    status, out, err = _run(import_model.main, ["--state-dict", damaged, "--classes", foreign["classes"],
                                                "--model-dir", tmp_path / "m"], capsys)
    assert (status, err) == (2, f"error: --state-dict {damaged} cannot be loaded (its zip archive is incomplete or "
                                "damaged: a cut-short or corrupted copy): is it a complete torch.save file?\n")
    assert "--trust-pickle" not in err


def test_classes_file_may_be_a_json_list(foreign, tmp_path, capsys):
    (tmp_path / "classes.json").write_text(json.dumps(CLASSES), encoding="utf-8")
    status, out, err = _run(import_model.main, ["--state-dict", foreign["state_dict"], "--classes",
                                                tmp_path / "classes.json", "--model-dir", tmp_path / "m"], capsys)
    assert status == 0, err
    assert read_model_config(tmp_path / "m").class_names == CLASSES
