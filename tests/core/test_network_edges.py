"""dogbreed.core.network at its edges: the weight names and URLs, each refusal's message, the head/backbone split
counted out, and freezing (issue 24: what tests/core missed of network.py)."""

from __future__ import annotations

import urllib.error

import pytest
import torch
from torch import nn

from dogbreed.core import network
from dogbreed.core.errors import WeightsError
from dogbreed.core.network import (
    HEAD_PREFIX,
    IMAGENET_WEIGHTS_URL,
    IMAGENET_WEIGHTS_URLS,
    apply_backbone_weights,
    backbone_parameters,
    build_resnet50,
    freeze_backbone,
    freeze_backbone_batchnorm,
    head_parameters,
    load_backbone_state_dict,
)

V1 = "https://download.pytorch.org/models/resnet50-0676ba61.pth"
V2 = "https://download.pytorch.org/models/resnet50-11ad3fa6.pth"


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return build_resnet50(1000).state_dict()


def test_the_weight_names_are_pinned():
    assert HEAD_PREFIX == "fc."
    assert IMAGENET_WEIGHTS_URL == V2
    assert IMAGENET_WEIGHTS_URLS == {"imagenet": V2, "imagenet-v2": V2, "imagenet-v1": V1}


def test_the_head_is_sized_for_the_classes():
    net = build_resnet50(7)
    assert (net.fc.in_features, net.fc.out_features) == (2048, 7)
    assert net.eval()(torch.zeros(1, 3, 32, 32)).shape == (1, 7)


@pytest.mark.parametrize(("name", "url"), [("imagenet", V2), ("ImageNet", V2), ("imagenet-v2", V2),
                                           ("IMAGENET-V1", V1), (" imagenet-v1\n", V1)])
def test_imagenet_names_download_their_checkpoint(name, url, monkeypatch):
    asked: list[str] = []
    monkeypatch.setattr(network, "download_imagenet_state_dict", lambda u: asked.append(u) or {"x": torch.ones(1)})
    assert load_backbone_state_dict(name) == {"x": torch.ones(1)}
    assert asked == [url]


@pytest.mark.parametrize("name", ["none", "None", "NONE", " None ", "none\n"])
def test_none_means_no_weights(name):
    assert load_backbone_state_dict(name) is None


def test_the_download_is_hash_checked_on_cpu_and_an_offline_failure_says_what_to_do(monkeypatch):
    calls: list[tuple] = []

    def fetch(url, **kwargs):
        calls.append((url, kwargs))
        return {"w": torch.zeros(1)}

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", fetch)
    assert network.download_imagenet_state_dict(V1) == {"w": torch.zeros(1)}
    assert calls == [(V1, {"map_location": "cpu", "progress": True, "check_hash": True})]

    def offline(url, **kwargs):
        raise urllib.error.URLError("no route")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(WeightsError) as refused:
        network.download_imagenet_state_dict()
    assert str(refused.value) == (
        f"could not download the ImageNet ResNet50 weights from {V2} (<urlopen error no route>). Without internet, "
        "pass --weights none --finetune full to train from scratch, or --weights PATH to a local resnet50 "
        "state_dict (or copy the file into the torch hub cache, $TORCH_HOME/hub/checkpoints)")


def test_a_missing_weights_file_is_named(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(WeightsError) as refused:
        load_backbone_state_dict(str(missing))
    assert str(refused.value) == (f"--weights {missing}: no such file. Use imagenet (V2), imagenet-v1, none or a "
                                  "path to a state_dict")


def test_a_file_that_is_not_a_state_dict_is_named(tmp_path):
    tensor = tmp_path / "tensor.pth"
    torch.save(torch.zeros(2), tensor)
    with pytest.raises(WeightsError) as refused:
        load_backbone_state_dict(str(tensor))
    assert str(refused.value) == f"--weights {tensor}: expected a state_dict (a dict of tensors), got Tensor"
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError) as refused:
        load_backbone_state_dict(str(garbage))
    assert str(refused.value) == (f"--weights {garbage}: cannot load it as a state_dict (it is not a PyTorch file: "
                                  "neither torch.save's zip archive nor a pickle)")


def test_a_checkpoint_wrapping_its_state_dict_is_unwrapped(tmp_path):
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"state_dict": {"a": torch.ones(1)}, "epoch": 3}, wrapped)
    assert load_backbone_state_dict(str(wrapped)) == {"a": torch.ones(1)}
    plain = tmp_path / "plain.pth"
    torch.save({"state_dict": torch.ones(1)}, plain)  # not a dict inside: the file is the state_dict itself
    assert set(load_backbone_state_dict(str(plain))) == {"state_dict"}


def test_backbone_weights_are_copied_and_the_head_keeps_its_own(state):
    torch.manual_seed(1)
    net = build_resnet50(3)
    head = net.fc.weight.detach().clone()
    apply_backbone_weights(net, state)  # state's fc is 1000 x 2048: skipped, not a shape error
    assert torch.equal(net.conv1.weight, state["conv1.weight"])
    assert torch.equal(net.layer4[2].bn3.running_var, state["layer4.2.bn3.running_var"])
    assert torch.equal(net.fc.weight, head)


def test_backbone_weights_that_do_not_fit_are_counted(state):
    net = build_resnet50(3)
    short = {k: v for k, v in state.items() if k != "layer1.0.conv1.weight"}
    with pytest.raises(WeightsError) as refused:
        apply_backbone_weights(net, short)
    assert str(refused.value) == ("backbone weights do not fit ResNet50: 1 missing (e.g. ['layer1.0.conv1.weight']), "
                                  "0 unexpected (e.g. []). Pass a torchvision resnet50 state_dict")
    extra = {**state, "layer5.weight": torch.zeros(1)}
    with pytest.raises(WeightsError) as refused:
        apply_backbone_weights(net, extra)
    assert str(refused.value) == ("backbone weights do not fit ResNet50: 0 missing (e.g. []), 1 unexpected (e.g. "
                                  "['layer5.weight']). Pass a torchvision resnet50 state_dict")
    wrong = {**state, "conv1.weight": torch.zeros(64, 3, 3, 3)}
    with pytest.raises(WeightsError) as refused:
        apply_backbone_weights(net, wrong)
    assert str(refused.value) == (
        "backbone weights do not fit ResNet50 (size mismatch for conv1.weight: copying a param with shape "
        "torch.Size([64, 3, 3, 3]) from checkpoint, the shape in current model is torch.Size([64, 3, 7, 7])). Pass a "
        "torchvision resnet50 state_dict")  # one line: torch's header and tab left out


def test_the_head_and_backbone_split_counted_out():
    net = build_resnet50(3)
    assert len(head_parameters(net)) == 2 and [p.shape for p in head_parameters(net)] == [(3, 2048), (3,)]
    assert len(backbone_parameters(net)) == 159  # ResNet50 has 161 parameter tensors, 2 of them the head
    assert sum(p.numel() for p in backbone_parameters(net)) == 23_508_032
    freeze_backbone(net)
    assert all(not p.requires_grad for p in backbone_parameters(net))
    assert all(p.requires_grad for p in head_parameters(net))


def test_freezing_batchnorm_touches_only_the_backbones_batchnorm():
    net = build_resnet50(3)
    net.fc = nn.Sequential(nn.BatchNorm1d(2048), nn.Linear(2048, 3))  # a head with its own BatchNorm
    net.train()
    freeze_backbone_batchnorm(net)
    norms = [m for name, m in net.named_modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == 53 and not any(m.training for m in norms)
    assert net.fc[0].training and net.layer1.training and net.conv1.training


def test_the_seeded_head_is_drawn_after_a_1000_class_head_like_torchvision():
    from torchvision.models import resnet50

    torch.manual_seed(5)
    ours = build_resnet50(3)
    torch.manual_seed(5)
    theirs = resnet50()
    theirs.fc = nn.Linear(2048, 3)
    assert torch.equal(ours.fc.weight, theirs.fc.weight) and torch.equal(ours.fc.bias, theirs.fc.bias)


def test_a_weights_file_is_loaded_weights_only(tmp_path):
    import datetime

    pickled = tmp_path / "pickled.pth"
    torch.save({"conv1.weight": torch.ones(1), "saved": datetime.datetime(2026, 1, 1)}, pickled)
    with pytest.raises(WeightsError) as refused:
        load_backbone_state_dict(str(pickled))
    assert str(refused.value) == (f"--weights {pickled}: cannot load it as a state_dict (it holds pickled Python "
                                  "objects, starting with datetime.datetime, not only tensors; dogbreed loads weights "
                                  "only and never runs code from a weights file)")


def test_at_most_three_missing_and_unexpected_keys_are_named(state):
    net = build_resnet50(3)
    dropped = ["bn1.bias", "bn1.running_mean", "bn1.running_var", "bn1.weight"]
    short = {k: v for k, v in state.items() if k not in dropped}
    extra = {**short, **{f"extra{i}": torch.zeros(1) for i in range(4)}}
    with pytest.raises(WeightsError) as refused:
        apply_backbone_weights(net, extra)
    assert str(refused.value) == (
        "backbone weights do not fit ResNet50: 4 missing (e.g. ['bn1.weight', 'bn1.bias', 'bn1.running_mean']), "
        "4 unexpected (e.g. ['extra0', 'extra1', 'extra2']). Pass a torchvision resnet50 state_dict")
