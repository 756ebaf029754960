"""The Model Registry: the measurements a package carries (never a made-up one) and the requests sent to moto."""

from __future__ import annotations

import io
import json
import tarfile

import boto3
import pytest

from dogbreed.core.errors import ConfigError
from dogbreed.sagemaker.deploy import build_model_builder
from dogbreed.sagemaker.registry import model_quality_statistics, read_metrics, register_model, registration_metrics
from tests.helpers.moto_aws import FAKE_ROLE, moto_endpoint, recorded_calls, v3_session

FULL = {"test": {"acc": 0.8125, "loss": 0.61, "acc_ci95": [0.75, 0.86]},
        "calibration": {"test": {"ece_before": 0.09, "ece_after": 0.031}},
        "abstention": {"score": "energy", "auroc_test_vs_ood": {"energy": 0.9375, "max_probability": 0.9}}}


def test_registration_metrics_from_a_full_run():
    assert registration_metrics(FULL) == {
        "test_acc": "0.812500", "test_acc_interval": "[0.750000, 0.860000]", "test_ece": "0.031000",
        "abstention_score": "energy", "abstention_auroc": "0.937500"}


def test_what_a_run_did_not_measure_is_said_so():
    assert registration_metrics({"test": {"acc": 1}}) == {
        "test_acc": "1.000000", "test_acc_interval": "not measured", "test_ece": "not measured",
        "abstention_score": "not measured", "abstention_auroc": "not measured"}
    assert registration_metrics({"test": {"acc": True}})["test_acc"] == "not measured"  # a bool is no accuracy
    assert model_quality_statistics({"test": {"acc": 0.5}}) == {
        "version": 0.0, "multiclass_classification_metrics": {"accuracy": {"value": 0.5, "standard_deviation": "NaN"}}}


def test_model_quality_statistics_carry_every_measurement():
    stats = model_quality_statistics(FULL)["multiclass_classification_metrics"]
    assert {name: value["value"] for name, value in stats.items()} == {
        "accuracy": 0.8125, "expected_calibration_error": 0.031, "abstention_auroc": 0.9375}


def _output_tar(payload: dict | None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, body in ({"metrics.json": json.dumps(payload).encode()} if payload else {"other.txt": b"x"}).items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return buffer.getvalue()


@pytest.mark.slow
def test_register_sends_group_package_metrics_and_pending_approval(tmp_path):
    recording = tmp_path / "recording.jsonl"
    with moto_endpoint(recording):
        session = v3_session("dogbreed-reg")
        groups = boto3.client("sagemaker").list_model_package_groups()["ModelPackageGroupSummaryList"]
        existed = "dogbreed" in [g["ModelPackageGroupName"] for g in groups]  # the server lives for the session
        s3 = boto3.client("s3")
        s3.put_object(Bucket="dogbreed-reg", Key="jobs/j1/output/output.tar.gz", Body=_output_tar(FULL))
        s3.put_object(Bucket="dogbreed-reg", Key="jobs/j2/output/output.tar.gz", Body=_output_tar(None))
        metrics = read_metrics(s3, "s3://dogbreed-reg/jobs/j1/output/output.tar.gz")
        with pytest.raises(ConfigError) as refused:
            read_metrics(s3, "s3://dogbreed-reg/jobs/j2/output/output.tar.gz")
        assert str(refused.value) == ("s3://dogbreed-reg/jobs/j2/output/output.tar.gz holds no metrics.json: was it "
                                      "written by entry_points.train?")
        builder = build_model_builder("s3://dogbreed-reg/models/model.tar.gz", FAKE_ROLE, session)
        arn = register_model(builder, metrics=metrics, metrics_s3_uri="s3://dogbreed-reg/registry/q.json")
        again = register_model(build_model_builder("s3://dogbreed-reg/models/model.tar.gz", FAKE_ROLE, session),
                               metrics={"test": {"acc": 0.5}})
        quality = json.loads(s3.get_object(Bucket="dogbreed-reg", Key="registry/q.json")["Body"].read())
    # versions count up within the group (the moto server may hold earlier packages of the session)
    assert ":model-package/dogbreed/" in arn and int(again.rsplit("/", 1)[1]) == int(arn.rsplit("/", 1)[1]) + 1
    # made once, by the first registration (the second finds it); none when an earlier test had made it
    assert len(recorded_calls(recording, "CreateModelPackageGroup")) == (0 if existed else 1)
    first, second = recorded_calls(recording, "CreateModelPackage")
    assert first["ModelPackageGroupName"] == "dogbreed" and first["ModelApprovalStatus"] == "PendingManualApproval"
    assert first["CustomerMetadataProperties"] == registration_metrics(FULL)
    (container,) = first["InferenceSpecification"]["Containers"]
    assert container["Image"] == "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.6.0-cpu-py312"
    assert container["ModelDataUrl"] == "s3://dogbreed-reg/models/model.tar.gz"
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    assert first["InferenceSpecification"]["SupportedContentTypes"] == ["image/jpeg", "image/png",
                                                                       "application/x-image"]
    assert first["ModelMetrics"] == {"ModelQuality": {"Statistics": {
        "ContentType": "application/json", "S3Uri": "s3://dogbreed-reg/registry/q.json"}}}
    assert quality == model_quality_statistics(FULL)
    assert "ModelMetrics" not in second and second["CustomerMetadataProperties"]["test_ece"] == "not measured"
