"""The notebook, top to bottom: against a local moto server (every request sent, then checked) and as on a real
account with nothing switched on (not one request may leave the kernel). The committed copy carries the outputs
of a local-stack run: small enough for GitHub and free of this machine's paths."""

import io
import json
import re
import socket
import tarfile
import tempfile
import threading
from pathlib import Path

import boto3
import nbformat
import pytest
from nbclient import NotebookClient

from dogbreed.config.parser import option_names
from dogbreed.training.metric_lines import METRIC_DEFINITIONS
from dogbreed.tuning.search_space import parameter_names
from tests.helpers.moto_aws import FAKE_ROLE, moto_endpoint, recorded_calls, recorded_rest_calls, seed_endpoint_results

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "notebooks" / "train_and_deploy.ipynb"
BUCKET = "dogbreed-notebook-ci"
MAX_NOTEBOOK_BYTES = 1_500_000
MACHINE_PATHS = re.compile(r"(/work/|/tmp/|/root/|/home/|/opt/|/usr/|/etc/|/var/|site-packages|[A-Z]:\\\\)")
CANNED = json.dumps({"confident": True,
                     "predictions": [{"breed": "Afghan hound", "index": 1, "probability": 0.9},
                                     {"breed": "Affenpinscher", "index": 0, "probability": 0.06},
                                     {"breed": "Airedale terrier", "index": 2, "probability": 0.04}]})


def _outputs_text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            for mime, value in output.get("data", {}).items():
                if not mime.startswith("image/"):
                    parts.append(value if isinstance(value, str) else json.dumps(value))
            parts += [output.get("ename", ""), output.get("evalue", "")]
    return "\n".join(parts)


def test_committed_notebook_has_readable_outputs_small_and_without_machine_paths():
    raw = NOTEBOOK.read_bytes()
    assert len(raw) < MAX_NOTEBOOK_BYTES, f"{len(raw)} bytes: too large to read on GitHub"
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), "commit the notebook with the outputs of a run"
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    images = [o for c in code for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 3  # the rule plots and the predictions next to the images
    text = _outputs_text(nb)
    assert "target: local-stack" in text and "VanishingGradient" in text and "top-1 equal to local predict" in text
    found = sorted(set(MACHINE_PATHS.findall(text)))
    assert not found and str(REPO) not in text and tempfile.gettempdir() + "/" not in text, found
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    for switch in ("RUN_TRAINING", "RUN_TUNING", "RUN_DISTRIBUTED", "RUN_SPOT", "RUN_PROFILED", "DEPLOY",
                   "RUN_BATCH_TRANSFORM", "REGISTER"):
        assert f"\n{switch} = False" in "\n" + params.source, switch  # committed with everything off


def _with_parameters(nb, **values):
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    cell.source += "\n# injected by the test\n" + "\n".join(f"{k} = {v!r}" for k, v in values.items())
    return nb


def _execute(nb) -> None:
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()


def _test_data(work: Path) -> Path:
    from tests.helpers.builders import write_tree

    return write_tree(work / "data", {"train": 2, "valid": 1, "test": 1})


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    work = tmp_path_factory.mktemp("nbdata")
    data = _test_data(work)
    recording = work / "moto_recording.jsonl"
    with moto_endpoint(recording) as url:
        seed_endpoint_results(url, [CANNED] * 3)
        nb = _with_parameters(nbformat.read(NOTEBOOK, as_version=4), ROLE=FAKE_ROLE, BUCKET=BUCKET,
                              DATA_DIR=str(data), WORK_DIR=str(work / "nb"))
        _execute(nb)
        s3 = boto3.client("s3")
        keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
                for o in page.get("Contents", [])]
        bundles = {k: s3.get_object(Bucket=BUCKET, Key=k)["Body"].read() for k in keys
                   if k.endswith("sourcedir.tar.gz")}
        small = {k: s3.get_object(Bucket=BUCKET, Key=k)["Body"].read() for k in keys
                 if k.endswith(("/requirements.txt", "/sourcecode.json", "/distributed.json", "-quality.json"))}
        archives = {k: s3.get_object(Bucket=BUCKET, Key=k)["Body"].read() for k in keys
                    if k.startswith("dogbreed/models/") and k.endswith(".tar.gz")}
    jobs = recorded_calls(recording, "CreateTrainingJob")
    tunings = recorded_calls(recording, "CreateHyperParameterTuningJob")
    return {"nb": nb, "keys": keys, "bundles": bundles, "small": small, "jobs": jobs, "tunings": tunings,
            "recording": recording, "archives": archives, "work": work, "text": _outputs_text(nb)}


def _channel_prefix(job, name) -> str:
    (channel,) = [c for c in job["InputDataConfig"] if c["ChannelName"] == name]
    return channel["DataSource"]["S3DataSource"]["S3Uri"].split(f"s3://{BUCKET}/", 1)[1].rstrip("/") + "/"


def _job_file(executed, job, channel, name) -> bytes:
    return executed["small"][_channel_prefix(job, channel) + name]


def _requirements(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


TRAINING_REQUIREMENTS = ["pytorch-lightning>=2.6,<3", "torchmetrics>=1.4", "matplotlib>=3.7", "tqdm>=4.60",
                         "psutil>=5.9", "tensorboard>=2.14"]
TRAINING_IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch:2.13-cu133-amzn2023-sagemaker"
SERVING_IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.6.0-cpu-py312"


@pytest.mark.slow
def test_local_stack_runs_every_section_and_prints_no_machine_path(executed):
    text = executed["text"]
    assert "target: local-stack" in text
    assert not [c for c in executed["nb"].cells if c.cell_type == "code"
                for o in c.outputs if o.output_type == "error"]
    found = sorted(set(MACHINE_PATHS.findall(text)))
    assert not found and str(executed["work"]) not in text, found


@pytest.mark.slow
def test_dataset_and_staged_source_dir_were_uploaded(executed):
    assert any(k.startswith("dogbreed/data/train/") for k in executed["keys"])
    expected = {"train.py", "hpo.py", "profiled_train.py", "requirements.txt", "dogbreed/__init__.py",
                "dogbreed/training/run.py", "dogbreed/sagemaker/jobs.py"}
    for job in executed["jobs"]:  # the code channel: entry points, requirements.txt and the package beside them
        prefix = _channel_prefix(job, "code")
        assert expected <= {k[len(prefix):] for k in executed["keys"] if k.startswith(prefix)}, job["TrainingJobName"]
    (bundle,) = executed["bundles"].values()  # the tuning job's child jobs: the legacy toolkit's sourcedir.tar.gz
    assert expected <= set(tarfile.open(fileobj=io.BytesIO(bundle)).getnames())


@pytest.mark.slow
def test_training_jobs_install_the_training_requirements_through_the_driver(executed):
    for job in executed["jobs"]:
        assert _requirements(_job_file(executed, job, "code", "requirements.txt").decode()) == TRAINING_REQUIREMENTS
        source = json.loads(_job_file(executed, job, "sm_drivers", "sourcecode.json"))
        assert source["requirements"] == "requirements.txt" and source["source_dir"] is not None
        assert job["AlgorithmSpecification"]["ContainerEntrypoint"] == ["/bin/bash"]  # v3's driver, not the toolkit
        assert not job.get("Environment")


@pytest.mark.slow
def test_training_jobs_carry_image_channels_metrics_tags_and_known_hyperparameters(executed):
    assert len(executed["jobs"]) == 4  # single job, multi-instance, spot, profiled
    for job in executed["jobs"]:
        algo = job["AlgorithmSpecification"]
        assert algo["TrainingImage"] == TRAINING_IMAGE
        assert {m["Name"]: m["Regex"] for m in algo["MetricDefinitions"]} == \
            {d["Name"]: d["Regex"] for d in METRIC_DEFINITIONS}
        assert set(job["HyperParameters"]) <= set(option_names()), set(job["HyperParameters"]) - set(option_names())
        assert [c["ChannelName"] for c in job["InputDataConfig"]] == ["training", "code", "sm_drivers"]
        assert _channel_prefix(job, "training") == "dogbreed/data/"
        assert job["OutputDataConfig"]["S3OutputPath"] == f"s3://{BUCKET}/dogbreed/jobs"
        assert {"Key": "project", "Value": "dogbreed"} in job["Tags"]
        assert not {"DebugHookConfig", "DebugRuleConfigurations", "ProfilerConfig"} & set(job)
    (spot,) = [j for j in executed["jobs"] if j.get("EnableManagedSpotTraining")]
    assert spot["CheckpointConfig"] == {"S3Uri": f"s3://{BUCKET}/dogbreed/checkpoints/spot-demo",
                                        "LocalPath": "/opt/ml/checkpoints"}
    assert spot["StoppingCondition"] == {"MaxRuntimeInSeconds": 14400, "MaxWaitTimeInSeconds": 28800}
    assert spot["HyperParameters"] == {"epochs": "10", "batch-size": "32", "finetune": "full", "lr": "0.001"}
    (distributed,) = [j for j in executed["jobs"] if j["ResourceConfig"]["InstanceCount"] == 2]
    assert distributed["ResourceConfig"]["InstanceType"] == "ml.g5.12xlarge"
    assert json.loads(_job_file(executed, distributed, "sm_drivers", "distributed.json"))["smp"] is None
    assert "process_count_per_node" in json.loads(_job_file(executed, distributed, "sm_drivers", "distributed.json"))
    single = [j for j in executed["jobs"] if j is not distributed]
    assert all(json.loads(_job_file(executed, j, "sm_drivers", "distributed.json")) == {} for j in single)


@pytest.mark.slow
def test_tuning_job_carries_the_shared_ranges_and_regexes(executed):
    (tuning,) = executed["tunings"]
    config = tuning["HyperParameterTuningJobConfig"]
    assert config["HyperParameterTuningJobObjective"] == {"Type": "Maximize", "MetricName": "val_acc"}
    assert config["TrainingJobEarlyStoppingType"] == "Auto" and config["Strategy"] == "Bayesian"
    assert config["ResourceLimits"] == {"MaxParallelTrainingJobs": 2, "MaxNumberOfTrainingJobs": 4}
    ranges = config["ParameterRanges"]
    tuned = {r["Name"] for kind in ranges.values() for r in kind}
    assert tuned == set(parameter_names()) and tuned <= set(option_names())
    lr = next(r for r in ranges["ContinuousParameterRanges"] if r["Name"] == "lr")
    assert lr == {"Name": "lr", "MinValue": "0.0001", "MaxValue": "0.1", "ScalingType": "Logarithmic"}
    definition = tuning["TrainingJobDefinition"]
    assert definition["AlgorithmSpecification"]["TrainingImage"] == TRAINING_IMAGE
    assert {m["Name"]: m["Regex"] for m in definition["AlgorithmSpecification"]["MetricDefinitions"]} == \
        {d["Name"]: d["Regex"] for d in METRIC_DEFINITIONS}
    static = definition["StaticHyperParameters"]
    assert static["sagemaker_program"] == "hpo.py"  # child jobs start through the image's legacy toolkit
    assert static["sagemaker_submit_directory"] == f"s3://{BUCKET}/" + next(iter(executed["bundles"]))
    assert set(static) == {"sagemaker_program", "sagemaker_submit_directory"}
    assert {"Key": "project", "Value": "dogbreed"} in tuning["Tags"]


@pytest.mark.slow
def test_profiled_job_writes_its_profile_to_the_tensorboard_output(executed):
    (job,) = [j for j in executed["jobs"] if j.get("TensorBoardOutputConfig")]
    assert job["TensorBoardOutputConfig"] == {"S3OutputPath": f"s3://{BUCKET}/dogbreed/profile",
                                              "LocalPath": "/opt/ml/output/tensorboard"}
    assert json.loads(_job_file(executed, job, "sm_drivers", "sourcecode.json"))["entry_script"] == "profiled_train.py"
    assert job["HyperParameters"]["profiler"] == "pytorch"
    # The local rules still ran on the local trial.
    for rule in ("VanishingGradient", "Overfit", "Overtraining", "PoorWeightInitialization", "LossNotDecreasing"):
        assert rule in executed["text"]


@pytest.mark.slow
def test_deploy_sends_a_ready_archive_real_image_requests_and_deletes_everything(executed):
    (archive,) = executed["archives"].values()
    names = {n.lstrip("./") for n in tarfile.open(fileobj=io.BytesIO(archive)).getnames()}
    assert {"model.pth", "model_config.json", "code/inference.py", "code/dogbreed/__init__.py"} <= names
    assert "code/requirements.txt" not in names
    recording = executed["recording"]
    models = recorded_calls(recording, "CreateModel")
    assert len(models) == 2  # the endpoint's and the transform job's
    for model in models:
        container = model["PrimaryContainer"]
        assert container["ModelDataUrl"].endswith(".tar.gz") and "dogbreed/models/" in container["ModelDataUrl"]
        environment = container["Environment"]
        assert {k: environment[k] for k in ("SAGEMAKER_PROGRAM", "SAGEMAKER_MODEL_SERVER_WORKERS")} == {
            "SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_MODEL_SERVER_WORKERS": "1"}
        assert container["Image"] == SERVING_IMAGE
        # The code inside the archive, nothing else (the toolkit reads code/ of the archive).
        assert environment["SAGEMAKER_SUBMIT_DIRECTORY"] == "/opt/ml/model/code"
        assert set(environment) <= {"SAGEMAKER_PROGRAM", "SAGEMAKER_MODEL_SERVER_WORKERS", "SAGEMAKER_SUBMIT_DIRECTORY",
                                    "SAGEMAKER_CONTAINER_LOG_LEVEL", "SAGEMAKER_REGION"}
    (endpoint,) = recorded_calls(recording, "CreateEndpoint")
    invocations = recorded_rest_calls(recording, "/invocations")
    assert len(invocations) == 3
    for call in invocations:
        headers = {k.lower(): v for k, v in call["headers"].items()}
        assert headers["content-type"] == "image/jpeg" and call["body"][:2] in (b"\xff\xd8", b"\x89P")
    # Nothing left running: endpoint, its config and both models deleted.
    assert [c["EndpointName"] for c in recorded_calls(recording, "DeleteEndpoint")] == [endpoint["EndpointName"]]
    assert [c["EndpointConfigName"] for c in recorded_calls(recording, "DeleteEndpointConfig")] == \
        [endpoint["EndpointConfigName"]]
    assert sorted(c["ModelName"] for c in recorded_calls(recording, "DeleteModel")) == \
        sorted(m["ModelName"] for m in models)
    assert "endpoints left: none" in executed["text"]


@pytest.mark.slow
def test_batch_transform_runs_the_handler_over_an_s3_prefix_and_writes_predict_jsonl(executed):
    (job,) = recorded_calls(executed["recording"], "CreateTransformJob")
    assert job["TransformInput"]["DataSource"]["S3DataSource"] == {
        "S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/dogbreed/batch-input"}
    assert job["TransformInput"]["ContentType"] == "application/x-image" and job["BatchStrategy"] == "SingleRecord"
    assert job["TransformOutput"]["S3OutputPath"] == f"s3://{BUCKET}/dogbreed/batch-output"
    records = [json.loads(line) for line in (executed["work"] / "nb" / "batch_predictions.jsonl").read_text()
               .splitlines()]
    assert [r["image"] for r in records] == [f"dogbreed/batch-input/{b}/000.jpg" for b in
                                             ("001.Affenpinscher", "002.Afghan_hound", "003.Airedale_terrier")]
    for record in records:
        # The handler's answer, as local predict writes it: confident, and the rejection when it is not.
        # Without an abstention rule: "confident" null and the "abstention" note.
        rejected = {"abstention"} if record["confident"] is None else set() if record["confident"] else {"rejection"}
        assert set(record) == {"image", "confident", "predictions"} | rejected
        assert len(record["predictions"]) == 3  # top-5 of 3 breeds
        assert set(record["predictions"][0]) == {"breed", "index", "probability"}
    assert "3 images -> <work>/batch_predictions.jsonl; top-1 equal to local predict for 3/3" in executed["text"]


@pytest.mark.slow
def test_register_sends_the_archive_image_metrics_and_pending_approval(executed):
    recording = executed["recording"]
    assert recorded_calls(recording, "CreateModelPackageGroup") == [
        {"ModelPackageGroupName": "dogbreed", "ModelPackageGroupDescription": "dogbreed models"}]
    (package,) = recorded_calls(recording, "CreateModelPackage")
    assert package["ModelPackageGroupName"] == "dogbreed" and package["ModelApprovalStatus"] == "PendingManualApproval"
    (container,) = package["InferenceSpecification"]["Containers"]
    assert container["Image"] == SERVING_IMAGE and container["ModelDataUrl"] == f"s3://{BUCKET}/" + next(
        iter(executed["archives"]))
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    assert package["InferenceSpecification"]["SupportedResponseMIMETypes"] == ["application/json"]
    metrics = json.loads((executed["work"] / "nb" / "local" / "reports" / "metrics.json").read_text())
    properties = package["CustomerMetadataProperties"]
    assert properties["test_acc"] == f"{metrics['test']['acc']:.6f}"
    assert properties["test_ece"] == f"{metrics['calibration']['test']['ece_after']:.6f}"
    low, high = metrics["test"]["acc_ci95"]
    assert properties["test_acc_interval"] == f"[{low:.6f}, {high:.6f}]"
    # the notebook's small local model: abstention did not separate on held-out images, so none is registered
    assert metrics["abstention"]["applied"] is False and "score" not in metrics["abstention"]
    assert properties["abstention_auroc"] == properties["abstention_score"] == "not measured"
    statistics_uri = package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
    quality = json.loads(executed["small"][statistics_uri.split(f"s3://{BUCKET}/", 1)[1]])
    assert quality["multiclass_classification_metrics"]["accuracy"]["value"] == pytest.approx(metrics["test"]["acc"])


class _ConnectionSink:
    """A proxy that accepts and counts connections: any HTTP(S) request from the kernel ends up here."""

    def __init__(self):
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(16)
        self.server.settimeout(0.2)
        self.accepted, self.running = 0, True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.getsockname()[1]}"

    def _serve(self):
        while self.running:
            try:
                connection, _ = self.server.accept()
            except OSError:
                continue
            self.accepted += 1
            connection.close()

    def close(self):
        self.running = False
        self.thread.join(timeout=5)
        self.server.close()


@pytest.mark.slow
def test_real_account_mode_with_nothing_switched_on_sends_no_request(tmp_path, monkeypatch):
    sink = _ConnectionSink()
    try:
        monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
        for name, value in {"AWS_ACCESS_KEY_ID": "AKIAREALLOOKING", "AWS_SECRET_ACCESS_KEY": "secret",
                            "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
                            "AWS_CONFIG_FILE": str(tmp_path / "none"),
                            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
                            "HTTPS_PROXY": sink.url, "HTTP_PROXY": sink.url, "https_proxy": sink.url,
                            "http_proxy": sink.url, "NO_PROXY": "", "no_proxy": ""}.items():
            monkeypatch.setenv(name, value)
        nb = _with_parameters(nbformat.read(NOTEBOOK, as_version=4), DATA_DIR=str(_test_data(tmp_path)),
                              WORK_DIR=str(tmp_path / "nb"))
        _execute(nb)
    finally:
        sink.close()
    text = _outputs_text(nb)
    assert sink.accepted == 0
    assert "target: aws" in text and "nothing will be launched and no request sent" in text
    assert "no request was sent to AWS" in text
    for off in ("RUN_TRAINING is off", "RUN_TUNING is off", "RUN_PROFILED is off", "DEPLOY is off",
                "RUN_BATCH_TRANSFORM is off", "REGISTER is off"):
        assert off in text
    assert "VanishingGradient" in text  # the local debug path still ran
    assert sum("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", [])) >= 2


def test_the_sink_would_see_a_request(tmp_path, monkeypatch):
    """The real-account test's sink is not blind: a boto3 call through it is counted (and fails)."""
    sink = _ConnectionSink()
    try:
        monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
        monkeypatch.setenv("HTTPS_PROXY", sink.url)
        monkeypatch.setenv("NO_PROXY", "")
        from botocore.config import Config

        client = boto3.client("sts", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b",
                              config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=2))
        with pytest.raises(Exception):  # any failure: the point is that the sink saw the attempt
            client.get_caller_identity()
    finally:
        sink.close()
    assert sink.accepted >= 1
