"""What the v3 builders send, as the SDK sends it to a local moto server: CreateTrainingJob, the tuning job,
and a deployment's CreateModel/EndpointConfig/Endpoint, invocation and deletes."""

from __future__ import annotations

import json

import boto3
import pytest

from dogbreed.sagemaker import jobs, tuning
from dogbreed.sagemaker.deploy import build_model_builder, delete_deployment, invoke
from dogbreed.training.metric_lines import METRIC_DEFINITIONS
from tests.helpers.moto_aws import (
    FAKE_ROLE,
    moto_endpoint,
    recorded_calls,
    recorded_rest_calls,
    seed_endpoint_results,
    v3_session,
)

BUCKET = "dogbreed-requests"
IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch:2.13-cu133-amzn2023-sagemaker"
REGEXES = {d["Name"]: d["Regex"] for d in METRIC_DEFINITIONS}


@pytest.fixture(scope="module")
def sent(tmp_path_factory):
    work = tmp_path_factory.mktemp("requests")
    recording = work / "recording.jsonl"
    with moto_endpoint(recording) as url:
        seed_endpoint_results(url, ['{"confident": true, "predictions": [{"breed": "Afghan hound"}]}'])
        session = v3_session(BUCKET)
        inputs = jobs.training_inputs(f"s3://{BUCKET}/data", f"s3://{BUCKET}/weights/resnet50.pth")
        spot = jobs.build_trainer(
            role=FAKE_ROLE, sagemaker_session=session, output_s3_uri=f"s3://{BUCKET}/out", spot=True,
            checkpoint_s3_uri=f"s3://{BUCKET}/ckpt", tensorboard_s3_uri=f"s3://{BUCKET}/tb", max_run=3600,
            hyperparameters={"epochs": 3, "calibrate": False, "lr": 0.001}, tags={"run": "requests"},
            source_dir=work / "src-spot")
        spot.train(input_data_config=inputs, wait=False, logs=False)
        tuner = tuning.build_tuner(jobs.build_trainer(
            role=FAKE_ROLE, sagemaker_session=session, output_s3_uri=f"s3://{BUCKET}/out", entry_point="hpo.py",
            hyperparameters={"epochs": 2, "finetune": "full"}, source_dir=work / "src-hpo"), max_jobs=3,
            max_parallel_jobs=1)
        tuner.tune(inputs=inputs, wait=False)
        s3 = boto3.client("s3")
        s3.put_object(Bucket=BUCKET, Key="models/model.tar.gz", Body=b"archive")
        builder = build_model_builder(f"s3://{BUCKET}/models/model.tar.gz", FAKE_ROLE, session,
                                      env={"DOGBREED_TOP_K": "3"})
        try:
            builder.build(model_name="dogbreed-m")
            endpoint = builder.deploy(endpoint_name="dogbreed-ep", initial_instance_count=1, wait=False)
            answer = invoke(endpoint, b"\xff\xd8jpeg")
        finally:
            report = delete_deployment(session, "dogbreed-ep", "dogbreed-m")
        keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
                for o in page.get("Contents", [])]
        drivers = {k: s3.get_object(Bucket=BUCKET, Key=k)["Body"].read() for k in keys
                   if k.endswith("sm_drivers/sourcecode.json")}
    return {"recording": recording, "answer": answer, "report": report, "keys": keys, "drivers": drivers}


@pytest.mark.slow
def test_create_training_job_carries_image_channels_spot_checkpoints_metrics_and_tags(sent):
    (job,) = recorded_calls(sent["recording"], "CreateTrainingJob")
    algo = job["AlgorithmSpecification"]
    assert algo["TrainingImage"] == IMAGE and algo["ContainerEntrypoint"] == ["/bin/bash"]
    assert {m["Name"]: m["Regex"] for m in algo["MetricDefinitions"]} == REGEXES
    assert job["HyperParameters"] == {"epochs": "3", "calibrate": "false", "lr": "0.001"}
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in job["InputDataConfig"]}
    assert channels["training"] == f"s3://{BUCKET}/data"
    assert channels["weights"] == f"s3://{BUCKET}/weights/resnet50.pth"
    assert set(channels) == {"training", "weights", "code", "sm_drivers"}
    assert job["EnableManagedSpotTraining"] is True
    assert job["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}
    assert job["CheckpointConfig"] == {"S3Uri": f"s3://{BUCKET}/ckpt", "LocalPath": "/opt/ml/checkpoints"}
    assert job["TensorBoardOutputConfig"] == {"S3OutputPath": f"s3://{BUCKET}/tb",
                                              "LocalPath": "/opt/ml/output/tensorboard"}
    assert job["OutputDataConfig"]["S3OutputPath"] == f"s3://{BUCKET}/out"
    assert job["Tags"] == [{"Key": "project", "Value": "dogbreed"}, {"Key": "run", "Value": "requests"}]
    code = channels["code"].split(f"s3://{BUCKET}/", 1)[1]
    assert {code.rstrip("/") + "/" + name for name in ("train.py", "requirements.txt", "dogbreed/__init__.py")} \
        <= set(sent["keys"])
    entry_points = sorted(json.loads(body)["entry_script"] for body in sent["drivers"].values())
    assert "train.py" in entry_points


@pytest.mark.slow
def test_tuning_job_has_its_own_trainer_ranges_regexes_and_early_stopping(sent):
    (tuning_job,) = recorded_calls(sent["recording"], "CreateHyperParameterTuningJob")
    config = tuning_job["HyperParameterTuningJobConfig"]
    assert config["TrainingJobEarlyStoppingType"] == "Auto"
    assert config["ResourceLimits"] == {"MaxParallelTrainingJobs": 1, "MaxNumberOfTrainingJobs": 3}
    assert {r["Name"] for kind in config["ParameterRanges"].values() for r in kind} == {
        "lr", "batch-size", "epochs", "weight-decay", "label-smoothing"}
    definition = tuning_job["TrainingJobDefinition"]
    assert {m["Name"]: m["Regex"] for m in definition["AlgorithmSpecification"]["MetricDefinitions"]} == REGEXES
    static = definition["StaticHyperParameters"]
    assert static["finetune"] == "full" and "epochs" not in static  # a tuned name is not also static
    assert static["sagemaker_program"] == "hpo.py" and static["sagemaker_submit_directory"].endswith(
        "/sourcedir.tar.gz")


@pytest.mark.slow
def test_deployment_sends_the_archive_as_is_invokes_and_deletes_everything(sent):
    recording = sent["recording"]
    (model,) = recorded_calls(recording, "CreateModel")
    container = model["PrimaryContainer"]
    assert container["Image"] == "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.6.0-cpu-py312"
    assert container["ModelDataUrl"] == f"s3://{BUCKET}/models/model.tar.gz"  # no repack
    assert container["Environment"] == {"SAGEMAKER_PROGRAM": "inference.py",
                                        "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
                                        "SAGEMAKER_MODEL_SERVER_WORKERS": "1", "DOGBREED_TOP_K": "3"}
    (config,) = recorded_calls(recording, "CreateEndpointConfig")
    (variant,) = config["ProductionVariants"]
    assert (variant["ModelName"], variant["InstanceType"], variant["InitialInstanceCount"]) == (
        "dogbreed-m", "ml.m5.large", 1)
    (endpoint,) = recorded_calls(recording, "CreateEndpoint")
    assert endpoint["EndpointConfigName"] == config["EndpointConfigName"]
    (call,) = recorded_rest_calls(recording, "/invocations")
    headers = {k.lower(): v for k, v in call["headers"].items()}
    assert call["body"] == b"\xff\xd8jpeg" and headers["content-type"] == "image/jpeg"
    assert headers["accept"] == "application/json"
    assert sent["answer"] == {"confident": True, "predictions": [{"breed": "Afghan hound"}]}
    assert sent["report"] == ["deleted endpoint dogbreed-ep", f"deleted endpoint config {config['EndpointConfigName']}",
                              "deleted model dogbreed-m"]
    assert [c["EndpointName"] for c in recorded_calls(recording, "DeleteEndpoint")] == ["dogbreed-ep"]
    assert [c["ModelName"] for c in recorded_calls(recording, "DeleteModel")] == ["dogbreed-m"]
