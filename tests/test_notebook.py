"""The notebook executes top to bottom against a local moto server; then we check what it sent."""

import io
import json
import tarfile
from pathlib import Path

import boto3
import nbformat
import pytest
from nbclient import NotebookClient

from dogbreed.config import option_names
from dogbreed.metric_lines import METRIC_DEFINITIONS
from dogbreed.search_space import parameter_names
from tests.moto_aws import FAKE_ROLE, moto_endpoint, recorded_calls

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
    with moto_endpoint(recording):
        nb = _with_parameters(nbformat.read(NOTEBOOK, as_version=4), ROLE=FAKE_ROLE, BUCKET=BUCKET,
                              DATA_DIR=str(data), RUN_ON_AWS=False)
        NotebookClient(nb, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
        s3 = boto3.client("s3")
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
        bundles = {k: s3.get_object(Bucket=BUCKET, Key=k)["Body"].read() for k in keys
                   if k.endswith("sourcedir.tar.gz")}
    jobs = recorded_calls(recording, "CreateTrainingJob")
    tunings = recorded_calls(recording, "CreateHyperParameterTuningJob")
    return {"nb": nb, "keys": keys, "bundles": bundles, "jobs": jobs, "tunings": tunings, "recording": recording}


@pytest.mark.slow
def test_dataset_and_source_bundle_were_uploaded(executed):
    assert any(k.startswith("dogbreed/data/train/") for k in executed["keys"])
    assert executed["bundles"], executed["keys"]
    for blob in executed["bundles"].values():
        names = tarfile.open(fileobj=io.BytesIO(blob)).getnames()
        assert {"train.py", "hpo.py", "requirements.txt", "dogbreed/__init__.py", "dogbreed/training.py"} <= set(names)


@pytest.mark.slow
def test_training_jobs_carry_metric_definitions_and_known_hyperparameters(executed):
    assert len(executed["jobs"]) >= 3  # single job, multi-instance, spot
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
