"""Packaging, the inference toolkit's real dispatch (HandlerService, in process) and deploy helpers."""

from __future__ import annotations

import io
import json
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from sagemaker_inference.transformer import Transformer
from ts.context import Context, RequestProcessor

from dogbreed.core.errors import ArtifactError
from dogbreed.sagemaker.deploy import build_model_builder, invoke
from dogbreed.serving.packaging import build_model_archive, extract_model_archive
from entry_points import package as package_cli
from tests.helpers.inference_support import BAD_REQUESTS, b64, dog_jpeg, npy

ROLE = "arn:aws:iam::111111111111:role/SageMakerRole"


@pytest.fixture(scope="module")
def archive(tiny_model_dir, tmp_path_factory) -> Path:
    """Packaging and the toolkit's dispatch need a servable model dir, not a trained one."""
    return build_model_archive(tiny_model_dir, tmp_path_factory.mktemp("package") / "model.tar.gz")


@pytest.fixture(scope="module")
def extracted(archive: Path, tmp_path_factory) -> Path:
    return extract_model_archive(archive, tmp_path_factory.mktemp("extracted") / "model")


def test_archive_layout_needs_no_repack_and_no_install(archive: Path) -> None:
    with tarfile.open(archive) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert {"model.pth", "model_config.json", "code/inference.py", "code/dogbreed/__init__.py",
            "code/dogbreed/serving/handlers.py", "code/dogbreed/serving/predictor.py",
            "code/dogbreed/core/network.py"} <= set(members)
    assert all(m.mode == 0o644 and m.uid == 0 for m in members.values() if m.isfile())
    # Nothing for the container to pip-install at start-up, and no training stack in code/.
    assert "code/requirements.txt" not in members
    packaged = {name.split("/")[2] for name in members if name.startswith("code/dogbreed/") and name.count("/") >= 3}
    assert packaged == {"core", "serving"}


def test_package_cli_reports_bad_model_dir(tmp_path: Path, capsys) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.pth").write_bytes(b"x")
    assert package_cli.main(["--model-dir", str(tmp_path / "model"), "--output", str(tmp_path / "m.tar.gz")]) == 2
    assert "lacks model_config.json" in capsys.readouterr().err
    assert not (tmp_path / "m.tar.gz").exists()


@pytest.mark.slow  # a second 90 MB archive; the fast suite checks the line with a stand-in archive
def test_package_cli_writes_archive(tiny_model_dir, tmp_path: Path, capsys) -> None:
    output = tmp_path / "out" / "model.tar.gz"
    assert package_cli.main(["--model-dir", str(tiny_model_dir), "--output", str(output)]) == 0
    size_mb = f"{output.stat().st_size / 1e6:.1f}"
    assert capsys.readouterr().out.strip() == f"wrote {output} ({size_mb} MB)" and tarfile.is_tarfile(output)


def test_extract_refuses_path_escapes(tmp_path: Path) -> None:
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(ArtifactError) as refused:
        extract_model_archive(evil, tmp_path / "out")
    assert str(refused.value) == (f"{evil}: member '../escaped.txt' points outside the archive's folder: rebuild it "
                                  "with python -m entry_points.package")
    assert not (tmp_path / "escaped.txt").exists()


@pytest.fixture(scope="module")
def handler_service(extracted: Path):
    """The toolkit's HandlerService loading code/inference.py from the extracted archive."""
    from sagemaker_pytorch_serving_container.handler_service import HandlerService

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SAGEMAKER_PROGRAM", "inference.py")
        mp.syspath_prepend(str(extracted / "code"))
        mp.setattr(Transformer, "handle_error", Transformer.__dict__["handle_error"])  # restored afterwards
        mp.delitem(sys.modules, "inference", raising=False)
        context = Context("model", str(extracted), None, 1, None, "0.12.0")
        service = HandlerService()
        service.initialize(context)
        yield service, context
        sys.modules.pop("inference", None)


def dispatch(handler_service, body: bytes, content_type: str, accept: str | None = None):
    service, context = handler_service
    headers = {"Content-Type": content_type} | ({"Accept": accept} if accept is not None else {})
    context.request_processor = [RequestProcessor(headers)]
    (response,) = service.handle([{"body": bytearray(body)}], context)
    status, phrase = context.get_response_status(0)
    return status, phrase, context.get_response_content_type(0), response


@pytest.mark.parametrize("accept", [None, "*/*", "application/json", "application/json, text/csv"])
def test_dispatch_answers_json_by_default(handler_service, accept) -> None:
    status, _, content_type, body = dispatch(handler_service, dog_jpeg(), "image/jpeg", accept)
    assert (status, content_type) == (200, "application/json")
    answer = json.loads(body)
    assert answer["confident"] is None and answer["abstention"].startswith("no abstention rule is set")
    assert [set(row) for row in answer["predictions"]] == [{"breed", "index", "probability"}] * 3


def test_dispatch_decodes_json_and_answers_npy(handler_service) -> None:
    body = json.dumps({"instances": [b64(dog_jpeg())] * 2}).encode()
    status, _, content_type, response = dispatch(handler_service, body, "application/json", "application/x-npy")
    assert (status, content_type) == (200, "application/x-npy")
    assert np.load(io.BytesIO(response), allow_pickle=False).shape == (2, 3)


@pytest.mark.parametrize("name, content_type, accept, status", [
    ("text/plain", "text/plain", None, 415), ("csv accept", "image/jpeg", "text/csv", 406),
    ("garbage", "image/jpeg", None, 400), ("empty", "image/png", None, 400),
])
def test_dispatch_errors_are_4xx_json_without_traceback(handler_service, name, content_type, accept, status) -> None:
    body = BAD_REQUESTS["empty"][0] if name == "empty" else (b"nope" if name == "garbage" else dog_jpeg())
    got_status, phrase, response_type, response = dispatch(handler_service, body, content_type, accept)
    payload = json.loads(response)
    assert (got_status, response_type, payload["code"]) == (status, "application/json", status)
    assert "Traceback" not in response and "File \"" not in response
    assert phrase == payload["message"] and len(payload["message"]) > 20
    assert dispatch(handler_service, dog_jpeg(), "image/jpeg")[0] == 200  # the worker keeps serving


def test_dispatch_hides_internal_errors(handler_service, monkeypatch) -> None:
    import inference as user_module  # the packaged code/inference.py

    def broken(data, model):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(handler_service[0]._service, "_predict_fn", broken)
    status, _, _, response = dispatch(handler_service, dog_jpeg(), "image/jpeg")
    assert status == 500 and "secret" not in response and "logs" in json.loads(response)["message"]
    assert user_module.predict_fn is not broken


def test_dispatch_npy_shape_error_names_accepted_shapes(handler_service) -> None:
    status, _, _, response = dispatch(handler_service, npy(np.zeros((2, 2), np.uint8)), "application/x-npy")
    assert status == 400 and "HxWx3" in json.loads(response)["message"]


def test_model_builder_serves_the_archive_as_is(offline_session) -> None:
    builder = build_model_builder("s3://example-bucket/dogbreed/model.tar.gz", ROLE, offline_session,
                                  env={"DOGBREED_TOP_K": "3"})
    assert builder.s3_model_data_url == "s3://example-bucket/dogbreed/model.tar.gz"
    assert builder.image_uri.endswith("/pytorch-inference:2.6.0-cpu-py312")
    assert builder.env_vars["SAGEMAKER_PROGRAM"] == "inference.py" and builder.env_vars["DOGBREED_TOP_K"] == "3"
    assert builder.source_code is None and builder.inference_spec is None and builder.model is None  # passthrough


def test_model_builder_refuses_a_second_copy_of_the_code(offline_session) -> None:
    with pytest.raises(TypeError) as refused:
        build_model_builder("s3://b/model.tar.gz", ROLE, offline_session, inference_spec=object())
    assert str(refused.value) == ("the archive already contains code/inference.py: do not pass source_code, "
                                  "inference_spec or model")


def test_invoke_sends_image_bytes_and_parses_the_json_answer() -> None:
    sent = {}

    class Endpoint:
        def invoke(self, **kwargs):
            sent.update(kwargs)
            return type("Answer", (), {"body": io.BytesIO(b'{"predictions": [{"index": 1}]}')})()

    assert invoke(Endpoint(), b"\xff\xd8jpeg") == {"predictions": [{"index": 1}]}
    assert sent == {"body": b"\xff\xd8jpeg", "content_type": "image/jpeg", "accept": "application/json"}
