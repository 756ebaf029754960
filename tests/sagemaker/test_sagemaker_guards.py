"""Real-account guards and pass-throughs of the SageMaker builders: cluster settings, image_uri, the serving
worker count, the Debugger job's own source bundle, input channels and a cleanup that never raises."""

from __future__ import annotations

import pytest

from dogbreed.core.errors import ConfigError
from dogbreed.sagemaker import jobs
from dogbreed.sagemaker.deploy import build_pytorch_model, delete_deployment, model_server_workers
from dogbreed.sagemaker.environment import distributed_settings

ROLE = "arn:aws:iam::111111111111:role/SageMakerRole"
OWN_TRAINING_IMAGE = "111111111111.dkr.ecr.us-east-1.amazonaws.com/dogbreed-train:torch2.10"
OWN_SERVING_IMAGE = "111111111111.dkr.ecr.us-east-1.amazonaws.com/dogbreed-serve:torch2.10"


def test_several_instances_without_torchrun_are_refused_when_building_the_estimator(offline_session):
    with pytest.raises(ConfigError) as error:
        jobs.build_estimator(role=ROLE, sagemaker_session=offline_session, instance_count=2)
    assert str(error.value).startswith("instance_count=2 without distributed=True: each instance would train alone")
    assert "Pass distributed=True" in str(error.value)
    estimator = jobs.build_estimator(role=ROLE, sagemaker_session=offline_session, instance_count=2,
                                     distributed=True, instance_type="ml.g5.12xlarge")
    assert estimator.instance_count == 2 and estimator.distribution == {"torch_distributed": {"enabled": True}}


def test_several_hosts_without_torchrun_are_refused_by_the_script():
    env = {"SM_MODEL_DIR": "/opt/ml/model", "SM_NUM_GPUS": "4", "SM_HOSTS": '["algo-1","algo-2"]'}
    with pytest.raises(ConfigError, match=r"this job has 2 instances \(SM_HOSTS=algo-1,algo-2\) but the script was "
                                          r"not started by torchrun"):
        distributed_settings(env)
    # Under torchrun the same hosts are fine: Lightning reads the rendezvous from torchrun's variables.
    torchrun = {**env, "TORCHELASTIC_RUN_ID": "x", "WORLD_SIZE": "8", "LOCAL_WORLD_SIZE": "4"}
    assert distributed_settings(torchrun) == {"devices": 4, "num_nodes": 2, "strategy": "ddp"}


def test_the_script_refuses_several_hosts_with_one_line_and_exit_2(tmp_path, tiny_tree, monkeypatch, capsys):
    from entry_points.train import main

    monkeypatch.setenv("SM_MODEL_DIR", str(tmp_path / "model"))
    monkeypatch.setenv("SM_HOSTS", '["algo-1","algo-2"]')
    monkeypatch.setenv("SM_CURRENT_HOST", "algo-2")
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    status = main(["--data-dir", str(tiny_tree), "--output-dir", str(tmp_path / "reports"), "--weights", "none",
                   "--finetune", "full"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and err[-1].startswith("error: this job has 2 instances")
    assert "build the estimator with distributed=True" in err[-1]
    assert not (tmp_path / "model" / "model.pth").exists()


def test_image_uri_passes_through_the_estimator_and_the_model(offline_session):
    estimator = jobs.build_estimator(role=ROLE, sagemaker_session=offline_session, image_uri=OWN_TRAINING_IMAGE)
    assert estimator.training_image_uri() == OWN_TRAINING_IMAGE
    default = jobs.build_estimator(role=ROLE, sagemaker_session=offline_session)
    assert default.training_image_uri().endswith("/pytorch-training:2.8.0-gpu-py312")
    model = build_pytorch_model("s3://example-bucket/m/model.tar.gz", ROLE, offline_session,
                                image_uri=OWN_SERVING_IMAGE)
    assert model.prepare_container_def(instance_type="ml.m5.large")["Image"] == OWN_SERVING_IMAGE


@pytest.mark.parametrize("instance_type,workers", [
    ("ml.m5.large", 1), ("ml.c5.large", 1), ("ml.t2.medium", 1), ("ml.c5.xlarge", 1), ("ml.m5.xlarge", 1),
    ("ml.c5.2xlarge", None), ("ml.m5.4xlarge", None),
    ("ml.g4dn.xlarge", None), ("ml.g5.2xlarge", None), ("ml.p3.2xlarge", None), ("ml.inf2.xlarge", None),
])
def test_serving_worker_count_is_one_on_small_cpu_instances(instance_type, workers):
    assert model_server_workers(instance_type) == workers


def test_model_environment_carries_the_worker_count_and_explicit_env_wins(offline_session):
    small = build_pytorch_model("s3://b/model.tar.gz", ROLE, offline_session, instance_type="ml.m5.large")
    env = small.prepare_container_def(instance_type="ml.m5.large")["Environment"]
    assert env["SAGEMAKER_MODEL_SERVER_WORKERS"] == "1" and env["SAGEMAKER_PROGRAM"] == "inference.py"
    gpu = build_pytorch_model("s3://b/model.tar.gz", ROLE, offline_session, instance_type="ml.g4dn.xlarge")
    assert "SAGEMAKER_MODEL_SERVER_WORKERS" not in gpu.prepare_container_def(instance_type="ml.g4dn.xlarge")[
        "Environment"]
    mine = build_pytorch_model("s3://b/model.tar.gz", ROLE, offline_session, instance_type="ml.m5.large",
                               env={"SAGEMAKER_MODEL_SERVER_WORKERS": "2"})
    assert mine.env["SAGEMAKER_MODEL_SERVER_WORKERS"] == "2"


def test_debug_job_gets_its_own_bundle_and_plain_jobs_do_not(offline_session):
    plain = jobs.build_estimator(role=ROLE, sagemaker_session=offline_session)
    assert plain.source_dir == str(jobs.SOURCE_DIR) and not plain.environment
    debug = jobs.build_estimator(role=ROLE, sagemaker_session=offline_session, entry_point="profiled_train.py",
                                 debugging=True, environment={"EXTRA": "1"})
    assert debug.source_dir != str(jobs.SOURCE_DIR)
    assert debug.environment == {"PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": "python", "EXTRA": "1"}
    from pathlib import Path

    staged = Path(debug.source_dir)
    assert {"train.py", "profiled_train.py", "hpo.py", "inference.py"} <= {p.name for p in staged.glob("*.py")}
    lines = [line for line in (staged / "requirements.txt").read_text().splitlines()
             if line and not line.startswith("#")]
    assert lines[:5] == ["pytorch-lightning>=2.6,<3", "torchmetrics>=1.4", "matplotlib>=3.7", "tqdm>=4.60",
                         "psutil>=5.9"]
    assert "pyinstrument==3.4.2" in lines and "numpy<2.3" in lines
    assert not any(line.startswith(("smdebug", "protobuf")) for line in lines)


def test_training_inputs_add_a_weights_channel_and_refuse_local_paths():
    assert jobs.training_inputs("s3://b/data") == {"training": "s3://b/data"}
    assert jobs.training_inputs("s3://b/data", "s3://b/weights/resnet50-11ad3fa6.pth") == {
        "training": "s3://b/data", "weights": "s3://b/weights/resnet50-11ad3fa6.pth"}
    with pytest.raises(ConfigError, match="expected s3://bucket/prefix holding train/ valid/ test/"):
        jobs.training_inputs("data/dogImages")


class _Client:
    def __init__(self, errors):
        self.errors, self.calls = errors, []

    def _call(self, name, **kwargs):
        self.calls.append((name, kwargs))
        if name in self.errors:
            raise RuntimeError(self.errors[name])

    def delete_endpoint(self, **kw):
        self._call("delete_endpoint", **kw)

    def delete_endpoint_config(self, **kw):
        self._call("delete_endpoint_config", **kw)

    def delete_model(self, **kw):
        self._call("delete_model", **kw)


def test_cleanup_deletes_each_resource_and_reports_instead_of_raising():
    client = _Client({"delete_endpoint": "ValidationException: Could not find endpoint \"dogbreed-x\".",
                      "delete_model": "AccessDenied: not allowed"})
    session = type("S", (), {"sagemaker_client": client})()
    report = delete_deployment(session, "dogbreed-x", "model-1")
    assert report == ["endpoint dogbreed-x: not found", "deleted endpoint config dogbreed-x",
                      "NOT deleted model model-1: AccessDenied: not allowed"]
    assert [name for name, _ in client.calls] == ["delete_endpoint", "delete_endpoint_config", "delete_model"]
    assert client.calls[1][1] == {"EndpointConfigName": "dogbreed-x"}
