"""The training container's environment read back as Trainer settings and run defaults: torchrun without
``LOCAL_WORLD_SIZE``, a one-process torchrun, a one-GPU instance, the CPU count and the progress bar in a job,
and a TensorBoard output config with its own local path."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from dogbreed.sagemaker.environment import config_defaults, distributed_settings, runtime


def test_torchrun_without_a_local_world_size_is_one_node_with_every_process():
    assert distributed_settings({"TORCHELASTIC_RUN_ID": "x", "WORLD_SIZE": "4"}) == {
        "devices": 4, "num_nodes": 1, "strategy": "ddp"}


@pytest.mark.parametrize("env,expected", [
    ({"TORCHELASTIC_RUN_ID": "x", "WORLD_SIZE": "1"}, {}),  # torchrun with one process is a plain local run
    ({"TORCHELASTIC_RUN_ID": "x", "WORLD_SIZE": "1", "SM_MODEL_DIR": "/m", "SM_NUM_GPUS": "1"},
     {"devices": 1, "num_nodes": 1}),
])
def test_a_torchrun_of_one_process_is_not_ddp(env, expected):
    assert distributed_settings(env) == expected


def test_one_gpu_in_a_job_is_one_device_without_ddp():
    # DDP on one GPU would only add a process group and a gradient all-reduce over nothing.
    assert distributed_settings({"SM_MODEL_DIR": "/m", "SM_NUM_GPUS": "1", "SM_HOSTS": '["algo-1"]'}) == {
        "devices": 1, "num_nodes": 1}
    assert distributed_settings({"SM_MODEL_DIR": "/m", "SM_NUM_GPUS": "2"}) == {
        "devices": 2, "num_nodes": 1, "strategy": "ddp"}


class _Terminal:
    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def test_a_job_sizes_its_workers_from_sm_num_cpus_and_never_draws_a_progress_bar(monkeypatch):
    monkeypatch.setattr(sys, "stderr", _Terminal())
    job = runtime({"SM_MODEL_DIR": "/opt/ml/model", "SM_NUM_CPUS": "8", "SM_NUM_GPUS": "1"})
    assert (job.cpu_count, job.progress_bar, job.trainer_settings) == (8, False, {"devices": 1, "num_nodes": 1})
    local = runtime({})
    assert local.progress_bar is True and local.trainer_settings == {}


def test_the_tensorboard_config_local_path_is_the_log_dir(tmp_path):
    base = tmp_path / "ml"
    (base / "input" / "config").mkdir(parents=True)
    (base / "input" / "config" / "tensorboardoutputconfig.json").write_text(
        json.dumps({"LocalPath": "/opt/ml/output/tb-run", "S3OutputPath": "s3://bucket/tb"}))
    defaults = config_defaults({"SM_MODEL_DIR": str(base / "model")})
    assert (defaults["log_dir"], defaults["profile_dir"]) == (Path("/opt/ml/output/tb-run"),
                                                              Path("/opt/ml/output/tb-run"))
