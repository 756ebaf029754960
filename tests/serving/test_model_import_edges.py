"""build_imported_net at its edges, fast (a random 3-class ResNet50, no files): each refusal's exact message, and
a finite, matching state loads strictly into an eval-mode network."""

from __future__ import annotations

import pytest
import torch

from dogbreed.core.errors import ArtifactError
from dogbreed.core.network import build_resnet50
from dogbreed.serving.model_import import build_imported_net

NAMES = ["Affenpinscher", "Afghan hound", "Airedale terrier"]


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return build_resnet50(3).state_dict()


def test_a_matching_finite_state_loads_into_an_eval_network(state):
    net = build_imported_net(state, NAMES, "weights.pt")
    assert net.training is False
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_a_non_finite_weight_anywhere_is_refused(state, bad):
    broken = dict(state)
    broken["layer3.2.bn2.running_var"] = state["layer3.2.bn2.running_var"].clone()
    broken["layer3.2.bn2.running_var"][5] = bad
    with pytest.raises(ArtifactError) as caught:
        build_imported_net(broken, NAMES, "--state-dict weights.pt")
    assert str(caught.value) == "--state-dict weights.pt contains NaN or infinite weights: nothing was imported"


def test_each_refusal_names_the_source_and_the_problem(state):
    without_head = {k: v for k, v in state.items() if k != "fc.weight"}
    flat_head = {**state, "fc.weight": state["fc.weight"].flatten()}
    missing = {k: v for k, v in state.items() if k != "conv1.weight"}
    cases = [
        (without_head, NAMES, "w.pt: no classifier weight fc.weight: not a torchvision ResNet50 state_dict"),
        (flat_head, NAMES, "w.pt: no classifier weight fc.weight: not a torchvision ResNet50 state_dict"),
        (state, NAMES[:2], "w.pt has a 3-class head but the classes file names 2 classes: give one name per "
                           "output, in output order"),
    ]
    for bad_state, names, message in cases:
        with pytest.raises(ArtifactError) as caught:
            build_imported_net(bad_state, names, "w.pt")
        assert str(caught.value) == message
    with pytest.raises(ArtifactError) as caught:
        build_imported_net(missing, NAMES, "w.pt")
    assert str(caught.value) == ('w.pt is not a torchvision ResNet50 (Missing key(s) in state_dict: "conv1.weight"): '
                                 "dogbreed imports resnet50 weights only")


@pytest.mark.parametrize("text, ending", [
    ("beagle\nboxer\nbeagle\npug\nboxer\n", "got 5 (repeated: beagle, boxer)"),
    ('["beagle", "beagle"]', "got 2 (repeated: beagle)"),
    ("beagle\n\n  \n", "got 1"),
])
def test_a_classes_file_with_too_few_or_repeated_names_says_which(tmp_path, text, ending):
    from dogbreed.serving.model_import import read_class_names

    path = tmp_path / "classes.txt"
    path.write_text(text)
    with pytest.raises(ArtifactError) as refused:
        read_class_names(path)
    assert str(refused.value) == (f"--classes {path}: expected at least 2 distinct class names, one per line, "
                                  f"{ending}")


def test_a_classes_file_that_starts_like_json_but_is_not_says_so(tmp_path):
    from dogbreed.serving.model_import import read_class_names

    path = tmp_path / "classes.json"
    path.write_text('["beagle" "boxer"]')
    with pytest.raises(ArtifactError) as refused:
        read_class_names(path)
    assert str(refused.value) == (f"--classes {path}: starts like a JSON list but is not valid JSON (Expecting ',' "
                                  "delimiter at line 1, column 11)")
    path.write_text('[1, 2]')
    with pytest.raises(ArtifactError) as refused:
        read_class_names(path)
    assert str(refused.value) == f"--classes {path}: a JSON classes file must be a list of strings"


def test_foreign_weights_refusals_name_the_file_and_the_reason(tmp_path):
    from dogbreed.serving.model_import import load_foreign_weights
    from tests.helpers.builders import pickle_of_a_gone_class

    with pytest.raises(ArtifactError) as missing:
        load_foreign_weights(tmp_path / "none.pt")
    assert str(missing.value) == f"--state-dict {tmp_path / 'none.pt'}: no such file"
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"junk bytes here")
    with pytest.raises(ArtifactError) as unreadable:
        load_foreign_weights(junk)
    assert str(unreadable.value) == (f"--state-dict {junk} cannot be loaded (it is not a PyTorch file: neither "
                                     "torch.save's zip archive nor a pickle): is it a complete torch.save file?")
    listed = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], listed)
    with pytest.raises(ArtifactError) as not_a_dict:
        load_foreign_weights(listed)
    assert str(not_a_dict.value) == (f"--state-dict {listed}: expected a ResNet50 state_dict (a dict of tensors) or a "
                                     "pickled ResNet50, got list")
    pickled = tmp_path / "pickled.pt"
    pickled.write_bytes(pickle_of_a_gone_class())  # a pickled object whose class this process cannot import
    with pytest.raises(ArtifactError) as untrusted:
        load_foreign_weights(pickled)
    assert str(untrusted.value) == (
        f"{pickled} is not a plain state_dict: it holds pickled Python objects (gone_module.Thing first), such as a "
        "whole model saved with torch.save(model, file). Loading it runs code from the file. If you trust where it "
        "comes from, pass --trust-pickle; otherwise save model.state_dict() where it was made and import that file")
    with pytest.raises(ArtifactError) as trusted:
        load_foreign_weights(pickled, trust_pickle=True)
    assert str(trusted.value) == f"{pickled} cannot be unpickled (ModuleNotFoundError: No module named 'gone_module')"


@pytest.mark.parametrize("wrapper", ["state_dict", "model_state_dict", "model"])
def test_a_wrapped_state_dict_and_training_prefixes_are_unwrapped(tmp_path, wrapper):
    from dogbreed.serving.model_import import load_foreign_weights

    path = tmp_path / "w.pt"
    torch.save({wrapper: {"module.fc.weight": torch.ones(2, 3), "module.fc.bias": torch.zeros(2)}, "epoch": 3}, path)
    state, pickled = load_foreign_weights(path)
    assert sorted(state) == ["fc.bias", "fc.weight"] and pickled is False
    assert torch.equal(state["fc.weight"], torch.ones(2, 3))


def test_a_classes_file_that_is_not_utf8_or_not_a_file(tmp_path):
    from dogbreed.serving.model_import import read_class_names

    latin = tmp_path / "classes.txt"
    latin.write_bytes("Beagle\nK\u00e4rntner Bracke\n".encode("latin-1"))
    with pytest.raises(ArtifactError) as refused:
        read_class_names(latin)
    assert str(refused.value) == (f"--classes {latin}: not UTF-8 text (invalid continuation byte at byte 8): save it "
                                  "as UTF-8")
    with pytest.raises(ArtifactError) as refused:
        read_class_names(tmp_path)
    assert str(refused.value) == f"--classes {tmp_path}: cannot read it (Is a directory)"


@pytest.mark.parametrize("keys, expected", [
    (["module.conv1.weight", "module.fc.weight"], ["conv1.weight", "fc.weight"]),  # DataParallel / DDP
    (["_orig_mod.conv1.weight", "_orig_mod.fc.weight"], ["conv1.weight", "fc.weight"]),  # torch.compile
    (["module._orig_mod.conv1.weight", "module._orig_mod.fc.weight"], ["conv1.weight", "fc.weight"]),  # both
    (["model.conv1.weight", "model.fc.weight"], ["conv1.weight", "fc.weight"]),  # a wrapper's attribute
    # a prefix that not every key has is part of the names: nothing is cut (a "fc.weight" cut to "ht" would
    # make the refusal name keys the file does not hold)
    (["module.conv1.weight", "fc.weight"], ["module.conv1.weight", "fc.weight"]),
    (["model.conv1.weight", "model_head.weight"], ["model.conv1.weight", "model_head.weight"]),
])
def test_a_wrapper_prefix_is_stripped_only_when_every_key_has_it(tmp_path, keys, expected):
    from dogbreed.serving.model_import import load_foreign_weights

    path = tmp_path / "weights.pt"
    torch.save({key: torch.zeros(1) for key in keys}, path)
    state, pickled = load_foreign_weights(path)
    assert (list(state), pickled) == (expected, False)
    torch.save({"state_dict": {key: torch.zeros(1) for key in keys}}, path)  # as Lightning checkpoints wrap it
    assert list(load_foreign_weights(path)[0]) == expected
