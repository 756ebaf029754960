"""--weights from a SageMaker input channel: a job without internet starts from weights uploaded once."""

from __future__ import annotations

import pytest
import torch

from dogbreed.config.parser import parse_config
from dogbreed.core.errors import ConfigError
from dogbreed.core.network import apply_backbone_weights, build_resnet50, load_backbone_state_dict
from dogbreed.sagemaker.environment import config_defaults


def _job_env(tmp_path, weights_dir):
    return {"SM_MODEL_DIR": str(tmp_path / "ml" / "model"), "SM_CHANNEL_TRAINING": str(tmp_path / "data"),
            "SM_CHANNEL_WEIGHTS": str(weights_dir)}


def test_the_weights_channel_file_is_the_weights_default_and_loads_into_the_backbone(tmp_path):
    channel = tmp_path / "ml" / "input" / "data" / "weights"
    channel.mkdir(parents=True)
    torch.manual_seed(7)
    source = build_resnet50(1000)  # what torchvision's IMAGENET1K_V2 file holds: a 1000-class resnet50
    torch.save(source.state_dict(), channel / "resnet50-11ad3fa6.pth")
    config = parse_config(["--epochs", "1"], environment_defaults=config_defaults(_job_env(tmp_path, channel)))
    assert config.optimisation.weights == str(channel / "resnet50-11ad3fa6.pth")
    net = build_resnet50(3)
    apply_backbone_weights(net, load_backbone_state_dict(config.optimisation.weights))
    assert torch.equal(net.conv1.weight, source.conv1.weight)
    assert torch.equal(net.layer4[2].bn3.running_mean, source.layer4[2].bn3.running_mean)
    assert net.fc.out_features == 3  # the head stays new


def test_an_explicit_weights_option_still_wins(tmp_path):
    channel = tmp_path / "weights"
    channel.mkdir()
    (channel / "w.pth").write_bytes(b"unused")
    config = parse_config(["--weights", "none", "--finetune", "full"],
                          environment_defaults=config_defaults(_job_env(tmp_path, channel)))
    assert config.optimisation.weights == "none"


@pytest.mark.parametrize("files,found", [([], "found nothing"), (["a.pth", "b.pth"], "found a.pth, b.pth")])
def test_a_weights_channel_must_hold_exactly_one_file(tmp_path, files, found):
    channel = tmp_path / "weights"
    channel.mkdir()
    for name in files:
        (channel / name).write_bytes(b"x")
    with pytest.raises(ConfigError) as error:
        config_defaults(_job_env(tmp_path, channel))
    assert str(error.value) == (f"the 'weights' input channel (SM_CHANNEL_WEIGHTS={channel}) must hold exactly one "
                                f"resnet50 state_dict file, {found}: point the channel at that one S3 object")


def test_without_a_weights_channel_nothing_changes(tmp_path):
    env = {"SM_MODEL_DIR": str(tmp_path / "model")}
    assert "weights" not in config_defaults(env)
    assert parse_config([], environment_defaults=config_defaults(env)).optimisation.weights == "imagenet"


def test_the_one_weights_file_is_found_beside_hidden_files_and_in_a_subfolder(tmp_path):
    from dogbreed.sagemaker.environment import channel_weights_file

    channel = tmp_path / "weights"
    (channel / "torchvision").mkdir(parents=True)
    weights = channel / "torchvision" / "resnet50-11ad3fa6.pth"
    weights.write_bytes(b"x")
    (channel / ".DS_Store").write_bytes(b"finder")  # hidden files (an uploader's, the OS's) are not candidates
    (channel / "torchvision" / ".resnet50-11ad3fa6.pth.partial").write_bytes(b"y")
    assert channel_weights_file(channel) == weights
