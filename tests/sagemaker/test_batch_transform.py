"""Batch Transform: the request the SDK sends (against moto) and the JSON Lines assembled from the job's ``.out``
objects, in the record shape of ``predict --jsonl``: {"image", "predictions"} or {"image", "error"}."""

from __future__ import annotations

import json

import boto3
import pytest

from dogbreed.core.errors import ConfigError
from dogbreed.sagemaker.batch import (
    MISSING_OUTPUT,
    batch_records,
    build_transformer,
    read_batch_output,
    transform_arguments,
    write_jsonl,
)
from dogbreed.sagemaker.deploy import build_model_builder
from tests.helpers.moto_aws import FAKE_ROLE, moto_endpoint, recorded_calls, v3_session

TOP = [{"breed": "Afghan hound", "index": 1, "probability": 0.9},
       {"breed": "Affenpinscher", "index": 0, "probability": 0.1}]


def test_records_pass_the_handlers_answer_through_and_name_each_failure():
    inputs = ["in/a.jpg", "in/sub/b.png", "in/c.jpg", "in/d.jpg", "in/e.jpg"]
    outputs = {
        "out/a.jpg.out": json.dumps(TOP).encode(),
        "out/sub/b.png.out": json.dumps({"predictions": TOP, "confident": False}).encode(),  # a richer handler
        "out/c.jpg.out": json.dumps({"code": 400, "message": "JPEG image is truncated"}).encode(),
        "out/d.jpg.out": b"\xff\xd8 not json",
    }
    records = batch_records(inputs, outputs, input_prefix="in/", output_prefix="out/")
    assert records == [
        {"image": "in/a.jpg", "predictions": TOP},
        {"image": "in/c.jpg", "error": "JPEG image is truncated"},
        {"image": "in/d.jpg", "error": "the handler's answer is not JSON: b'\\xff\\xd8 not json'"},
        {"image": "in/e.jpg", "error": MISSING_OUTPUT},
        {"image": "in/sub/b.png", "predictions": TOP, "confident": False},
    ]


def test_outputs_match_whether_or_not_the_job_repeats_the_input_folder():
    inputs = ["data/batch/x/1.jpg", "data/batch/y/1.jpg"]
    repeated = {"res/batch/x/1.jpg.out": json.dumps(TOP).encode(), "res/batch/y/1.jpg.out": b"[]"}
    plain = {"res/x/1.jpg.out": json.dumps(TOP).encode(), "res/y/1.jpg.out": b"[]"}
    for outputs in (repeated, plain):
        records = batch_records(inputs, outputs, input_prefix="data/batch/", output_prefix="res/")
        assert records == [{"image": "data/batch/x/1.jpg", "predictions": TOP},
                           {"image": "data/batch/y/1.jpg", "predictions": []}]


def test_an_output_is_matched_to_the_input_with_the_same_path_before_a_deeper_one():
    # "a.jpg.out" ends with "a.jpg" and "x/a.jpg.out" ends with "/a.jpg" too: the exact path wins for in/a.jpg,
    # else both inputs would get the answer of in/x/a.jpg.
    inputs = ["in/a.jpg", "in/x/a.jpg"]
    outputs = {"out/a.jpg.out": b'[{"breed": "top-level"}]', "out/x/a.jpg.out": b'[{"breed": "nested"}]'}
    records = batch_records(inputs, outputs, input_prefix="in/", output_prefix="out/")
    assert records == [{"image": "in/a.jpg", "predictions": [{"breed": "top-level"}]},
                       {"image": "in/x/a.jpg", "predictions": [{"breed": "nested"}]}]


def test_jsonl_has_one_object_per_line(tmp_path):
    path = write_jsonl([{"image": "a.jpg", "predictions": TOP}, {"image": "b.jpg", "error": "x"}], tmp_path / "o.jsonl")
    assert [json.loads(line) for line in path.read_text().splitlines()] == [
        {"image": "a.jpg", "predictions": TOP}, {"image": "b.jpg", "error": "x"}]


def test_the_transform_reads_every_image_under_the_prefix_whole():
    assert transform_arguments("s3://dogbreed-bt/batch/in/") == {
        "data": "s3://dogbreed-bt/batch/in/", "data_type": "S3Prefix", "content_type": "application/x-image",
        "split_type": "None"}  # one object = one request: an image is never split into records


@pytest.mark.parametrize("uri, parts", [("s3://bt/batch/in/", ("bt", "batch/in/")), ("s3://bt", ("bt", "")),
                                        ("s3://bt/model.tar.gz", ("bt", "model.tar.gz"))])
def test_an_s3_uri_splits_into_its_bucket_and_its_key_as_written(uri, parts):
    from dogbreed.sagemaker.batch import split_s3_uri

    assert split_s3_uri(uri) == parts


@pytest.mark.parametrize("uri", ["s3://", "s3:///batch/in", "S3://bt/in", "bt/in"])
def test_an_s3_uri_without_a_bucket_is_refused(uri):
    from dogbreed.sagemaker.batch import split_s3_uri

    with pytest.raises(ConfigError) as refused:
        split_s3_uri(uri)
    assert str(refused.value) == f"{uri!r} is not an S3 URI: expected s3://bucket/prefix"


def test_s3_uris_are_checked():
    with pytest.raises(ConfigError) as refused:
        transform_arguments("outputs/batch")
    assert str(refused.value) == "'outputs/batch' is not an S3 URI: expected s3://bucket/prefix"


@pytest.mark.slow
def test_transform_job_request_and_output_assembly_against_moto(tmp_path):
    recording = tmp_path / "recording.jsonl"
    with moto_endpoint(recording):
        session = v3_session("dogbreed-bt")
        s3 = boto3.client("s3")
        for key in ("batch/in/001.Affenpinscher/0.jpg", "batch/in/002.Afghan_hound/1.png"):
            s3.put_object(Bucket="dogbreed-bt", Key=key, Body=b"\xff\xd8image")
        model = build_model_builder("s3://dogbreed-bt/models/model.tar.gz", FAKE_ROLE, session,
                                    instance_type="ml.c5.xlarge").build(model_name="dogbreed-batch-model")
        transformer = build_transformer(model.model_name, output_path="s3://dogbreed-bt/batch/out",
                                        sagemaker_session=session, instance_type="ml.c5.xlarge")
        transformer.transform(**transform_arguments("s3://dogbreed-bt/batch/in/"), job_name="dogbreed-batch-1",
                              wait=False, logs=False)
        # moto records the job but runs nothing: put the handler's answers where the job writes them.
        s3.put_object(Bucket="dogbreed-bt", Key="batch/out/001.Affenpinscher/0.jpg.out", Body=json.dumps(TOP).encode())
        records = read_batch_output(s3, "s3://dogbreed-bt/batch/in/", "s3://dogbreed-bt/batch/out")
    (job,) = recorded_calls(recording, "CreateTransformJob")
    assert job["TransformJobName"] == "dogbreed-batch-1" and job["BatchStrategy"] == "SingleRecord"
    assert job["MaxPayloadInMB"] == 6
    assert job["TransformInput"] == {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix",
                                                                     "S3Uri": "s3://dogbreed-bt/batch/in/"}},
                                     "ContentType": "application/x-image", "SplitType": "None"}
    assert job["TransformOutput"] == {"S3OutputPath": "s3://dogbreed-bt/batch/out", "Accept": "application/json",
                                      "AssembleWith": "None"}
    assert job["TransformResources"] == {"InstanceType": "ml.c5.xlarge", "InstanceCount": 1}
    assert job["Environment"]["SAGEMAKER_MODEL_SERVER_WORKERS"] == "1"
    (created,) = recorded_calls(recording, "CreateModel")
    assert created["ModelName"] == job["ModelName"] == "dogbreed-batch-model"
    assert created["PrimaryContainer"]["ModelDataUrl"] == "s3://dogbreed-bt/models/model.tar.gz"  # not repacked
    assert created["PrimaryContainer"]["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    assert records == [{"image": "batch/in/001.Affenpinscher/0.jpg", "predictions": TOP},
                       {"image": "batch/in/002.Afghan_hound/1.png", "error": MISSING_OUTPUT}]


def test_the_transformer_sends_one_image_per_request_within_6_mb(offline_session):
    from dogbreed.sagemaker.batch import build_transformer

    transformer = build_transformer("dogbreed-model", output_path="s3://b/out/", sagemaker_session=offline_session)
    assert (transformer.max_payload, transformer.strategy, transformer.assemble_with, transformer.accept,
            transformer.instance_type, transformer.instance_count, transformer.output_path) == (
        6, "SingleRecord", "None", "application/json", "ml.m5.large", 1, "s3://b/out/")
