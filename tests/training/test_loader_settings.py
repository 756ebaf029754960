"""DataLoader settings from the machine, and the data-wait line every image-fed run prints."""

from __future__ import annotations

import pytest
import torch

from dogbreed.core.transforms import Preprocessing
from dogbreed.data.datamodule import DogBreedDataModule, LoaderSettings
from dogbreed.data.splits import SplitDirs
from dogbreed.sagemaker.environment import runtime as sagemaker_runtime
from dogbreed.training.callbacks import data_wait_line
from dogbreed.training.run import train
from dogbreed.training.runtime import Runtime
from dogbreed.training.setup import loader_settings, prefetch_batches, resolve_num_workers, resolve_precision
from tests.helpers.builders import fast_config


@pytest.mark.parametrize("cpus,processes,on_gpu,expected", [
    (4, 1, True, 4),      # ml.g4dn.xlarge: one T4, 4 vCPUs -> 4 workers
    (16, 1, True, 16),
    (64, 1, True, 16),    # capped
    (48, 4, True, 12),    # 4 GPUs under DDP share 48 vCPUs
    (8, 8, True, 1),
    (2, 1, False, 0),     # CPU training on 2 cores: decode in-process
    (8, 1, False, 7),
    (32, 1, False, 8),
    (16, 4, False, 3),
])
def test_workers_follow_the_cpus_each_training_process_gets(cpus, processes, on_gpu, expected):
    assert resolve_num_workers(-1, cpus, processes=processes, on_gpu=on_gpu) == expected


def test_an_explicit_worker_count_is_kept():
    assert resolve_num_workers(4, 2, on_gpu=False) == 4 and resolve_num_workers(0, 64, on_gpu=True) == 0


# a batch size that does not divide 128 rounds up: at least 128 images (20 -> 7 batches = 140, 48 -> 3 = 144)
@pytest.mark.parametrize("batch_size,expected", [(1, 8), (8, 8), (16, 8), (20, 7), (32, 4), (48, 3), (64, 2), (100, 2),
                                                (512, 2)])
def test_prefetch_holds_about_128_images_per_worker(batch_size, expected):
    assert prefetch_batches(batch_size) == expected


def test_a_sagemaker_t4_instance_gets_four_pinned_persistent_workers():
    environ = {"SM_MODEL_DIR": "/opt/ml/model", "SM_NUM_CPUS": "4", "SM_NUM_GPUS": "1",
               "SM_HOSTS": '["algo-1"]', "SM_CURRENT_HOST": "algo-1"}
    settings = loader_settings(-1, 32, sagemaker_runtime(environ), on_gpu=True)
    assert settings == LoaderSettings(num_workers=4, pin_memory=True, persistent_workers=True, prefetch_factor=4)


def test_each_of_four_ddp_processes_gets_a_quarter_of_the_cpus():
    environ = {"SM_MODEL_DIR": "/opt/ml/model", "SM_NUM_CPUS": "48", "SM_NUM_GPUS": "4",
               "SM_HOSTS": '["algo-1"]', "SM_CURRENT_HOST": "algo-1"}
    runtime = sagemaker_runtime(environ)
    assert runtime.processes_per_node == 4
    assert loader_settings(-1, 64, runtime, on_gpu=True).num_workers == 12


def test_a_local_machine_with_several_gpus_shares_its_cpus_among_them(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert loader_settings(-1, 32, Runtime(cpu_count=32), on_gpu=True).num_workers == 8
    one_device = Runtime(cpu_count=32, trainer_settings={"devices": 1})  # as torchrun or SageMaker set it
    assert loader_settings(-1, 32, one_device, on_gpu=True).num_workers == 16


def test_on_the_cpu_memory_is_not_pinned_and_workers_are_not_kept():
    settings = loader_settings(-1, 32, Runtime(cpu_count=8), on_gpu=False)
    assert settings == LoaderSettings(num_workers=7, pin_memory=False, persistent_workers=False, prefetch_factor=4)
    assert loader_settings(-1, 32, Runtime(cpu_count=2), on_gpu=False) == LoaderSettings()


def test_the_datamodule_hands_the_settings_to_every_dataloader(tiny_tree):
    settings = LoaderSettings(num_workers=2, pin_memory=False, persistent_workers=True, prefetch_factor=3)
    dm = DogBreedDataModule(SplitDirs.from_data_dir(tiny_tree), preprocessing=Preprocessing(image_size=32),
                            batch_size=2, loader=settings)
    dm.setup()
    for loader in (dm.train_dataloader(), dm.val_dataloader(), dm.test_dataloader()):
        assert (loader.num_workers, loader.prefetch_factor, loader.persistent_workers, loader.pin_memory) == (
            2, 3, True, False)
    in_process = DogBreedDataModule(SplitDirs.from_data_dir(tiny_tree), preprocessing=Preprocessing(image_size=32),
                                    loader=LoaderSettings(prefetch_factor=None))
    in_process.setup()
    assert in_process.train_dataloader().num_workers == 0


def test_data_wait_line_says_whether_input_is_the_bottleneck():
    assert data_wait_line(0.041, [0.25] * 10, 3) == (
        "data wait: 4.1% of training step time (10 steps, mean step 250 ms, 3 DataLoader workers): "
        "input is not the bottleneck")
    slow = data_wait_line(0.62, [0.5, 1.5], 0)
    assert slow.startswith("data wait: 62% of training step time (2 steps, mean step 1000 ms, 0 DataLoader "
                           "workers): input-bound. Raise --num-workers (now 0)")
    assert "python -m entry_points.prepare --data-dir DATA --output PREPARED" in slow
    assert data_wait_line(None, [], 1) == "data wait: not measured (it needs two training batches in one epoch)"


@pytest.mark.parametrize("fraction, share", [(0.1, "10%"), (0.0999, "10.0%"), (0.0004, "0.0%"), (0.996, "100%")])
def test_data_wait_share_has_one_decimal_below_10_percent_only(fraction, share):
    assert data_wait_line(fraction, [0.1, 0.3], 1).startswith(
        f"data wait: {share} of training step time (2 steps, mean step 200 ms, 1 DataLoader worker): ")


@pytest.mark.slow  # a training run or subprocess: make test, not make test-quick
def test_head_training_on_cached_features_prints_no_data_wait(tiny_tree, tmp_path, capsys):
    train(fast_config(tmp_path, tiny_tree, finetune="head", cached_views=1, epochs=1, batch_size=4))
    assert "data wait" not in capsys.readouterr().out


def test_auto_precision_on_a_t4_is_fp16_not_emulated_bf16(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    # A T4 (compute capability 7.5) creates bf16 tensors (emulation) but has no bf16 tensor cores.
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    assert resolve_precision("auto", "auto") == "16-mixed"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)  # an A10G
    assert resolve_precision("auto", "gpu") == "bf16-mixed"


@pytest.mark.parametrize("fraction, verdict", [(0.30, "input-bound. Raise --num-workers (now 1)"),
                                               (0.2999, "input is not the bottleneck")])
def test_input_is_called_the_bottleneck_from_30_percent_of_step_time(fraction, verdict):
    assert verdict in data_wait_line(fraction, [0.1, 0.3], 1)


def test_a_gpu_run_with_one_worker_keeps_it_and_with_none_keeps_nothing():
    """The edges of persistent workers on a GPU: one worker is kept between epochs; no worker, nothing to keep."""
    one = loader_settings(1, 32, Runtime(cpu_count=8, trainer_settings={"devices": 1}), on_gpu=True)
    assert one == LoaderSettings(num_workers=1, pin_memory=True, persistent_workers=True, prefetch_factor=4)
    none = loader_settings(0, 32, Runtime(cpu_count=8, trainer_settings={"devices": 1}), on_gpu=True)
    assert none == LoaderSettings(num_workers=0, pin_memory=True, persistent_workers=False, prefetch_factor=None)
