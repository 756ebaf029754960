"""dogbreed's ResNet50 (torch only) against torchvision's resnet50: the same state_dict, the same initial weights
for the same seed, the same outputs; and the serving path never imports torchvision (issue 25's cold start)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn
from torchvision.models import ResNet50_Weights, resnet50

from dogbreed.core.network import IMAGENET_WEIGHTS_URLS, build_resnet50
from dogbreed.core.resnet import ResNet

REPO = Path(__file__).resolve().parents[2]


def torchvision_net(num_classes: int) -> nn.Module:
    net = resnet50(weights=None)
    net.fc = nn.Linear(2048, num_classes)
    return net


def test_every_module_is_torchvisions_with_the_same_settings():
    """Module by module: the same name, class name and settings (extra_repr: channels, strides, eps, momentum,
    ReLU(inplace=True), ...), so memory use and printing match torchvision's too, not only the numbers."""
    ours = [(name, type(m).__name__, m.extra_repr()) for name, m in ResNet(1000).named_modules()]
    theirs = [(name, type(m).__name__, m.extra_repr()) for name, m in resnet50().named_modules()]
    assert len(ours) == 151 and ours == theirs


def test_state_dict_keys_and_shapes_are_torchvision_resnet50s():
    ours, theirs = ResNet(1000).state_dict(), resnet50(weights=None).state_dict()
    assert list(ours) == list(theirs)  # same names in the same order
    assert len(ours) == 320
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}
    assert sum(p.numel() for p in ResNet(1000).parameters()) == 25_557_032  # torchvision's num_params


def test_seeded_construction_draws_the_same_initial_weights():
    """A seeded --weights none run starts from the weights it started from when the network was torchvision's."""
    torch.manual_seed(7)
    ours = build_resnet50(5).state_dict()
    torch.manual_seed(7)
    theirs = torchvision_net(5).state_dict()
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    torch.manual_seed(7)  # and both leave torch's RNG in the same state
    build_resnet50(5)
    after_ours = torch.rand(3)
    torch.manual_seed(7)
    torchvision_net(5)
    assert torch.equal(after_ours, torch.rand(3))


@pytest.mark.slow  # two full ResNet50 forwards per case (about 7 s together): make test, not make test-quick
@pytest.mark.parametrize("train", [False, True])
def test_forward_equals_torchvision_on_the_same_weights(train):
    torch.manual_seed(0)
    theirs = torchvision_net(4)
    with torch.no_grad():  # non-trivial BatchNorm statistics, so eval mode uses them
        for module in theirs.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
    ours = build_resnet50(4)
    ours.load_state_dict(theirs.state_dict())
    ours.train(train)
    theirs.train(train)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=1e-6)


def test_imagenet_urls_are_torchvisions():
    assert IMAGENET_WEIGHTS_URLS == {"imagenet": ResNet50_Weights.IMAGENET1K_V2.url,
                                     "imagenet-v2": ResNet50_Weights.IMAGENET1K_V2.url,
                                     "imagenet-v1": ResNet50_Weights.IMAGENET1K_V1.url}


# A subprocess each (3 s): "none" in make test-quick, tencrop's extra transform path in make test.
@pytest.mark.parametrize("tta", ["none", pytest.param("tencrop", marks=pytest.mark.slow)])
def test_serving_a_prediction_never_imports_torchvision_or_dynamo(tmp_path, tta):
    """The endpoint worker's imports (entry_points.inference) and a whole request: load, decode, preprocess, predict."""
    script = textwrap.dedent(f"""
        import io, sys
        import entry_points.inference as inference
        from PIL import Image
        assert "torchvision" not in sys.modules, "importing the handlers imported torchvision"
        import torch
        from dogbreed.core.network import build_resnet50
        from dogbreed.core.transforms import Preprocessing
        from dogbreed.serving.artifact import ModelConfig, save_artifact
        save_artifact(sys.argv[1], build_resnet50(3).eval(),
                      ModelConfig(class_names=["a", "b", "c"], preprocessing=Preprocessing(image_size=32), tta="{tta}"))
        model = inference.model_fn(sys.argv[1])
        buffer = io.BytesIO()
        Image.new("RGB", (50, 40), (120, 30, 200)).save(buffer, format="JPEG")
        body, content_type = inference.output_fn(
            inference.predict_fn(inference.input_fn(buffer.getvalue(), "image/jpeg"), model), "application/json")
        text = body.decode() if isinstance(body, bytes) else body
        assert content_type == "application/json" and any(f'"{{name}}"' in text for name in "abc"), text
        print("torchvision" in sys.modules, "torch._dynamo" in sys.modules)
    """)
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "model")], capture_output=True, text=True,
                          cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "False False"  # neither torchvision nor torch._dynamo (~1.3 s)
