"""The notebook executes top to bottom against a local moto server; then we check what it sent."""

import io
import json
import tarfile
from pathlib import Path

import boto3
import nbformat
import pytest
from nbclient import NotebookClient

from dogbreed.config.parser import option_names
from dogbreed.training.metric_lines import METRIC_DEFINITIONS
from dogbreed.tuning.search_space import parameter_names
from tests.moto_aws import FAKE_ROLE, moto_endpoint, recorded_calls, recorded_rest_calls, seed_endpoint_results

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "train_and_deploy.ipynb"
BUCKET = "dogbreed-notebook-ci"


def test_notebook_is_stored_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


def _with_parameters(nb, **values):
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    cell.source += "\n# injected by the test\n" + "\n".join(f"{k} = {v!r}" for k, v in values.items())
    return nb


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    from tests.conftest import write_tree

    work = tmp_path_factory.mktemp("nbdata")
    data = write_tree(work / "data", {"train": 2, "valid": 1, "test": 1})
    recording = work / "moto_recording.jsonl"
    canned = json.dumps([{"breed": "Afghan hound", "index": 1, "probability": 0.9},
                         {"breed": "Affenpinscher", "index": 0, "probability": 0.06},
                         {"breed": "Airedale terrier", "index": 2, "probability": 0.04}])
    with moto_endpoint(recording) as url:
        seed_endpoint_results(url, [canned] * 3)
        nb = _with_parameters(nbformat.read(NOTEBOOK, as_version=4), ROLE=FAKE_ROLE, BUCKET=BUCKET,
                              DATA_DIR=str(data), RUN_ON_AWS=False, WORK_DIR=str(work / "nb"))
        NotebookClient(nb, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
        s3 = boto3.client("s3")
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
        bundles = {k: s3.get_object(Bucket=BUCKET, Key=k)["Body"].read() for k in keys
                   if k.endswith("sourcedir.tar.gz")}
        archives = {k: s3.get_object(Bucket=BUCKET, Key=k)["Body"].read() for k in keys
                    if k.startswith("dogbreed/models/") and k.endswith(".tar.gz")}
    jobs = recorded_calls(recording, "CreateTrainingJob")
    tunings = recorded_calls(recording, "CreateHyperParameterTuningJob")
    return {"nb": nb, "keys": keys, "bundles": bundles, "jobs": jobs, "tunings": tunings, "recording": recording,
            "archives": archives}


@pytest.mark.slow
def test_dataset_and_source_bundle_were_uploaded(executed):
    assert any(k.startswith("dogbreed/data/train/") for k in executed["keys"])
    assert executed["bundles"], executed["keys"]
    for blob in executed["bundles"].values():
        names = tarfile.open(fileobj=io.BytesIO(blob)).getnames()
        expected = {"train.py", "hpo.py", "requirements.txt", "dogbreed/__init__.py", "dogbreed/training/run.py"}
        assert expected <= set(names)


@pytest.mark.slow
def test_training_jobs_carry_metric_definitions_and_known_hyperparameters(executed):
    assert len(executed["jobs"]) == 4  # single job, multi-instance, spot, debug
    for job in executed["jobs"]:
        algo = job["AlgorithmSpecification"]
        assert {m["Name"]: m["Regex"] for m in algo["MetricDefinitions"]} == \
            {d["Name"]: d["Regex"] for d in METRIC_DEFINITIONS}
        names = {k for k in job["HyperParameters"] if not k.startswith("sagemaker_")}
        assert names <= set(option_names()), names - set(option_names())
    spot = [j for j in executed["jobs"] if j.get("EnableManagedSpotTraining")]
    assert spot and spot[0]["CheckpointConfig"]["LocalPath"] == "/opt/ml/checkpoints"
    distributed = [j for j in executed["jobs"] if j["ResourceConfig"]["InstanceCount"] == 2]
    assert distributed and json.loads(distributed[0]["HyperParameters"]["sagemaker_torch_distributed_enabled"])


@pytest.mark.slow
def test_tuning_job_carries_the_shared_ranges_and_regexes(executed):
    (tuning,) = executed["tunings"]
    config = tuning["HyperParameterTuningJobConfig"]
    assert config["HyperParameterTuningJobObjective"] == {"Type": "Maximize", "MetricName": "val_acc"}
    ranges = config["ParameterRanges"]
    tuned = {r["Name"] for kind in ranges.values() for r in kind}
    assert tuned == set(parameter_names()) and tuned <= set(option_names())
    lr = next(r for r in ranges["ContinuousParameterRanges"] if r["Name"] == "lr")
    assert lr["ScalingType"] == "Logarithmic"
    definition = tuning["TrainingJobDefinition"]
    assert {m["Name"] for m in definition["AlgorithmSpecification"]["MetricDefinitions"]} == \
        {d["Name"] for d in METRIC_DEFINITIONS}
    assert json.loads(definition["StaticHyperParameters"]["sagemaker_program"]) == "hpo.py"


@pytest.mark.slow
def test_debug_job_carries_the_original_projects_rules_and_hook(executed):
    (job,) = [j for j in executed["jobs"] if j.get("DebugRuleConfigurations")]
    rules = {r["RuleConfigurationName"] for r in job["DebugRuleConfigurations"]}
    assert rules == {"VanishingGradient", "Overfit", "Overtraining", "PoorWeightInitialization"}
    assert {r["RuleConfigurationName"] for r in job["ProfilerRuleConfigurations"]} == {"ProfilerReport"}
    assert job["DebugHookConfig"]["HookParameters"] == {"train.save_interval": "100", "eval.save_interval": "10"}
    assert job["ProfilerConfig"]["ProfilingIntervalInMilliseconds"] == 500
    assert json.loads(job["HyperParameters"]["sagemaker_program"]) == "profiled_train.py"
    # The notebook read the trial back from S3 and ran the local rules on it.
    assert any("debug-output" in k for k in executed["keys"])
    text = "".join(o.get("text", "") for c in executed["nb"].cells if c.cell_type == "code" for o in c.outputs)
    for rule in ("VanishingGradient", "Overfit", "Overtraining", "PoorWeightInitialization", "LossNotDecreasing"):
        assert rule in text


@pytest.mark.slow
def test_deploy_sends_a_ready_archive_and_real_image_requests(executed):
    (archive,) = executed["archives"].values()
    names = set(tarfile.open(fileobj=io.BytesIO(archive)).getnames())
    assert {"model.pth", "model_config.json", "code/inference.py",
            "code/dogbreed/__init__.py"} <= {n.lstrip("./") for n in names}
    assert "code/requirements.txt" not in {n.lstrip("./") for n in names}
    (model,) = recorded_calls(executed["recording"], "CreateModel")
    container = model["PrimaryContainer"]
    assert container["ModelDataUrl"].endswith(".tar.gz") and "dogbreed/models/" in container["ModelDataUrl"]
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    assert recorded_calls(executed["recording"], "CreateEndpoint")
    invocations = recorded_rest_calls(executed["recording"], "/invocations")
    assert len(invocations) == 3
    for call in invocations:
        headers = {k.lower(): v for k, v in call["headers"].items()}
        assert headers["content-type"] == "image/jpeg" and call["body"][:2] == b"\xff\xd8"
    assert recorded_calls(executed["recording"], "DeleteEndpoint")  # nothing left running
