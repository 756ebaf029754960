"""Real-account guards and pass-throughs of the SageMaker SDK v3 builders, built offline: cluster settings,
image_uri, spot/checkpoints/metrics/TensorBoard/tags, the staged source dir, the serving worker count, input
channels and a cleanup that never raises."""

from __future__ import annotations

from pathlib import Path

import pytest

from dogbreed.core.errors import ConfigError
from dogbreed.sagemaker import jobs
from dogbreed.sagemaker.deploy import build_model_builder, delete_deployment, model_server_workers
from dogbreed.sagemaker.environment import distributed_settings

ROLE = "arn:aws:iam::111111111111:role/SageMakerRole"
OWN_TRAINING_IMAGE = "111111111111.dkr.ecr.us-east-1.amazonaws.com/dogbreed-train:torch2.10"
OWN_SERVING_IMAGE = "111111111111.dkr.ecr.us-east-1.amazonaws.com/dogbreed-serve:torch2.10"


def _trainer(session, **kwargs):
    return jobs.build_trainer(role=ROLE, sagemaker_session=session, output_s3_uri="s3://example-bucket/out",
                              **kwargs)


def test_several_instances_without_torchrun_are_refused_when_building_the_trainer(offline_session, tmp_path):
    with pytest.raises(ConfigError) as error:
        _trainer(offline_session, instance_count=2)
    assert str(error.value) == (
        "instance_count=2 without distributed=True: each instance would train alone as node 0 and wait for the others "
        "until the job times out. Pass distributed=True (torchrun on every instance, DDP across all GPUs) or "
        "instance_count=1")
    trainer = _trainer(offline_session, instance_count=2, distributed=True, instance_type="ml.g5.12xlarge",
                       source_dir=tmp_path / "src")
    assert trainer.compute.instance_count == 2 and type(trainer.distributed).__name__ == "Torchrun"
    assert _trainer(offline_session, source_dir=tmp_path / "one").distributed is None


def test_several_hosts_without_torchrun_are_refused_by_the_script():
    env = {"SM_MODEL_DIR": "/opt/ml/model", "SM_NUM_GPUS": "4", "SM_HOSTS": '["algo-1","algo-2"]'}
    with pytest.raises(ConfigError) as refused:
        distributed_settings(env)
    assert str(refused.value) == (
        "this job has 2 instances (SM_HOSTS=algo-1,algo-2) but the script was not started by torchrun, so every "
        "instance would train alone as node 0 and hang waiting for the others: build the trainer with "
        "distributed=True (torchrun), or use instance_count=1")
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
    assert status == 2 and err[-1] == (
        "error: this job has 2 instances (SM_HOSTS=algo-1,algo-2) but the script was not started by torchrun, so "
        "every instance would train alone as node 0 and hang waiting for the others: build the trainer with "
        "distributed=True (torchrun), or use instance_count=1")
    assert not (tmp_path / "model" / "model.pth").exists()


def test_image_uri_passes_through_the_trainer_and_the_model(offline_session, tmp_path):
    trainer = _trainer(offline_session, image_uri=OWN_TRAINING_IMAGE, source_dir=tmp_path / "a")
    assert trainer.training_image == OWN_TRAINING_IMAGE
    default = _trainer(offline_session, source_dir=tmp_path / "b")
    assert default.training_image == (
        "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch:2.13-cu133-amzn2023-sagemaker")
    builder = build_model_builder("s3://example-bucket/m/model.tar.gz", ROLE, offline_session,
                                  image_uri=OWN_SERVING_IMAGE)
    assert builder.image_uri == OWN_SERVING_IMAGE
    default_builder = build_model_builder("s3://example-bucket/m/model.tar.gz", ROLE, offline_session)
    assert default_builder.image_uri == "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.6.0-cpu-py312"


def test_the_trainer_carries_spot_checkpoints_metrics_tensorboard_and_tags(offline_session, tmp_path):
    trainer = _trainer(offline_session, spot=True, checkpoint_s3_uri="s3://example-bucket/ckpt", max_run=3600,
                       tensorboard_s3_uri="s3://example-bucket/tb", entry_point="profiled_train.py",
                       hyperparameters={"epochs": 2}, tags={"owner": "me"}, source_dir=tmp_path / "src")
    assert trainer.compute.enable_managed_spot_training is True
    assert (trainer.stopping_condition.max_runtime_in_seconds, trainer.stopping_condition.max_wait_time_in_seconds) \
        == (3600, 7200)
    assert (trainer.checkpoint_config.s3_uri, trainer.checkpoint_config.local_path) == (
        "s3://example-bucket/ckpt", "/opt/ml/checkpoints")
    assert (trainer._tensorboard_output_config.s3_output_path, trainer._tensorboard_output_config.local_path) == (
        "s3://example-bucket/tb", "/opt/ml/output/tensorboard")
    assert [(d.name, d.regex) for d in trainer._metric_definitions][3] == (
        "val_acc", r"^epoch=\d+ .*\bval_acc=([0-9]+\.?[0-9]*)")
    assert [(t.key, t.value) for t in trainer.tags] == [("project", "dogbreed"), ("owner", "me")]
    assert (trainer.source_code.entry_script, trainer.source_code.requirements) == (
        "profiled_train.py", "requirements.txt")
    assert trainer.output_data_config.s3_output_path == "s3://example-bucket/out"
    on_demand = _trainer(offline_session, source_dir=tmp_path / "od")
    assert not on_demand.compute.enable_managed_spot_training and on_demand.checkpoint_config is None
    assert on_demand.stopping_condition.max_wait_time_in_seconds is None
    assert on_demand.stopping_condition.max_runtime_in_seconds == 4 * 3600  # a forgotten job stops after 4 h
    spot_default = _trainer(offline_session, spot=True, checkpoint_s3_uri="s3://example-bucket/ckpt",
                            source_dir=tmp_path / "spot")
    assert (spot_default.stopping_condition.max_runtime_in_seconds,
            spot_default.stopping_condition.max_wait_time_in_seconds) == (14_400, 28_800)


@pytest.mark.parametrize("kwargs,message", [
    ({"spot": True}, "spot training needs checkpoint_s3_uri: without it an interrupted job restarts from zero"),
    ({"checkpoint_s3_uri": "ckpt/"}, "checkpoint_s3_uri 'ckpt/': expected an s3://bucket/prefix URI"),
    ({"entry_point": "trian.py"}, "entry_point 'trian.py' is not a script in entry_points/ (debug_report.py, "
                                  "export.py, hpo.py, import_model.py, inference.py, package.py, predict.py, "
                                  "prepare.py, profile_report.py, profiled_train.py, serve.py, train.py)"),
])
def test_trainer_mistakes_are_refused_before_any_request(offline_session, kwargs, message):
    with pytest.raises(ConfigError) as refused:
        _trainer(offline_session, **kwargs)
    assert str(refused.value) == message


def test_the_staged_source_dir_holds_the_scripts_the_requirements_and_the_package(tmp_path):
    nested = jobs.stage_source_dir(tmp_path / "jobs" / "run-1" / "src")  # parents made as needed
    assert (nested / "requirements.txt").is_file()
    staged = jobs.stage_source_dir(tmp_path / "src")
    assert {"train.py", "profiled_train.py", "hpo.py", "inference.py"} <= {p.name for p in staged.glob("*.py")}
    assert (staged / "requirements.txt").read_text() == (jobs.SOURCE_DIR / "requirements.txt").read_text()
    assert (staged / "dogbreed" / "sagemaker" / "jobs.py").read_text() == Path(jobs.__file__).read_text()
    assert not list(staged.rglob("__pycache__"))
    (staged / "dogbreed" / "stale.py").write_text("")
    assert jobs._IGNORED(str(jobs.PACKAGE_DIR), [".env", ".mypy_cache", "x.pyc", "__pycache__", "run.py", "a.json"]) \
        == {".env", ".mypy_cache", "x.pyc", "__pycache__"}  # hidden files and bytecode stay home
    assert not (jobs.stage_source_dir(staged) / "dogbreed" / "stale.py").exists()  # restaged, not merged


@pytest.mark.parametrize("instance_type,workers", [
    ("ml.m5.large", 1), ("ml.c5.large", 1), ("ml.t2.medium", 1), ("ml.c5.xlarge", 1), ("ml.m5.xlarge", 1),
    ("ml.c5.2xlarge", None), ("ml.m5.4xlarge", None),
    ("ml.g4dn.xlarge", None), ("ml.g5.2xlarge", None), ("ml.p3.2xlarge", None), ("ml.inf2.xlarge", None),
])
def test_serving_worker_count_is_one_on_small_cpu_instances(instance_type, workers):
    assert model_server_workers(instance_type) == workers


def test_model_environment_carries_the_worker_count_and_explicit_env_wins(offline_session):
    small = build_model_builder("s3://b/model.tar.gz", ROLE, offline_session, instance_type="ml.m5.large")
    assert small.env_vars == {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
                              "SAGEMAKER_MODEL_SERVER_WORKERS": "1"}
    gpu = build_model_builder("s3://b/model.tar.gz", ROLE, offline_session, instance_type="ml.g4dn.xlarge")
    assert "SAGEMAKER_MODEL_SERVER_WORKERS" not in gpu.env_vars
    assert gpu.image_uri.endswith("/pytorch-inference:2.6.0-gpu-py312")
    mine = build_model_builder("s3://b/model.tar.gz", ROLE, offline_session, instance_type="ml.m5.large",
                               env={"SAGEMAKER_MODEL_SERVER_WORKERS": "2"})
    assert mine.env_vars["SAGEMAKER_MODEL_SERVER_WORKERS"] == "2"


def test_model_builder_refuses_a_second_copy_of_the_code_and_local_archives(offline_session):
    with pytest.raises(TypeError) as refused:
        build_model_builder("s3://b/model.tar.gz", ROLE, offline_session, source_code=object())
    assert str(refused.value) == ("the archive already contains code/inference.py: do not pass source_code, "
                                  "inference_spec or model")
    with pytest.raises(ConfigError) as caught:
        build_model_builder("outputs/model.tar.gz", ROLE, offline_session)
    assert str(caught.value) == "model_data 'outputs/model.tar.gz': expected the s3:// URI of a model.tar.gz"


def test_training_inputs_add_a_weights_channel_and_refuse_local_paths():
    assert [(i.channel_name, i.data_source) for i in jobs.training_inputs("s3://b/data")] == [
        ("training", "s3://b/data")]
    assert [(i.channel_name, i.data_source) for i in jobs.training_inputs(
        "s3://b/data", "s3://b/weights/resnet50-11ad3fa6.pth")] == [
        ("training", "s3://b/data"), ("weights", "s3://b/weights/resnet50-11ad3fa6.pth")]
    with pytest.raises(ConfigError) as refused:
        jobs.training_inputs("data/dogImages")
    assert str(refused.value) == "data URI 'data/dogImages': expected s3://bucket/prefix holding train/ valid/ test/"
    with pytest.raises(ConfigError) as refused:
        jobs.training_inputs("s3://b/data", "resnet50.pth")
    assert str(refused.value) == "weights URI 'resnet50.pth': expected s3://bucket/key of a resnet50 state_dict"


def test_cleanup_deletes_each_resource_and_reports_instead_of_raising(monkeypatch):
    from sagemaker.core import resources

    calls = []

    def fake(kind, errors):
        class Resource:
            def __init__(self, name):
                self.name = name

            @classmethod
            def get(cls, session=None, **names):
                name = next(iter(names.values()))
                calls.append((kind, "get", name))
                if (kind, "get") in errors:
                    raise RuntimeError(errors[(kind, "get")])
                resource = cls(name)
                resource.endpoint_config_name = "dogbreed-x-config"
                return resource

            def delete(self):
                calls.append((kind, "delete", self.name))
                if (kind, "delete") in errors:
                    raise RuntimeError(errors[(kind, "delete")])
        return Resource

    errors = {("Model", "delete"): "AccessDenied: not allowed"}
    for kind in ("Endpoint", "EndpointConfig", "Model"):
        monkeypatch.setattr(resources, kind, fake(kind, errors))
    report = delete_deployment(None, "dogbreed-x", "model-1")
    assert report == ["deleted endpoint dogbreed-x", "deleted endpoint config dogbreed-x-config",
                      "NOT deleted model model-1: AccessDenied: not allowed"]
    assert [c for c in calls if c[1] == "delete"] == [("Endpoint", "delete", "dogbreed-x"),
                                                      ("EndpointConfig", "delete", "dogbreed-x-config"),
                                                      ("Model", "delete", "model-1")]
    calls.clear()
    gone = {("Endpoint", "get"): 'ValidationException: Could not find endpoint "dogbreed-x".'}
    monkeypatch.setattr(resources, "Endpoint", fake("Endpoint", gone))
    monkeypatch.setattr(resources, "EndpointConfig", fake("EndpointConfig", {}))
    assert delete_deployment(None, "dogbreed-x") == ["endpoint dogbreed-x: not found",
                                                     "deleted endpoint config dogbreed-x"]
    # SageMaker's other wording of "gone" ("... does not exist"), and a config name given: no lookup for it
    calls.clear()
    missing = {("Model", "get"): "ValidationException: Model model-1 does not exist.",
               ("EndpointConfig", "get"): "ValidationException: Endpoint configuration cfg-2 does not exist"}
    for kind in ("Endpoint", "EndpointConfig", "Model"):
        monkeypatch.setattr(resources, kind, fake(kind, missing))
    assert delete_deployment(None, "dogbreed-x", "model-1", endpoint_config_name="cfg-2") == [
        "deleted endpoint dogbreed-x", "endpoint config cfg-2: not found", "model model-1: not found"]
    assert calls == [("Endpoint", "get", "dogbreed-x"), ("Endpoint", "delete", "dogbreed-x"),
                     ("EndpointConfig", "get", "cfg-2"), ("Model", "get", "model-1")]


def test_without_a_session_or_an_image_the_trainer_asks_for_either(tmp_path):
    from types import SimpleNamespace

    for session in (None, SimpleNamespace(boto_region_name="")):  # no session; a session without a region
        with pytest.raises(ConfigError) as refused:
            _trainer(session, source_dir=tmp_path / "src")
        assert str(refused.value) == ("no AWS region: pass sagemaker_session (its region picks the image) or "
                                      "image_uri")
    assert not (tmp_path / "src").exists()  # refused before anything is staged


def test_a_cluster_of_no_instances_is_refused():
    with pytest.raises(ConfigError) as refused:
        jobs.check_cluster(0, distributed=False)
    assert str(refused.value) == "instance_count=0: a job needs at least one instance"
    jobs.check_cluster(1, distributed=False)
    jobs.check_cluster(2, distributed=True)


def test_the_latest_job_and_its_artifact_before_they_exist():
    from types import SimpleNamespace

    with pytest.raises(ConfigError) as refused:
        jobs.latest_job(SimpleNamespace())
    assert str(refused.value) == "this trainer has not started a training job yet: call trainer.train(...) first"
    job = SimpleNamespace(training_job_name="dogbreed-2026-12-07", model_artifacts=None)
    assert jobs.latest_job(SimpleNamespace(_latest_training_job=job)) is job
    with pytest.raises(ConfigError) as refused:
        jobs.model_artifact(job)
    assert str(refused.value) == ("training job dogbreed-2026-12-07 has no model artifact yet (it has not completed): "
                                  "wait for it, or check its status in the console")
    with pytest.raises(ConfigError) as refused:
        jobs.model_artifact(SimpleNamespace(model_artifacts=SimpleNamespace(s3_model_artifacts=None)))
    assert str(refused.value) == ("training job ? has no model artifact yet (it has not completed): wait for it, or "
                                  "check its status in the console")  # a job object without its name
    done = SimpleNamespace(model_artifacts=SimpleNamespace(s3_model_artifacts="s3://b/out/model.tar.gz"))
    assert jobs.model_artifact(done) == "s3://b/out/model.tar.gz"


def test_more_parallel_tuning_jobs_than_jobs_is_refused():
    from types import SimpleNamespace

    from dogbreed.sagemaker.tuning import build_tuner

    with pytest.raises(ConfigError) as refused:
        build_tuner(SimpleNamespace(hyperparameters={}), max_jobs=4, max_parallel_jobs=5)
    assert str(refused.value) == "max_parallel_jobs=5 exceeds max_jobs=4"


def test_as_many_parallel_tuning_jobs_as_jobs_is_accepted_and_tuned_options_leave_the_static_ones():
    from types import SimpleNamespace

    from dogbreed.sagemaker.tuning import build_tuner

    trainer = SimpleNamespace(hyperparameters={"lr": 0.1, "epochs": 2, "finetune": "full"})
    tuner = build_tuner(trainer, max_jobs=4, max_parallel_jobs=4)  # every job at once: allowed
    assert (tuner.max_jobs, tuner.max_parallel_jobs) == (4, 4)
    # SageMaker stops hopeless child jobs early (billed time), Bayesian search, maximising validation accuracy
    assert (tuner.early_stopping_type, tuner.strategy, tuner.objective_type) == ("Auto", "Bayesian", "Maximize")
    assert trainer.hyperparameters == {"finetune": "full"}  # lr and epochs are searched, not fixed


def test_a_job_output_archive_that_is_not_there(tmp_path):
    from dogbreed.sagemaker.job_output import unpack_output_archive

    with pytest.raises(ConfigError) as refused:
        unpack_output_archive(tmp_path / "output.tar.gz", tmp_path / "out")
    assert str(refused.value) == (f"{tmp_path / 'output.tar.gz'}: no such file; pass the job's output.tar.gz (aws s3 "
                                  "cp s3://<bucket>/<prefix>/<job-name>/output/output.tar.gz .)")
    assert not (tmp_path / "out").exists()
