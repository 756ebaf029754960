"""The notebook's plan, fast (the notebook itself runs against moto in the slow tests): where requests go, which
sections run, and the table it prints, costs included, written out."""

from __future__ import annotations

import pytest

from dogbreed.sagemaker.notebook import (
    AWS,
    LOCAL_STACK,
    SWITCHES,
    aws_target,
    format_plan,
    plan,
    uses_aws,
    uses_training_data,
)

TABLE = """\
RUN_TRAINING        off  1 training job on 1 x ml.g5.xlarge (A10G); ~$1.41/h; head-only dogImages, 5 epochs: ~10 min
RUN_TUNING          off  a tuning job: MAX_JOBS training jobs, MAX_PARALLEL_JOBS at a time, ml.g5.xlarge each; ~$1.41/h per job; 4 jobs ~40 min of instance time
RUN_DISTRIBUTED     off  1 training job on 2 x ml.g5.12xlarge (4 A10G each), torchrun + DDP; ~$7.09/h per instance; many accounts have a quota of 0: ask for 'ml.g5.12xlarge for training job usage'
RUN_SPOT            off  1 training job on spot ml.g5.xlarge, checkpoints to S3; up to ~70% below on-demand; needs a spot training quota; may be interrupted and resumed
RUN_PROFILED        off  1 profiled training job on ml.g5.xlarge, its profile synced to S3 (TensorBoard output); ~$1.41/h; 5 epochs ~10 min
DEPLOY              off  1 real-time endpoint on 1 x ml.m5.large, deleted at the end of its cell; ~$0.115/h while it exists
RUN_BATCH_TRANSFORM off  1 Batch Transform job over the test images on 1 x ml.m5.large; ~$0.115/h for the job's minutes; no endpoint left behind
REGISTER            off  1 model package in the Model Registry group 'dogbreed' (PendingManualApproval); free (the archive's S3 storage only)"""  # noqa: E501


@pytest.mark.parametrize("url, target", [
    (None, AWS), ("", AWS), ("http://localhost:5000", LOCAL_STACK), ("http://127.0.0.1:5000", LOCAL_STACK),
    ("http://127.8.9.1", LOCAL_STACK), ("http://[::1]:5000", LOCAL_STACK), ("http://10.0.0.5:5000", AWS),
    ("https://sagemaker.us-east-1.amazonaws.com", AWS), ("http://localhost.example.com", AWS),
    ("localhost:5000", AWS), ("http://", AWS), ("http://LOCALHOST:5000", LOCAL_STACK),  # no scheme: no host
])
def test_only_a_loopback_endpoint_url_is_the_local_stack(url, target):
    assert aws_target({} if url is None else {"AWS_ENDPOINT_URL": url}) == target


def test_against_aws_only_switched_on_sections_run_and_all_run_against_the_local_stack():
    assert plan({"DEPLOY": True, "RUN_SPOT": False}, AWS) == {name: name == "DEPLOY" for name in SWITCHES}
    assert plan({}, LOCAL_STACK) == dict.fromkeys(SWITCHES, True)
    with pytest.raises(ValueError) as caught:
        plan({"RUN_TRAINNG": True}, AWS)
    assert str(caught.value) == ("unknown notebook switch(es) ['RUN_TRAINNG']; known: RUN_TRAINING, RUN_TUNING, "
                                 "RUN_DISTRIBUTED, RUN_SPOT, RUN_PROFILED, DEPLOY, RUN_BATCH_TRANSFORM, REGISTER")


def test_the_printed_plan_says_what_each_section_launches_and_costs():
    assert format_plan(plan({}, AWS), AWS) == (
        "target: aws (only switched-on sections run; jobs are waited for)\n" + TABLE + "\n"
        "nothing will be launched and no request sent: the local sections (debug rules, predictions) still run. "
        "Set a switch to True in the parameters cell to launch it.")
    local = format_plan(plan({}, LOCAL_STACK), LOCAL_STACK).splitlines()
    assert local[0] == "target: local-stack (requests are sent and checked; no job runs, nothing waits)"
    assert local[1:] == TABLE.replace(" off  ", " on   ").splitlines()


@pytest.mark.parametrize("on, training_data", [
    ("RUN_TRAINING", True), ("RUN_TUNING", True), ("RUN_DISTRIBUTED", True), ("RUN_SPOT", True),
    ("RUN_PROFILED", True), ("DEPLOY", False), ("RUN_BATCH_TRANSFORM", False), ("REGISTER", False),
])
def test_which_sections_read_the_dataset_from_s3(on, training_data):
    sections = {name: name == on for name in SWITCHES}
    assert uses_training_data(sections) is training_data and uses_aws(sections) is True
    assert uses_aws(dict.fromkeys(SWITCHES, False)) is False
