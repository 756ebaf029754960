"""Under DDP each validation/test image counts once: the test metrics of a 2-process torchrun run equal a
single-process evaluation of the same model on the same data (9 test images: a padding sampler evaluates 10)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl

from dogbreed.data.datamodule import DogBreedDataModule
from dogbreed.data.samplers import UnpaddedDistributedSampler, evaluation_sampler
from dogbreed.data.splits import SplitDirs
from dogbreed.serving.artifact import load_artifact
from dogbreed.training.module import DogBreedClassifier
from tests.helpers.builders import write_tree

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("size,world", [(9, 2), (10, 4), (3, 4), (0, 2)])
def test_shards_are_disjoint_unpadded_and_cover_every_sample(size, world):
    shards = [list(UnpaddedDistributedSampler(range(size), num_replicas=world, rank=r)) for r in range(world)]
    assert sorted(i for shard in shards for i in shard) == list(range(size))
    assert [len(UnpaddedDistributedSampler(range(size), num_replicas=world, rank=r)) for r in range(world)] == \
        [len(s) for s in shards]


def test_nine_images_on_two_ranks_give_five_and_four():
    assert list(UnpaddedDistributedSampler(range(9), num_replicas=2, rank=0)) == [0, 2, 4, 6, 8]
    assert list(UnpaddedDistributedSampler(range(9), num_replicas=2, rank=1)) == [1, 3, 5, 7]


def test_a_single_process_keeps_the_plain_sequential_loader():
    assert evaluation_sampler(range(9)) is None


def _single_process_test_metrics(model_dir: Path, tree: Path, batch_size: int) -> dict[str, float]:
    net, config = load_artifact(model_dir, map_location="cpu")
    module = DogBreedClassifier(num_classes=len(config.class_names), finetune="full")
    module.net = net
    data = DogBreedDataModule(SplitDirs(train=tree / "train", valid=tree / "valid", test=tree / "test"),
                              preprocessing=config.preprocessing, batch_size=batch_size, num_workers=0)
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, enable_checkpointing=False)
    (tested,) = trainer.test(module, datamodule=data, verbose=False)
    return {k.split("/", 1)[1]: float(v) for k, v in tested.items() if k.startswith("test/")}


@pytest.mark.slow
def test_ddp_test_metrics_equal_a_single_process_run_on_the_same_data(tmp_path):
    tree = write_tree(tmp_path / "data", {"train": 8, "valid": 3, "test": 3}, seed=3)  # 9 valid, 9 test images
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "entry_points.train", "--data-dir", str(tree), "--model-dir", str(out / "model"),
           "--output-dir", str(out / "reports"), "--weights", "none", "--epochs", "1", "--image-size", "32",
           "--finetune", "full", "--num-workers", "0", "--batch-size", "4", "--accelerator", "cpu"]
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = json.loads((out / "reports" / "metrics.json").read_text())["test"]
    single = _single_process_test_metrics(out / "model", tree, batch_size=4)
    assert set(single) == {"loss", "acc", "acc_top5", "f1_macro"}
    assert set(ddp) == set(single) | {"acc_ci95", "f1_macro_ci95"}  # the run adds the bootstrap intervals
    assert ddp["acc_ci95"][0] <= ddp["acc"] <= ddp["acc_ci95"][1]
    for name in single:
        assert ddp[name] == pytest.approx(single[name], abs=1e-5), name
    with (out / "reports" / "per_class_accuracy.csv").open() as handle:
        totals = [int(row["total"]) for row in csv.DictReader(handle)]
    assert totals == [3, 3, 3]  # the confusion matrix counts each test image once
