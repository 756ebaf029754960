"""dogbreed.core.network, third pass: --weights PATH is taken as written (case and spaces kept: only the keywords
are case-insensitive), and a directory is "no such file", not torch's IsADirectoryError."""

from __future__ import annotations

import pytest
import torch

from dogbreed.core.errors import WeightsError
from dogbreed.core.network import load_backbone_state_dict


def test_a_directory_is_not_a_weights_file(tmp_path):
    folder = tmp_path / "weights.pth"
    folder.mkdir()
    with pytest.raises(WeightsError) as refused:
        load_backbone_state_dict(str(folder))
    assert str(refused.value) == (f"--weights {folder}: no such file. Use imagenet (V2), imagenet-v1, none or a "
                                  "path to a state_dict")


def test_a_weights_path_keeps_its_case(tmp_path, monkeypatch):
    """Only the keywords are folded: a file named MyWeights.PTH is opened by that name (a relative one too)."""
    torch.save({"conv1.weight": torch.full((2,), 3.0)}, tmp_path / "MyWeights.PTH")
    state = load_backbone_state_dict(str(tmp_path / "MyWeights.PTH"))
    assert list(state) == ["conv1.weight"] and state["conv1.weight"].tolist() == [3.0, 3.0]
    monkeypatch.chdir(tmp_path)
    assert list(load_backbone_state_dict("MyWeights.PTH")) == ["conv1.weight"]


def test_a_download_failing_its_hash_check_is_a_weights_error(monkeypatch):
    """torch.hub raises a RuntimeError for a file whose SHA-256 prefix is not the one in its name (a corrupted or
    intercepted download): it says what to do instead, like an offline failure, not a traceback."""
    from dogbreed.core import network

    def corrupted(url, **kwargs):
        raise RuntimeError('invalid hash value (expected "11ad3fa6", got "0123abcd")')

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", corrupted)
    with pytest.raises(WeightsError) as refused:
        network.download_imagenet_state_dict()
    assert str(refused.value) == (
        "could not download the ImageNet ResNet50 weights from https://download.pytorch.org/models/resnet50-11ad3fa6"
        '.pth (invalid hash value (expected "11ad3fa6", got "0123abcd")). Without internet, pass --weights none '
        "--finetune full to train from scratch, or --weights PATH to a local resnet50 state_dict (or copy the file "
        "into the torch hub cache, $TORCH_HOME/hub/checkpoints)")
