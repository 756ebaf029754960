"""What each SDK v3 builder argument turns into, built offline (no request): the trainer's instance type,
hyperparameters, job name and extra ``ModelTrainer`` arguments; the endpoint model's instance type;
the tuner's own metric regexes, job name and objective; and the cleanup's session. Each check names the value
a developer could lose on the way (an argument that never reaches the SDK object costs money or a failed job)."""

from __future__ import annotations

from types import SimpleNamespace

from dogbreed.sagemaker import jobs
from dogbreed.sagemaker.deploy import build_model_builder, delete_deployment
from dogbreed.sagemaker.tuning import build_tuner

ROLE = "arn:aws:iam::111111111111:role/SageMakerRole"
IMAGE = "111111111111.dkr.ecr.us-east-1.amazonaws.com/dogbreed-train:torch2.10"


def _trainer(session, tmp_path, **kwargs):
    return jobs.build_trainer(role=ROLE, sagemaker_session=session, output_s3_uri="s3://example-bucket/out",
                              source_dir=tmp_path / "src", **kwargs)


def test_the_instance_type_hyperparameters_job_name_and_environment_reach_the_trainer(offline_session, tmp_path):
    trainer = _trainer(offline_session, tmp_path, image_uri=IMAGE, instance_type="ml.g5.12xlarge",
                       hyperparameters={"epochs": 3, "finetune": "head", "lr": 0.001}, base_job_name="dogbreed-spot",
                       environment={"DOGBREED_SEED": "7"})
    assert (trainer.compute.instance_type, trainer.compute.instance_count) == ("ml.g5.12xlarge", 1)
    assert trainer.hyperparameters == {"epochs": 3, "finetune": "head", "lr": 0.001}
    assert trainer.base_job_name == "dogbreed-spot"
    assert trainer.environment == {"DOGBREED_SEED": "7"}
    default = _trainer(offline_session, tmp_path, image_uri=IMAGE)
    assert (default.compute.instance_type, default.compute.instance_count) == ("ml.g5.xlarge", 1)
    assert default.hyperparameters == {} and default.base_job_name == "dogbreed"


def test_the_default_image_follows_the_instance_type(offline_session, tmp_path):
    gpu = _trainer(offline_session, tmp_path, instance_type="ml.g5.xlarge")
    cpu = _trainer(offline_session, tmp_path, instance_type="ml.m5.xlarge")
    assert gpu.training_image == "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch:2.13-cu133-amzn2023-sagemaker"
    # the image is looked up for the instance the job runs on: a CPU instance gets the CPU build
    assert cpu.training_image == "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch:2.13-cpu-amzn2023-sagemaker"


def test_a_checkpoint_uri_without_spot_still_syncs_checkpoints(offline_session, tmp_path):
    trainer = _trainer(offline_session, tmp_path, image_uri=IMAGE, checkpoint_s3_uri="s3://example-bucket/ckpt")
    assert (trainer.checkpoint_config.s3_uri, trainer.checkpoint_config.local_path) == (
        "s3://example-bucket/ckpt", "/opt/ml/checkpoints")
    assert not trainer.compute.enable_managed_spot_training
    assert trainer.stopping_condition.max_wait_time_in_seconds is None


def test_the_dataset_goes_under_dogbreed_data_in_the_sessions_bucket():
    calls = []

    class Session:
        def upload_data(self, path, key_prefix):
            calls.append((path, key_prefix))
            return f"s3://example-bucket/{key_prefix}"

    assert jobs.upload_dataset(Session(), "data/dogImages") == "s3://example-bucket/dogbreed/data"
    assert calls == [("data/dogImages", "dogbreed/data")]


def test_the_model_builder_carries_the_instance_type_and_the_role(offline_session):
    builder = build_model_builder("s3://b/model.tar.gz", ROLE, offline_session, instance_type="ml.c5.2xlarge")
    assert (builder.instance_type, builder.role_arn, builder.s3_model_data_url) == (
        "ml.c5.2xlarge", ROLE, "s3://b/model.tar.gz")
    assert builder.env_vars == {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code"}
    assert build_model_builder("s3://b/model.tar.gz", ROLE, offline_session).instance_type == "ml.m5.large"


def test_cleanup_looks_resources_up_with_the_sessions_boto_session(monkeypatch):
    from sagemaker.core import resources

    sessions = []

    class Resource:
        endpoint_config_name = "cfg"

        @classmethod
        def get(cls, session=None, **names):
            sessions.append(session)
            return cls()

        def delete(self):
            pass

    for kind in ("Endpoint", "EndpointConfig", "Model"):
        monkeypatch.setattr(resources, kind, Resource)
    boto = object()
    assert delete_deployment(SimpleNamespace(boto_session=boto), "ep", "m") == [
        "deleted endpoint ep", "deleted endpoint config cfg", "deleted model m"]
    assert sessions and all(s is boto for s in sessions)


def test_the_tuner_has_its_own_metric_regexes_job_name_and_objective():
    from dogbreed.training.metric_lines import metric_definitions

    tuner = build_tuner(SimpleNamespace(hyperparameters={}), base_tuning_job_name="dogbreed-hpo-eu")
    assert tuner.metric_definitions == metric_definitions()
    assert {"Name": "val_acc", "Regex": r"^epoch=\d+ .*\bval_acc=([0-9]+\.?[0-9]*)"} in tuner.metric_definitions
    assert tuner.base_tuning_job_name == "dogbreed-hpo-eu"
    assert tuner.objective_metric_name == "val_acc"
    default = build_tuner(SimpleNamespace(hyperparameters=None))
    assert (default.max_jobs, default.max_parallel_jobs, default.base_tuning_job_name) == (8, 2, "dogbreed-hpo")


def test_every_tuned_range_keeps_its_scale_and_bounds():
    from dogbreed.sagemaker.tuning import hyperparameter_ranges

    rendered = {name: r.as_tuning_range(name) for name, r in hyperparameter_ranges().items()}
    assert rendered == {
        "lr": {"Name": "lr", "MinValue": "0.0001", "MaxValue": "0.1", "ScalingType": "Logarithmic"},
        "batch-size": {"Name": "batch-size", "Values": ["16", "32", "64"]},
        "epochs": {"Name": "epochs", "MinValue": "5", "MaxValue": "10", "ScalingType": "Auto"},
        "weight-decay": {"Name": "weight-decay", "MinValue": "1e-06", "MaxValue": "0.01",
                         "ScalingType": "Logarithmic"},
        "label-smoothing": {"Name": "label-smoothing", "MinValue": "0.0", "MaxValue": "0.2", "ScalingType": "Linear"},
    }
