"""Serving precision: the choice (flag, DOGBREED_PRECISION, the artifact's record), the bf16 fallback line, the
agreement measured against fp32 and the refusal of a reduced model that disagrees, int8 end to end."""

from __future__ import annotations

import json
import logging
import shutil
import tarfile
from pathlib import Path

import pytest
import torch
from torch import nn

from dogbreed.cli import package as package_cli
from dogbreed.cli import predict as predict_cli
from dogbreed.core.errors import ArtifactError, ConfigError
from dogbreed.core.network import build_resnet50
from dogbreed.core.transforms import Preprocessing
from dogbreed.serving import handlers, precision, precision_check
from dogbreed.serving.artifact import ModelConfig, read_model_config, save_artifact
from dogbreed.serving.predictor import Predictor
from tests.helpers.builders import write_tree
from tests.helpers.inference_support import dog_jpeg

BREEDS = ["Affenpinscher", "Afghan hound", "Airedale terrier"]
FLAGS_WITH_BF16 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n"
FLAGS_WITHOUT = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n"
FALLBACK_LINE = "bf16 requested but this CPU has no avx512_bf16 or amx_bf16 flag: serving fp32"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_tree(tmp_path_factory.mktemp("precision_data") / "data", {"train": 4, "valid": 3}, seed=3)


@pytest.fixture(scope="module")
def decisive_model_dir(tmp_path_factory) -> Path:
    """A 32 px random ResNet50 whose head is scaled up: decisive logits, so fp32 and a faithful reduced model
    agree on every image (a random head's near-uniform probabilities flip on rounding)."""
    torch.manual_seed(0)
    net = build_resnet50(3).eval()
    with torch.no_grad():
        net.fc.weight.mul_(200.0)
    model_dir = tmp_path_factory.mktemp("precision_model") / "model"
    return save_artifact(model_dir, net, ModelConfig(class_names=BREEDS, preprocessing=Preprocessing(image_size=32)))


@pytest.fixture
def model_dir(decisive_model_dir, tmp_path) -> Path:
    """A fresh copy per test: packaging with --precision writes into the model dir."""
    return Path(shutil.copytree(decisive_model_dir, tmp_path / "model"))


def fake_cpuinfo(monkeypatch, tmp_path: Path, text: str) -> None:
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    monkeypatch.setattr(precision, "CPUINFO", path)


def validation_images(data_dir: Path) -> list[Path]:
    return sorted(p for p in (data_dir / "valid").rglob("*") if p.is_file())


class Rolled(nn.Module):
    """A deliberately damaged reduced model: every logit moved to the next class."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).roll(1, dims=1)


# ---------------------------------------------------------------- the choice


def test_cpu_flags_are_read_from_cpuinfo(tmp_path) -> None:
    path = tmp_path / "cpuinfo"
    path.write_text(FLAGS_WITH_BF16)
    assert precision.cpu_flags(path) == {"fpu", "sse2", "avx2", "avx512f", "avx512_bf16", "avx512_vnni"}
    assert precision.cpu_flags(tmp_path / "missing") == frozenset()


@pytest.mark.parametrize("flag", ["avx512_bf16", "amx_bf16"])
def test_bf16_runs_where_the_cpu_has_it(flag, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="dogbreed.serving.precision"):
        assert precision.runnable_precision("bf16", torch.device("cpu"), frozenset({"avx2", flag})) == "bf16"
    assert caplog.records == []


@pytest.mark.parametrize("requested, device, bf16_gpu, line", [
    ("bf16", "cuda", False, "bf16 requested but this GPU does not support it: serving fp32"),
    ("int8", "cuda", True, "int8 runs on the CPU only: serving fp32 on cuda"),
    ("int8", "mps", True, "int8 runs on the CPU only: serving fp32 on mps"),
])
def test_an_accelerator_that_cannot_run_the_precision_serves_fp32_with_one_log_line(monkeypatch, caplog, requested,
                                                                                    device, bf16_gpu, line) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: bf16_gpu)
    with caplog.at_level(logging.INFO, logger="dogbreed.serving.precision"):
        assert precision.runnable_precision(requested, torch.device(device)) == "fp32"
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [("WARNING", line)]
    caplog.clear()
    if requested == "bf16":  # a GPU that has bf16 keeps it, silently
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
        assert precision.runnable_precision("bf16", torch.device(device)) == "bf16" and caplog.records == []


def test_bf16_falls_back_to_fp32_with_one_log_line(caplog) -> None:
    with caplog.at_level(logging.INFO, logger="dogbreed.serving.precision"):
        assert precision.runnable_precision("bf16", torch.device("cpu"), frozenset({"avx2", "avx512f"})) == "fp32"
    assert [r.getMessage() for r in caplog.records] == [FALLBACK_LINE]
    assert caplog.records[0].levelname == "WARNING"


def test_precision_from_env_is_checked() -> None:
    assert precision.precision_from_env({"DOGBREED_PRECISION": " INT8 "}) == "int8"
    assert precision.precision_from_env({"DOGBREED_PRECISION": ""}) is None
    assert precision.precision_from_env({}) is None
    with pytest.raises(ConfigError) as refused:
        precision.precision_from_env({"DOGBREED_PRECISION": "fp16"})
    assert str(refused.value) == "DOGBREED_PRECISION 'fp16' is not a precision: use one of fp32, bf16, int8"


@pytest.mark.parametrize(("record", "problem"), [
    ({"mode": "fp16"}, "precision.mode must be one of fp32, bf16, int8, got 'fp16'"),
    ({"mode": "bf16", "max_abs_delta_p": 0.1, "images": 3}, "precision.agreement must be a finite number, got None"),
    ({"mode": "bf16", "agreement": 1.5, "max_abs_delta_p": 0.1, "images": 3},
     "precision.agreement must be between 0 and 1, got 1.5"),
    ({"mode": "int8", "agreement": 1.0, "max_abs_delta_p": 0.1, "images": 3, "weights_sha256": "ab"},
     "precision.weights_sha256 must be 64 lower-case hex digits, got 'ab'"),
    ({"mode": "int8", "agreement": 1.0, "max_abs_delta_p": 0.1, "images": 3, "weights_sha256": "a" * 64},
     "precision.source_weights_sha256 must be 64 lower-case hex digits, got None"),
    ({"mode": "int8", "agreement": 1.0, "max_abs_delta_p": 0.1, "images": 3, "weights_sha256": "a" * 64,
      "source_weights_sha256": "A" * 64}, "precision.source_weights_sha256 must be 64 lower-case hex digits, got "
                                          + "'" + "A" * 56 + "..."),  # shown cut to 60 characters
])
def test_a_bad_precision_record_is_refused_naming_the_field(decisive_model_dir, record, problem) -> None:
    data = json.loads((decisive_model_dir / "model_config.json").read_text())
    with pytest.raises(ArtifactError) as refused:
        ModelConfig.from_dict(dict(data, precision=record))
    assert str(refused.value) == (f"model_config.json: {problem}: re-export the model (python -m entry_points.train "
                                  "--model-dir ...), or for weights from elsewhere make the model dir with python -m "
                                  "entry_points.import_model")


def test_handlers_honour_dogbreed_precision(model_dir, monkeypatch, tmp_path, caplog) -> None:
    from sagemaker_inference.transformer import Transformer

    monkeypatch.setattr(Transformer, "handle_error", Transformer.__dict__["handle_error"])  # model_fn swaps it
    fake_cpuinfo(monkeypatch, tmp_path, FLAGS_WITH_BF16)
    assert handlers.model_fn(str(model_dir)).precision == "fp32"  # nothing recorded, nothing asked
    monkeypatch.setenv("DOGBREED_PRECISION", "bf16")
    served = handlers.model_fn(str(model_dir))
    assert served.precision == "bf16"
    result = handlers.predict_fn(handlers.input_fn(dog_jpeg(), "image/jpeg"), served)
    assert result.probabilities.dtype == torch.float32 and abs(float(result.probabilities.sum()) - 1) < 1e-3
    fake_cpuinfo(monkeypatch, tmp_path, FLAGS_WITHOUT)
    with caplog.at_level(logging.WARNING, logger="dogbreed.serving.precision"):
        assert handlers.model_fn(str(model_dir)).precision == "fp32"
    assert [r.getMessage() for r in caplog.records] == [FALLBACK_LINE]
    monkeypatch.setenv("DOGBREED_PRECISION", "int8")
    with pytest.raises(ConfigError) as refused:
        handlers.model_fn(str(model_dir))
    assert str(refused.value) == (f"precision int8: {model_dir} has no int8 weights; make them with python -m "
                                  "entry_points.package --precision int8 --data-dir DATA --model-dir MODEL_DIR")


def test_predict_precision_flag_overrides_and_int8_needs_its_weights(model_dir, data_dir, capsys) -> None:
    image = str(validation_images(data_dir)[0])
    with pytest.raises(ConfigError) as refused:
        predict_cli.predict_command([image, "--model-dir", str(model_dir), "--precision", "int8"])
    assert str(refused.value) == (f"precision int8: {model_dir} has no int8 weights; make them with python -m "
                                  "entry_points.package --precision int8 --data-dir DATA --model-dir MODEL_DIR")
    outcome = predict_cli.predict_command([image, "--model-dir", str(model_dir), "--precision", "fp32", "--json"])
    assert json.loads(outcome.summary)[0]["image"] == image


# ---------------------------------------------------------------- agreement and refusal


def test_agreement_line_gives_the_numbers() -> None:
    agreement = precision_check.Agreement("int8", 400, 397, 0.0312)
    assert agreement.agreement == pytest.approx(0.9925)
    assert agreement.line() == ("int8 vs fp32 on 400 held-out image(s): top-1 agreement 99.25% (397/400), "
                                "max |delta p| 0.0312")
    with pytest.raises(precision_check.PrecisionRefused) as refused:
        agreement.require()
    assert str(refused.value) == ("refused: int8 vs fp32 on 400 held-out image(s): top-1 agreement 99.25% "
                                  "(397/400), max |delta p| 0.0312, below the 99.5% required; serve fp32 "
                                  "(package --precision fp32) or check the model")
    assert precision_check.Agreement("int8", 400, 398, 0.0).require().agreeing == 398  # 99.5% exactly passes


@pytest.mark.slow
def test_package_bf16_measures_agreement_and_records_it(model_dir, data_dir, tmp_path) -> None:
    summary = package_cli.package_command(["--model-dir", str(model_dir), "--output", str(tmp_path / "m.tar.gz"),
                                           "--precision", "bf16", "--data-dir", str(data_dir)])
    # The same comparison done here, independently: 9 validation images, fp32 vs bf16 autocast.
    images = validation_images(data_dir)
    fp32 = Predictor.from_model_dir(model_dir, device="cpu", precision="fp32")
    bf16 = Predictor(fp32.net, fp32.config, torch.device("cpu"), precision="bf16")
    batch = fp32.preprocess(images)
    expected, got = fp32.predict_proba(batch), bf16.predict_proba(batch)
    agreeing = int((expected.argmax(1) == got.argmax(1)).sum())
    record = read_model_config(model_dir).precision
    assert len(images) == 9 and agreeing == 9
    assert record["mode"] == "bf16" and record["images"] == 9 and record["agreement"] == 1.0
    assert record["max_abs_delta_p"] == pytest.approx(float((expected - got).abs().max()), abs=1e-5)
    assert "bf16 vs fp32 on 9 held-out image(s): top-1 agreement 100.00% (9/9)" in summary
    with tarfile.open(tmp_path / "m.tar.gz") as archive:
        packed = json.load(archive.extractfile("model_config.json"))  # type: ignore[arg-type]
    assert packed["precision"] == record


def test_a_damaged_reduced_model_is_refused_and_nothing_is_written(model_dir, data_dir, tmp_path,
                                                                    monkeypatch) -> None:
    calibrated: list[int] = []

    def damaged_quantize(net: nn.Module, batches) -> nn.Module:
        calibrated.extend(batch.shape[0] for batch in batches)
        return Rolled(net)

    monkeypatch.setattr(precision_check, "quantize_int8", damaged_quantize)
    config_before = (model_dir / "model_config.json").read_bytes()
    output = tmp_path / "m.tar.gz"
    with pytest.raises(precision_check.PrecisionRefused) as refused:
        package_cli.package_command(["--model-dir", str(model_dir), "--output", str(output),
                                     "--precision", "int8", "--data-dir", str(data_dir)])
    # the decisive head puts ~all probability on one class, so rolling the logits moves all of it: |delta p| = 1
    assert str(refused.value) == ("refused: int8 vs fp32 on 9 held-out image(s): top-1 agreement 0.00% (0/9), max "
                                  "|delta p| 1.0000, below the 99.5% required; serve fp32 (package --precision fp32) "
                                  "or check the model")
    assert sum(calibrated) == 12  # calibrated on the train split (4 x 3), measured on valid (3 x 3)
    assert (model_dir / "model_config.json").read_bytes() == config_before
    assert not (model_dir / "model_int8.pth").exists() and not output.exists()


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_reduced_precision_needs_the_data_dir(model_dir, tmp_path, precision) -> None:
    message = (f"--precision {precision} needs --data-dir DIR (with train/ and valid/): the reduced model is checked "
               "against fp32 on the validation split")
    with pytest.raises(ConfigError) as caught:
        package_cli.package_command(["--model-dir", str(model_dir), "--output", str(tmp_path / "m.tar.gz"),
                                     "--precision", precision])
    assert str(caught.value) == message
    with pytest.raises(ConfigError) as caught:  # said first, before the model dir is read (here: there is none)
        package_cli.package_command(["--model-dir", str(tmp_path / "none"), "--output", str(tmp_path / "m.tar.gz"),
                                     "--precision", precision])
    assert str(caught.value) == message
    with pytest.raises(ConfigError) as caught:
        package_cli.reduce_precision(model_dir, precision, None)
    assert str(caught.value) == message
    assert not (tmp_path / "m.tar.gz").exists()


# ---------------------------------------------------------------- int8 end to end


@pytest.mark.slow
def test_int8_end_to_end(model_dir, data_dir, tmp_path, monkeypatch) -> None:
    from dogbreed.serving.packaging import extract_model_archive

    output = tmp_path / "m.tar.gz"
    summary = package_cli.package_command(["--model-dir", str(model_dir), "--output", str(output),
                                           "--precision", "int8", "--data-dir", str(data_dir)])
    config = read_model_config(model_dir)
    record = config.precision
    assert "int8 vs fp32 on 9 held-out image(s): top-1 agreement 100.00% (9/9)" in summary
    assert record["mode"] == "int8" and record["images"] == 9 and record["agreement"] == 1.0
    assert record["calibration_images"] == 12 and record["weights"] == "model_int8.pth"
    assert record["source_weights_sha256"] == config.weights_sha256
    int8 = Predictor.from_model_dir(model_dir, device="cpu")  # the record makes int8 the default
    fp32 = Predictor.from_model_dir(model_dir, device="cpu", precision="fp32")
    assert int8.precision == "int8" and isinstance(int8.net.fc, torch.ao.nn.quantized.Linear)
    batch = fp32.preprocess(validation_images(data_dir))
    assert torch.equal(int8.predict_proba(batch).argmax(1), fp32.predict_proba(batch).argmax(1))
    served = extract_model_archive(output, tmp_path / "served")
    assert sorted(p.name for p in served.iterdir()) == ["code", "model.pth", "model_config.json", "model_int8.pth"]
    assert handlers.model_fn(str(served)).precision == "int8"
    monkeypatch.setenv("DOGBREED_PRECISION", "fp32")
    assert handlers.model_fn(str(served)).precision == "fp32"
    (served / "model_int8.pth").write_bytes((served / "model_int8.pth").read_bytes()[:-10])  # damaged on disk
    monkeypatch.delenv("DOGBREED_PRECISION")
    with pytest.raises(ArtifactError) as refused:
        Predictor.from_model_dir(served, device="cpu")
    assert str(refused.value) == (f"{served / 'model_int8.pth'} does not belong to model_config.json (its SHA-256 "
                                  "differs): rebuild it with python -m entry_points.package --precision int8 "
                                  "--data-dir DATA")


@pytest.mark.parametrize("precision, served", [("int8", "fp32"), ("bf16", "bf16"), ("fp32", "fp32")])
def test_without_the_x86_quantized_engine_only_int8_falls_back(monkeypatch, caplog, precision, served) -> None:
    import torch

    from dogbreed.serving.precision import runnable_precision

    monkeypatch.setattr(type(torch.backends.quantized), "supported_engines", property(lambda self: ["none"]))
    with caplog.at_level("WARNING", logger="dogbreed"):
        assert runnable_precision(precision, torch.device("cpu"), flags=frozenset({"amx_bf16"})) == served
    expected = ["int8 needs the x86 quantized engine, which this torch build lacks: serving fp32"] \
        if precision == "int8" else []
    assert [r.getMessage() for r in caplog.records] == expected


def _int8_record(data: bytes, source: str = "a" * 64) -> dict:
    import hashlib

    return {"mode": "int8", "weights": "model_int8.pth", "weights_sha256": hashlib.sha256(data).hexdigest(),
            "source_weights_sha256": source}


def test_each_int8_file_refusal_names_the_file_and_how_to_rebuild_it(tmp_path) -> None:
    """load_int8's checks run before anything is unpickled: a missing file, int8 weights made from other fp32
    weights (or a config without the fp32 hash), and a file other than the one recorded."""
    int8 = tmp_path / "model_int8.pth"
    rebuild = "rebuild it with python -m entry_points.package --precision int8 --data-dir DATA"
    with pytest.raises(ArtifactError) as missing:
        precision.load_int8(tmp_path, _int8_record(b"weights"), "a" * 64, 3)
    assert str(missing.value) == f"{int8} not found but model_config.json records int8: {rebuild}"
    int8.write_bytes(b"weights")
    for fp32_sha256 in ("b" * 64, None):
        with pytest.raises(ArtifactError) as other:
            precision.load_int8(tmp_path, _int8_record(b"weights"), fp32_sha256, 3)
        assert str(other.value) == f"{int8} was made from other fp32 weights than the model dir holds: {rebuild}"
    with pytest.raises(ArtifactError) as swapped:
        precision.load_int8(tmp_path, _int8_record(b"other weights"), "a" * 64, 3)
    assert str(swapped.value) == f"{int8} does not belong to model_config.json (its SHA-256 differs): {rebuild}"


def test_the_files_an_int8_record_serves_from_are_hash_checked(tmp_path) -> None:
    assert precision.precision_files(tmp_path, None) == ()
    assert precision.precision_files(tmp_path, {"mode": "bf16"}) == ()
    rebuild = "rebuild it with python -m entry_points.package --precision int8 --data-dir DATA"
    refusal = (f"{tmp_path / 'model_int8.pth'} is missing or does not belong to model_config.json (SHA-256): "
               f"{rebuild}")
    with pytest.raises(ArtifactError) as missing:
        precision.precision_files(tmp_path, _int8_record(b"weights"))
    assert str(missing.value) == refusal
    (tmp_path / "model_int8.pth").write_bytes(b"weights!")
    with pytest.raises(ArtifactError) as other:
        precision.precision_files(tmp_path, _int8_record(b"weights"))
    assert str(other.value) == refusal
    (tmp_path / "model_int8.pth").write_bytes(b"weights")
    assert precision.precision_files(tmp_path, _int8_record(b"weights")) == ("model_int8.pth",)


def test_an_int8_file_that_is_recorded_but_not_int8_weights(tmp_path) -> None:
    """Both hashes match (the record vouches for the file), yet it is junk or the weights of another network."""
    import io

    rebuild = "rebuild it with python -m entry_points.package --precision int8 --data-dir DATA"
    int8 = tmp_path / "model_int8.pth"
    int8.write_bytes(b"junk bytes here")
    with pytest.raises(ArtifactError) as junk:
        precision.load_int8(tmp_path, _int8_record(b"junk bytes here"), "a" * 64, 3)
    assert str(junk.value) == (f"{int8} cannot be loaded weights-only (it is not a PyTorch file: neither torch.save's "
                               f"zip archive nor a pickle): {rebuild}")
    buffer = io.BytesIO()
    torch.save({"fc.weight": torch.zeros(3, 2048)}, buffer)
    int8.write_bytes(buffer.getvalue())
    with pytest.raises(ArtifactError) as other:
        precision.load_int8(tmp_path, _int8_record(buffer.getvalue()), "a" * 64, 3)
    # quantized modules raise KeyError for a missing weight (it escaped as a traceback): now one line
    assert str(other.value) == f"{int8} does not fit a 3-class int8 ResNet50 (no conv1.weight in it): {rebuild}"


def test_int8_needs_calibration_images_and_a_recorded_fp32_hash(tiny_model_dir, tmp_path) -> None:
    model = Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))
    image = tmp_path / "dog.jpg"
    image.write_bytes(dog_jpeg())
    with pytest.raises(ConfigError) as refused:
        precision_check.reduce_model_dir(model, "int8", [image], calibration=[])
    assert str(refused.value) == "int8 needs calibration images: pass a --data-dir with a train split"
    config = json.loads((model / "model_config.json").read_text())
    del config["weights_sha256"]  # an artifact from before the hash was recorded
    (model / "model_config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError) as refused:
        precision_check.reduce_model_dir(model, "int8", [image], calibration=[image])
    assert str(refused.value) == (f"{model}/model_config.json records no weights_sha256 to tie int8 weights to: "
                                  "re-export the model with python -m entry_points.train --model-dir")
    assert not (model / "model_int8.pth").exists()


def test_the_bf16_record_rounds_its_measurements_to_six_places(tiny_model_dir, tmp_path, monkeypatch) -> None:
    """The record written into model_config.json: every field, with figures that do not end (2/3)."""
    model = Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))
    image = tmp_path / "dog.jpg"
    image.write_bytes(dog_jpeg())
    measured = precision_check.Agreement("bf16", 3, 2, 0.01234567891)
    monkeypatch.setattr(precision_check, "measure_agreement", lambda reference, reduced, batches: measured)
    assert precision_check.reduce_model_dir(model, "bf16", [image], minimum=0.5) is measured
    assert json.loads((model / "model_config.json").read_text())["precision"] == {
        "mode": "bf16", "agreement": 0.666667, "max_abs_delta_p": 0.012346, "images": 3,
        "measured_on": "validation split", "tta": "none"}
    measured = precision_check.Agreement("bf16", 3, 3, 2 / 3 * 1e-3)
    monkeypatch.setattr(precision_check, "measure_agreement", lambda reference, reduced, batches: measured)
    precision_check.reduce_model_dir(model, "bf16", [image])
    record = json.loads((model / "model_config.json").read_text())["precision"]
    assert (record["agreement"], record["max_abs_delta_p"]) == (1.0, 0.000667)
