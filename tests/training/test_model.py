import hashlib
import http.server
import re
import threading
from functools import partial
from pathlib import Path

import pytest
import torch
from torch import nn

from dogbreed.core.errors import WeightsError
from dogbreed.core.network import (
    apply_backbone_weights,
    build_resnet50,
    download_imagenet_state_dict,
    load_backbone_state_dict,
)
from dogbreed.core.transforms import Preprocessing
from dogbreed.data.datamodule import DogBreedDataModule
from dogbreed.data.splits import SplitDirs
from dogbreed.training.module import DogBreedClassifier
from dogbreed.training.run import build_trainer
from tests.helpers.builders import fast_config


def test_head_is_sized_from_backbone_features():
    net = build_resnet50(7)
    assert net.fc.in_features == 2048 and net.fc.out_features == 7


def _fit_briefly(model, tree, tmp_path, batches=2):
    dm = DogBreedDataModule(SplitDirs.from_data_dir(tree), preprocessing=Preprocessing(image_size=32),
                            batch_size=4, num_workers=0)
    trainer = build_trainer(fast_config(tmp_path, tree), [], limit_train_batches=batches, limit_val_batches=1,
                            num_sanity_val_steps=0)
    trainer.fit(model, datamodule=dm)
    return trainer


def _snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_head_finetune_freezes_backbone_and_batchnorm(tiny_tree, tmp_path):
    model = DogBreedClassifier(num_classes=3, finetune="head", lr=0.05)
    assert all(not p.requires_grad for n, p in model.net.named_parameters() if not n.startswith("fc."))
    before = _snapshot(model.net)
    trainer = _fit_briefly(model, tiny_tree, tmp_path)
    after = _snapshot(model.net)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    # Only the head moved: no backbone weight, no BatchNorm running stat, no batch counter.
    assert changed == {"fc.weight", "fc.bias"}
    optimised = {id(p) for group in trainer.optimizers[0].param_groups for p in group["params"]}
    assert optimised == {id(model.net.fc.weight), id(model.net.fc.bias)}


def test_frozen_backbone_batchnorm_stays_in_eval_mode_after_train():
    model = DogBreedClassifier(num_classes=3, finetune="head").train()
    bns = [m for m in model.net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and not any(bn.training for bn in bns)
    assert model.net.fc.training


def test_full_finetune_updates_backbone_with_its_own_lr(tiny_tree, tmp_path):
    model = DogBreedClassifier(num_classes=3, finetune="full", lr=1e-2, backbone_lr_scale=0.1)
    before = _snapshot(model.net)
    trainer = _fit_briefly(model, tiny_tree, tmp_path)
    assert not torch.equal(before["conv1.weight"], model.net.conv1.weight)
    assert not torch.equal(before["bn1.running_mean"], model.net.bn1.running_mean)
    groups = trainer.optimizers[0].param_groups
    assert [g["initial_lr"] for g in groups] == pytest.approx([1e-2, 1e-3])
    assert isinstance(trainer.optimizers[0], torch.optim.AdamW)


def test_loss_is_a_true_per_sample_mean(tiny_tree, tmp_path):
    # 6 validation images with batch size 4: batches of 4 and 2 must be weighted by their sizes.
    model = DogBreedClassifier(num_classes=3, finetune="full")
    dm = DogBreedDataModule(SplitDirs.from_data_dir(tiny_tree), preprocessing=Preprocessing(image_size=32),
                            batch_size=4, num_workers=0)
    trainer = build_trainer(fast_config(tmp_path, tiny_tree), [])
    logged = trainer.validate(model, datamodule=dm, verbose=False)[0]["val/loss"]
    model.eval()
    losses = []
    with torch.no_grad():
        for images, targets in dm.val_dataloader():
            losses.append(nn.functional.cross_entropy(model(images), targets, reduction="none"))
    assert logged == pytest.approx(torch.cat(losses).mean().item(), rel=1e-5)


def test_weights_from_a_file(tmp_path):
    reference = build_resnet50(1000)
    path = tmp_path / "resnet50.pth"
    torch.save(reference.state_dict(), path)
    net = build_resnet50(5)
    apply_backbone_weights(net, load_backbone_state_dict(str(path)))
    assert torch.equal(net.layer4[2].conv3.weight, reference.layer4[2].conv3.weight)
    assert net.fc.out_features == 5


def test_weights_file_that_does_not_fit(tmp_path):
    path = tmp_path / "small.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, path)
    with pytest.raises(WeightsError) as refused:
        apply_backbone_weights(build_resnet50(3), load_backbone_state_dict(str(path)))
    assert str(refused.value) == (
        "backbone weights do not fit ResNet50 (size mismatch for conv1.weight: copying a param with shape "
        "torch.Size([1]) from checkpoint, the shape in current model is torch.Size([64, 3, 7, 7])). Pass a "
        "torchvision resnet50 state_dict")


def test_missing_weights_file():
    with pytest.raises(WeightsError) as refused:
        load_backbone_state_dict("/nonexistent/resnet.pth")
    assert str(refused.value) == ("--weights /nonexistent/resnet.pth: no such file. Use imagenet (V2), imagenet-v1, "
                                  "none or a path to a state_dict")


class _Server:
    def __init__(self, directory: Path):
        handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
        handler.log_message = lambda *a, **k: None
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_imagenet_weights_download_path_with_hash_check(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    served = tmp_path / "served"
    served.mkdir()
    state = build_resnet50(1000).state_dict()
    blob = served / "tmp.pth"
    torch.save(state, blob)
    digest = hashlib.sha256(blob.read_bytes()).hexdigest()[:8]
    blob.rename(served / f"resnet50-{digest}.pth")  # torch hub checks this hash prefix
    with _Server(served) as url:
        loaded = download_imagenet_state_dict(f"{url}/resnet50-{digest}.pth")
    assert torch.equal(loaded["conv1.weight"], state["conv1.weight"])
    assert (tmp_path / "torch_home" / "hub" / "checkpoints" / f"resnet50-{digest}.pth").is_file()


def test_imagenet_weights_offline_suggests_alternatives(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    with _Server(tmp_path) as url:
        pass  # server closed: the port now refuses connections
    with pytest.raises(WeightsError) as err:
        download_imagenet_state_dict(f"{url}/resnet50-11ad3fa6.pth")
    # The reason in the parentheses is urllib's and the OS's (connection refused): the rest is exact.
    assert re.fullmatch(
        rf"could not download the ImageNet ResNet50 weights from {re.escape(url)}/resnet50-11ad3fa6\.pth \([^\n]+\)\. "
        r"Without internet, pass --weights none --finetune full to train from scratch, or --weights PATH to a local "
        r"resnet50 state_dict \(or copy the file into the torch hub cache, \$TORCH_HOME/hub/checkpoints\)",
        str(err.value)), str(err.value)


def test_metrics_stay_independent_after_an_all_correct_first_batch():
    from dogbreed.training.module import _stage_metrics

    metrics = _stage_metrics(5, "test/")
    metrics.update(torch.eye(5), torch.arange(5))  # everything right: top-1 and top-5 states coincide
    metrics.update(torch.eye(5)[[0, 1, 2]], torch.tensor([1, 2, 3]))  # three mistakes
    values = {k: float(v) for k, v in metrics.compute().items()}
    assert values["test/acc"] == pytest.approx(5 / 8)
    assert values["test/acc_top5"] == 1.0
    assert values["test/f1_macro"] < 0.8


def test_the_schedule_spans_the_run_or_the_current_gradual_phase_with_warmup_at_most_half_of_it():
    from types import SimpleNamespace

    def steps(model: DogBreedClassifier, total: int = 30, epochs: int = 3) -> tuple[int, int]:
        model._trainer = SimpleNamespace(estimated_stepping_batches=total, max_epochs=epochs)
        return model._schedule_steps()

    full = DogBreedClassifier(num_classes=3, finetune="full", warmup_epochs=1)
    assert steps(full) == (30, 10)  # 30 steps, 1 of 3 epochs warming up
    full.hparams["warmup_epochs"] = 3  # every epoch asked to warm up: capped at half the steps
    assert steps(full) == (30, 15)
    assert steps(full, total=7, epochs=1) == (7, 3)  # 7 // 2
    # gradual with more head epochs than the run has (a library caller; the CLI refuses it): the head phase
    # keeps at least the last epoch for the whole network, 2 of 3 epochs = 20 steps, and the full phase 1 = 10
    gradual = DogBreedClassifier(num_classes=3, finetune="gradual", freeze_epochs=5)
    assert gradual.backbone_frozen and steps(gradual) == (20, 0)
    gradual.set_backbone_trainable(True)
    assert steps(gradual) == (10, 0)
    assert DogBreedClassifier(num_classes=3, finetune="full")._schedule_steps() == (1, 0)  # no Trainer yet
