"""Serving under hostile input, without TorchServe: strict decoding, the per-request pixel budget, 16-bit images
in bounded memory, the toolkit's body decoding, the TorchServe config we write and the worker log we read."""

from __future__ import annotations

import base64
import json
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sagemaker_inference.errors import GenericInferenceToolkitError
from sagemaker_inference.transformer import Transformer

from dogbreed.serving import handlers
from dogbreed.serving.torchserve_setup import worker_error, worker_failed, write_default_properties
from tests.helpers.inference_support import encode, npy_claiming

REPO = Path(__file__).resolve().parents[2]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def flat_png16(side: int, value: int = 40000) -> bytes:
    """A valid 16-bit grayscale PNG of side x side pixels of one value: tens of KB for tens of megapixels."""
    row = b"\x00" + value.to_bytes(2, "big") * side
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row * 100) for _ in range(side // 100)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 16, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", body) + _chunk(b"IEND", b"")


def noise(fmt: str, **options) -> bytes:
    rng = np.random.default_rng(5)
    return encode(Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)), fmt, **options)


@pytest.fixture(scope="module")
def predictor(tiny_model_dir: Path):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Transformer, "handle_error", Transformer.__dict__["handle_error"])  # model_fn swaps it
        yield handlers.model_fn(str(tiny_model_dir))


def serve(predictor, body: bytes, content_type: str) -> list | dict:
    result = handlers.predict_fn(handlers.input_fn(body, content_type), predictor)
    return json.loads(handlers.output_fn(result, "application/json")[0])


def test_truncated_png_with_a_reappended_end_marker_is_refused(predictor) -> None:
    png = noise("PNG")
    forged = png[: len(png) // 2] + png[-12:]  # cut in the pixel data, then IEND glued back on
    with pytest.raises(GenericInferenceToolkitError) as caught:
        serve(predictor, forged, "image/png")
    assert caught.value.status_code == 400
    assert caught.value.message == "image is truncated (the file ends inside its image data): use the complete file"


@pytest.mark.parametrize("fmt, trailer", [
    ("PNG", b"vendor trailer " * 500),  # more than 4 KB after IEND
    ("JPEG", b"\xff\xda" + b"\x00" * 5000),  # a trailer holding a start-of-scan marker after the EOI
])
def test_valid_image_with_trailing_bytes_is_answered(predictor, fmt: str, trailer: bytes) -> None:
    rows = serve(predictor, noise(fmt) + trailer, "image/png" if fmt == "PNG" else "image/jpeg")["predictions"]
    assert len(rows) == 3 and {row["breed"] for row in rows} == set(predictor.class_names)


def test_batch_error_names_the_broken_instance(predictor) -> None:
    good, jpeg = noise("JPEG"), noise("JPEG")
    body = json.dumps({"instances": [base64.b64encode(good).decode(), base64.b64encode(jpeg[:-200]).decode()]})
    with pytest.raises(GenericInferenceToolkitError) as caught:
        serve(predictor, body.encode(), "application/json")
    assert caught.value.status_code == 400 and caught.value.message == (
        '"instances"[1]: image is truncated (the file ends inside its image data): use the complete file')


def test_many_flat_16bit_pngs_exceed_the_request_pixel_budget() -> None:
    image = base64.b64encode(flat_png16(6000)).decode()  # 36 megapixels, ~83 KB each
    body = json.dumps({"instances": [image] * 16}).encode()
    assert len(body) < 2_000_000  # ~1.3 MB of PNGs, base64-encoded
    with pytest.raises(GenericInferenceToolkitError) as caught:
        handlers.input_fn(body, "application/json")
    assert caught.value.status_code == 413
    assert caught.value.message == ("the 16 image(s) of this request hold 576.0 megapixels together, over the 80 "
                                    "megapixel limit per request: send fewer or smaller images per request")


def test_request_pixel_budget_is_configurable(monkeypatch) -> None:
    monkeypatch.setenv("DOGBREED_MAX_REQUEST_PIXELS", "5000")
    one = base64.b64encode(encode(Image.new("RGB", (50, 50)), "PNG")).decode()
    handlers.input_fn(json.dumps({"instances": [one, one]}), "application/json")  # 5000 pixels: at the limit
    with pytest.raises(GenericInferenceToolkitError) as refused:
        handlers.input_fn(json.dumps({"instances": [one] * 3}), "application/json")
    assert (refused.value.status_code, refused.value.message) == (
        413, "the 3 image(s) of this request hold 0.0 megapixels together, over the 0.005 megapixel limit per "
             "request: send fewer or smaller images per request")


@pytest.mark.slow  # a training run or subprocess: make test, not make test-quick
def test_16bit_png_decodes_in_bounded_memory() -> None:
    """One 36-megapixel 16-bit PNG through the handlers, in a fresh process: the float64 conversion grew the peak
    by ~890 MB, the lookup table by ~240 MB."""
    script = textwrap.dedent(f"""
        import resource, sys
        sys.path.insert(0, {str(REPO)!r})
        from tests.serving.test_serving_hardening import flat_png16
        from dogbreed.core.images import open_image
        data = flat_png16(6000)
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        pixel = open_image(data, strict=True).getpixel((0, 0))
        print(pixel, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) // 1024)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, check=True)
    pixel, growth_mb = out.stdout.strip().rsplit(" ", 1)[0], int(out.stdout.split()[-1])
    assert pixel == "(155, 155, 155)"  # 40000 * 255 // 65535
    assert growth_mb < 500, f"decoding grew the peak RSS by {growth_mb} MB"


def test_npy_header_error_does_not_echo_internals() -> None:
    header = npy_claiming((2, 2, 3)).replace(b"'shape'", b"'shapf'")
    with pytest.raises(GenericInferenceToolkitError) as caught:
        handlers.input_fn(header, "application/x-npy")
    assert caught.value.status_code == 400
    assert caught.value.message == (
        "body is not a valid .npy array (its header cannot be parsed): send uint8 arrays of shape HxWx3 (one RGB "
        "image) or NxHxWx3 (a batch), values 0-255 saved with numpy.save")
    assert "shapf" not in caught.value.message and " at 0x" not in caught.value.message


def test_non_utf8_json_through_the_toolkit_dispatch_is_400(tiny_model_dir: Path, tmp_path: Path,
                                                           monkeypatch) -> None:
    from sagemaker_pytorch_serving_container.handler_service import HandlerService
    from ts.context import Context, RequestProcessor

    from dogbreed.serving.packaging import stage_model_dir

    staged = stage_model_dir(tiny_model_dir, tmp_path / "model")
    monkeypatch.setenv("SAGEMAKER_PROGRAM", "inference.py")
    monkeypatch.syspath_prepend(str(staged / "code"))
    monkeypatch.setattr(Transformer, "handle_error", Transformer.__dict__["handle_error"])
    monkeypatch.delitem(sys.modules, "inference", raising=False)
    monkeypatch.setattr("sagemaker_inference.content_types.UTF8_TYPES", ["application/json", "text/csv"])
    context = Context("model", str(staged), None, 1, None, "0.12.0")
    service = HandlerService()
    service.initialize(context)  # model_fn: installs the client-safe errors and the raw JSON bodies
    context.request_processor = [RequestProcessor({"Content-Type": "application/json"})]
    (response,) = service.handle([{"body": bytearray(b'{"image": "\xff\xfe"}')}], context)
    status, _ = context.get_response_status(0)
    assert status == 400
    assert json.loads(response)["message"] == (
        "malformed JSON (not UTF-8 text: invalid start byte at byte 11): send "
        '{"image": "<base64>"} or {"instances": ["<base64>", ...]}')
    sys.modules.pop("inference", None)


def test_properties_we_write_set_model_api_and_timeout_on_purpose(tmp_path: Path, monkeypatch) -> None:
    from sagemaker_pytorch_serving_container import torchserve

    written = write_default_properties(tmp_path)
    text = written.read_text()
    assert text.endswith("\n") and "enable_model_api=false\n" in text and "enable_model_api=true" not in text
    assert "vmargs=-XX:-UseContainerSupport -XX:-UsePerfData\n" in text
    monkeypatch.setattr(torchserve, "DEFAULT_TS_CONFIG_FILE", str(written))
    monkeypatch.setenv("SAGEMAKER_MODEL_SERVER_TIMEOUT", "60")
    lines = torchserve._generate_ts_config_properties("handler.py").splitlines()  # what the toolkit then writes
    assert "enable_model_api=false" in lines and "default_response_timeout=60" in lines


WORKER_LOG = """\
2026-01-01T00:00:00,001 [INFO ] W-9000-model_1.0-stdout MODEL_LOG - model_name: model, batchSize: 1
2026-01-01T00:00:00,002 [INFO ] epollEventLoopGroup-3-4 ACCESS_LOG - /127.0.0.1:1 "GET /models/model HTTP/1.1" 200 0
2026-01-01T00:00:00,003 [INFO ] W-9000-model_1.0-stdout MODEL_LOG - Backend worker process died.
2026-01-01T00:00:00,004 [INFO ] W-9000-model_1.0-stdout MODEL_LOG - Traceback (most recent call last):
2026-01-01T00:00:00,005 [INFO ] W-9000-model_1.0-stdout MODEL_LOG -   File "<frozen importlib._bootstrap>", line 1
2026-01-01T00:00:00,006 [WARN ] W-9000-model_1.0 org.pytorch.serve.wlm.BatchAggregator - Load model failed: model
2026-01-01T00:00:00,007 [INFO ] W-9000-model_1.0-stdout MODEL_LOG -   File "/w/ml/model/code/inference.py", line 12
2026-01-01T00:00:00,008 [INFO ] W-9000-model_1.0-stdout MODEL_LOG -     def broken(:
2026-01-01T00:00:00,009 [INFO ] W-9000-model_1.0-stdout MODEL_LOG -                ^
2026-01-01T00:00:00,010 [INFO ] W-9000-model_1.0-stdout MODEL_LOG - SyntaxError: invalid syntax
2026-01-01T00:00:00,011 [INFO ] W-9000-model_1.0-stdout org.pytorch.serve.wlm.WorkerLifeCycle - Stopped Scanner
2026-01-01T00:00:01,000 [INFO ] W-9000-model_1.0-stdout MODEL_LOG - s_name_part0=/w/tmp/.ts.sock, s_name_part1=9000
2026-01-01T00:00:01,001 [INFO ] W-9000-model_1.0-stdout MODEL_LOG - Backend worker process died.
2026-01-01T00:00:01,002 [INFO ] W-9000-model_1.0-stdout MODEL_LOG - Traceback (most recent call last):
"""


def test_a_cut_worker_error_starts_at_a_frame() -> None:
    """Python 3.11 marks each frame's expression with ^^^^; a window of the last lines that begins inside the
    frame before shows that marker (or a code line) with no frame, which is what serve's failure line printed."""
    frames = ["Traceback (most recent call last):",
              '  File "/w/ml/model/code/inference.py", line 30, in model_fn',
              "    return load_artifact(model_dir)", "           ^^^^^^^^^^^^^^^^^^^^^^^^",
              '  File "/w/dogbreed/serving/artifact.py", line 240, in load_artifact',
              "    config = read_model_config(model_dir)", "             ^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
              "dogbreed.core.errors.ArtifactError: /w/ml/model/model_config.json is not valid JSON"]
    log = "".join(f"2026-01-01T00:00:00,00{i} [INFO ] W-9000-model_1.0-stdout MODEL_LOG - {line}\n"
                  for i, line in enumerate(["Backend worker process died.", *frames]))
    assert worker_error(log, lines=5).splitlines() == frames[4:]  # 4 lines: the cut ^^^^ line is dropped
    assert worker_error(log, lines=4).splitlines() == frames[4:]
    assert worker_error(log, lines=3).splitlines() == frames[5:]  # no frame in the window: kept as it is
    assert worker_error(log, lines=8).splitlines() == frames  # the whole traceback: nothing cut


def test_worker_error_is_the_end_of_the_first_traceback() -> None:
    assert worker_failed(WORKER_LOG) and not worker_failed(WORKER_LOG.split("Backend")[0])
    assert worker_error(WORKER_LOG).splitlines() == [
        "Traceback (most recent call last):", '  File "/w/ml/model/code/inference.py", line 12',
        "    def broken(:", "               ^", "SyntaxError: invalid syntax"]
