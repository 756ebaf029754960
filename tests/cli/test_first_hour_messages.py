"""The messages of a user's first hour, word for word: a "did you mean" on every command (names and common
aliases), the missing model dir named before anything else, curl's -d slip explained."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from PIL import Image

from dogbreed.cli import debug_report, export, hpo, package, predict, prepare, profiled_train, serve, train
from dogbreed.serving import local_endpoint
from dogbreed.serving.requests import RequestError, ServingLimits, decode_request
from tests.helpers.option_lists import TRAIN_OPTIONS

PREDICT_OPTIONS = ("--batch-size, --device, --explain, --explain-top-k, --help, --json, --jsonl, --model-dir, "
                   "--precision, --top-k")
SERVE_OPTIONS = ("--help, --model-data, --model-dir, --own-code, --port, --response-timeout, --timeout, --work-dir, "
                 "--workers")
HPO_OPTIONS = (
    "--abstention-score, --accelerator, --accept-rate, --accumulate-grad-batches, --allow-duplicates, --augment, "
    "--backbone-lr-scale, --batch-size, --cache-dir, --cached-views, --calibrate, --checkpoint-dir, --compile, "
    "--config, --crop-min-side, --crop-scale, --cutmix-alpha, --data-dir, --dataset-url, --debug-dir, "
    "--debug-eval-interval, --debug-train-interval, --demo, --download, --early-stopping, --ema-decay, --epochs, "
    "--finetune, --freeze-epochs, --help, --image-size, --label-smoothing, --local, --log-dir, --logger, --lr, "
    "--lr-find, --max-time, --mixup-alpha, --model-dir, --monitor, --monitor-interval-ms, --num-workers, --ood-dir, "
    "--output-dir, --overwrite, --precision, --profile-dir, --profiler, --random-erasing, --resume-anyway, --seed, "
    "--show-batch, --skip-bad-images, --test-dir, --test-pct, --top-k, --train-dir, --trials, --tta, --tuning-dir, "
    "--valid-dir, --valid-pct, --warmup-epochs, --weight-decay, --weights")
SEND_INSTEAD = ("send image bytes (Content-Type image/jpeg, image/png, image/webp, application/x-image or "
                'application/octet-stream), JSON {"image": "<base64>"} or {"instances": ["<base64>", ...]} '
                "(application/json), or a uint8 HxWx3 / NxHxWx3 array (application/x-npy)")
CURL_HINT = "with curl, send the file with --data-binary @FILE (-d/--data removes its line breaks)"
CONTENT_TYPES = ("image/jpeg, image/png, image/webp, application/x-image, application/octet-stream, application/json, "
                 "application/x-npy")


def error_line(main, argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("argv, suggestion", [
    (["--lerning-rate", "0.1"], "--lerning-rate (did you mean --lr?)"),
    (["--learning-rate", "0.1"], "--learning-rate (did you mean --lr?)"),
    (["--learning_rate=0.1"], "--learning_rate=0.1 (did you mean --lr?)"),
    (["--num-epochs", "3"], "--num-epochs (did you mean --epochs?)"),
    (["--batchsize", "8"], "--batchsize (did you mean --batch-size?)"),
])
def test_train_suggests_the_option_of_a_misspelt_name_or_alias(argv, suggestion, capsys):
    assert error_line(train.main, argv, capsys) == (
        f"error: unknown option(s) {suggestion}. Options of python -m entry_points.train: {TRAIN_OPTIONS} "
        "(hyphens or underscores)")


def test_predict_topk_suggests_top_k_word_for_word(capsys):
    assert error_line(predict.main, ["--topk", "3", "dog.jpg"], capsys) == (
        "error: unknown option(s) --topk (did you mean --top-k?). Options of python -m entry_points.predict: "
        f"{PREDICT_OPTIONS} (hyphens or underscores)")


def test_serve_prot_suggests_port_word_for_word(capsys):
    assert error_line(serve.main, ["--model-dir", "m", "--prot", "8081"], capsys) == (
        "error: unknown option(s) --prot (did you mean --port?). Options of python -m entry_points.serve: "
        f"{SERVE_OPTIONS} (hyphens or underscores)")


def test_a_misspelt_required_option_is_a_typo_not_a_missing_option(capsys):
    assert error_line(serve.main, ["--model-dri", "m"], capsys) == (
        "error: unknown option(s) --model-dri (did you mean --model-dir?). Options of python -m entry_points.serve: "
        f"{SERVE_OPTIONS} (hyphens or underscores)")


def test_an_alias_leads_only_to_an_option_the_command_has(capsys):
    # predict has --device (train's alias for --accelerator); --gpu there has no accelerator to lead to
    assert error_line(predict.main, ["--model-dir", "m", "--cuda", "x.jpg"], capsys) == (
        "error: unknown option(s) --cuda (did you mean --device?). Options of python -m entry_points.predict: "
        f"{PREDICT_OPTIONS} (hyphens or underscores)")
    assert error_line(train.main, ["--device", "cpu"], capsys) == (
        "error: unknown option(s) --device (did you mean --accelerator?). Options of python -m entry_points.train: "
        f"{TRAIN_OPTIONS} (hyphens or underscores)")


@pytest.mark.parametrize("main, argv, suggestion, options", [
    (hpo.main, ["--trails", "3"], "--trails (did you mean --trials?)", f"hpo: {HPO_OPTIONS}"),
    (profiled_train.main, ["--epoch", "1"], "--epoch (did you mean --epochs?)", f"profiled_train: {TRAIN_OPTIONS}"),
    (package.main, ["--model-dir", "m", "--outptu", "x"], "--outptu (did you mean --output?)",
     "package: --data-dir, --help, --model-dir, --output, --precision"),
    (export.main, ["--model-dir", "m", "--check-image", "x"], "--check-image (did you mean --check-images?)",
     "export: --check-images, --data-dir, --help, --model-dir, --output, --precision"),
    (debug_report.main, ["--trial", "t", "--output", "x"], "--output (did you mean --output-dir?)",
     "debug_report: --help, --output-dir, --trial"),
    (prepare.main, ["--data-dir", "x", "--output", "y", "--shortside", "3"],
     "--shortside (did you mean --short-side?)",
     "prepare: --data-dir, --help, --image-size, --output, --quality, --short-side, --skip-bad-images, --workers"),
])
def test_every_command_answers_a_typo_with_a_suggestion(main, argv, suggestion, options, capsys):
    assert error_line(main, argv, capsys) == (
        f"error: unknown option(s) {suggestion}. Options of python -m entry_points.{options} (hyphens or underscores)")


def test_serve_names_a_missing_model_dir_even_while_another_server_runs(tmp_path, monkeypatch, capsys):
    def already_running() -> None:
        raise local_endpoint.ServeError("a TorchServe server is already running")

    monkeypatch.setattr(local_endpoint, "check_no_torchserve", already_running)
    missing = tmp_path / "no model here"
    assert error_line(serve.main, ["--model-dir", str(missing)], capsys) == (
        f"error: --model-dir {missing} does not exist: pass the --model-dir written by python -m entry_points.train "
        "(default: outputs/model)")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "model.pth").write_bytes(b"x")
    assert error_line(serve.main, ["--model-dir", str(tmp_path / "half")], capsys) == (
        f"error: --model-dir {tmp_path / 'half'} lacks model_config.json: pass a dir written by "
        "python -m entry_points.train --model-dir")
    assert error_line(serve.main, ["--model-data", str(tmp_path / "m.tar.gz")], capsys) == (
        f"error: --model-data {tmp_path / 'm.tar.gz'} not found: build one with python -m entry_points.package")


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.radial_gradient("L").convert("RGB").save(buffer, format="JPEG")
    return buffer.getvalue()


def refusal(body: bytes, content_type: str | None) -> tuple[int, str]:
    with pytest.raises(RequestError) as caught:
        decode_request(body, content_type, ServingLimits())
    return caught.value.status_code, caught.value.message


def test_curl_d_mangled_image_gets_the_data_binary_hint(tiny_model_dir):
    from dogbreed.serving import handlers
    from dogbreed.serving.predictor import Predictor

    jpeg = _jpeg()
    assert b"\n" in jpeg
    mangled = jpeg.replace(b"\n", b"").replace(b"\r", b"")  # what curl -d @dog.jpg sends
    with pytest.raises(Exception) as caught:
        handlers.predict_fn(handlers.input_fn(mangled, "image/jpeg"), Predictor.from_model_dir(tiny_model_dir))
    assert caught.value.status_code == 400
    # PIL's reason (e.g. "broken data stream when reading image file") is its own wording
    assert re.fullmatch(r"cannot decode image: ([a-z ]+)\. Use a valid JPEG, PNG or WebP file; " + re.escape(CURL_HINT),
                        caught.value.message), caught.value.message
    status, message = refusal(b"plain text, but no line break in it: " * 3, "image/jpeg")
    assert status == 400 and message == f"body is not an image PIL can identify: {SEND_INSTEAD}; {CURL_HINT}"
    status, message = refusal(b"plain text\nwith a line break, not an image" * 3, "image/jpeg")
    assert status == 400 and message == f"body is not an image PIL can identify: {SEND_INSTEAD}"


def test_curl_d_without_a_content_type_gets_the_hint_in_a_short_415():
    status, message = refusal(_jpeg(), "application/x-www-form-urlencoded")
    assert status == 415 and message == (
        f"Content-Type 'application/x-www-form-urlencoded' is not supported: use one of {CONTENT_TYPES} "
        f"({CURL_HINT} and -H 'Content-Type: image/jpeg')")
    status, message = refusal(_jpeg(), None)
    assert status == 415 and message == f"Content-Type missing is not supported: use one of {CONTENT_TYPES}"
    assert len(message) < 300 and "\\x" not in message  # never the body's bytes


def test_predict_finds_the_model_where_train_writes_it(tmp_path, monkeypatch, tiny_model_dir, capsys):
    import shutil

    monkeypatch.chdir(tmp_path)
    image = tmp_path / "dog.png"
    Image.radial_gradient("L").convert("RGB").save(image)
    assert predict.main([str(image)]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: no model in outputs/model (the default --model-dir): train one first with "
        "python -m entry_points.train, or pass --model-dir")
    shutil.copytree(tiny_model_dir, tmp_path / "outputs" / "model")
    assert predict.main(["--json", str(image)]) == 0
    assert [record["image"] for record in json.loads(capsys.readouterr().out)] == [str(image)]


@pytest.mark.slow  # two 90 MB archives (7 s): make test; test_inference_toolkit packages in make test-quick
def test_package_says_what_it_wrote_and_whether_it_replaced_an_archive(tmp_path, tiny_model_dir, capsys):
    archive = tmp_path / "model.tar.gz"
    assert package.main(["--model-dir", str(tiny_model_dir), "--output", str(archive)]) == 0
    size = archive.stat().st_size
    assert capsys.readouterr().out.strip() == f"wrote {archive} ({size / 1e6:.1f} MB)"
    assert package.main(["--model-dir", str(tiny_model_dir), "--output", str(archive)]) == 0
    assert capsys.readouterr().out.strip() == f"replaced {archive} ({archive.stat().st_size / 1e6:.1f} MB)"
    assert package.archive_line(Path("m.tar.gz"), 97_860_000, replaced=False) == "wrote m.tar.gz (97.9 MB)"
