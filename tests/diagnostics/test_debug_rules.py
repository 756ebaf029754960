"""Each local Debugger rule fires on a run built to show its problem and stays quiet on a healthy run.

The runs are small MLPs in a plain loop with an smdebug hook saving every step (fast, deterministic).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable

import pytest
import torch
from torch import nn

from tests.helpers.report_checks import check_plot
from tests.helpers.smdebug_policy import skip_module_without_smdebug

skip_module_without_smdebug()  # only when smdebug is absent and CI is not set; a broken smdebug fails here

from dogbreed.diagnostics.rule_report import run_rules  # noqa: E402
from dogbreed.diagnostics.rules import ISSUES_FOUND, NO_ISSUES_FOUND, NOT_EVALUATED  # noqa: E402

FEATURES, CLASSES = 16, 3


class MLP(nn.Module):
    """Hidden layers named ``*_relu`` so their inputs match AWS's default '.*relu_input' regex."""

    def __init__(self, depth: int = 3, width: int = 32, activation: Callable[[], nn.Module] = nn.ReLU) -> None:
        super().__init__()
        torch.manual_seed(0)  # the same initial weights in every run
        self.depth = depth
        for i in range(depth):
            self.add_module(f"fc{i}", nn.Linear(FEATURES if i == 0 else width, width))
            self.add_module(f"layer{i}_relu", activation())
        self.head = nn.Linear(width, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(self.depth):
            x = getattr(self, f"layer{i}_relu")(getattr(self, f"fc{i}")(x))
        return self.head(x)


def kaiming(net: nn.Module) -> nn.Module:
    for module in net.modules():
        if isinstance(module, nn.Linear):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            nn.init.zeros_(module.bias)
    return net


def blobs(n: int, seed: int, random_labels: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Three separable Gaussian blobs (standardised inputs); or pure noise labels."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, CLASSES, (n,), generator=g)
    centres = torch.randn(CLASSES, FEATURES, generator=torch.Generator().manual_seed(99))
    x = centres[labels] * 0.6 + torch.randn(n, FEATURES, generator=g)
    if random_labels:
        labels = torch.randint(0, CLASSES, (n,), generator=g)
    return x, labels


def record(out: Path, net: nn.Module, *, lr: float, epochs: int, train_steps: int = 2, n_train: int = 256,
           random_labels: bool = False) -> Path:
    """Full-batch training: ``train_steps`` per epoch, then one EVAL step on a fixed validation batch."""
    import smdebug.pytorch as smd
    from smdebug import modes

    torch.manual_seed(0)
    hook = smd.Hook(out_dir=str(out), save_config=smd.SaveConfig(save_interval=1),
                    include_collections=["losses", "weights", "gradients", "relu_input"])
    hook.get_collection("relu_input").include(".*relu_input")
    loss_fn = nn.CrossEntropyLoss()
    hook.register_module(net)
    hook.register_loss(loss_fn)
    x, y = blobs(n_train, seed=1, random_labels=random_labels)
    x_val, y_val = blobs(2048, seed=2, random_labels=random_labels)
    optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    for _ in range(epochs):
        hook.set_mode(modes.TRAIN)
        for _ in range(train_steps):
            optimizer.zero_grad()
            loss_fn(net(x), y).backward()
            optimizer.step()
        hook.set_mode(modes.EVAL)
        with torch.no_grad():
            loss_fn(net(x_val), y_val)
    hook.close()
    return out


def statuses(trial_dir: Path) -> dict[str, tuple[str, str]]:
    return {r.rule: (r.status, r.detail) for r in run_rules(trial_dir)}


@pytest.fixture(scope="module")
def healthy_trial(tmp_path_factory) -> Path:
    return record(tmp_path_factory.mktemp("healthy") / "trial", kaiming(MLP()), lr=0.01, epochs=12, n_train=2048)


@pytest.fixture(scope="module")
def healthy(healthy_trial) -> dict[str, tuple[str, str]]:
    return statuses(healthy_trial)


@pytest.mark.parametrize("rule", ["VanishingGradient", "Overfit", "Overtraining", "PoorWeightInitialization",
                                  "LossNotDecreasing"])
def test_rule_is_quiet_on_a_healthy_run(healthy, rule):
    status, detail = healthy[rule]
    assert status == NO_ISSUES_FOUND, detail


def test_vanishing_gradient_fires_on_a_deep_sigmoid_net(tmp_path):
    net = MLP(depth=12, activation=nn.Sigmoid)
    for module in net.modules():
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
    status, detail = statuses(record(tmp_path / "trial", net, lr=0.01, epochs=2))["VanishingGradient"]
    assert status == ISSUES_FOUND
    assert re.match(r"mean \|gradient/MLP_fc0\.(weight|bias)\| = [0-9.e-]+ < threshold 1e-07$", detail), detail


def test_overfit_and_overtraining_fire_on_a_tiny_training_set_trained_too_long(tmp_path):
    trial = record(tmp_path / "trial", kaiming(MLP(width=128)), lr=0.05, epochs=16, n_train=12, random_labels=True)
    results = statuses(trial)
    assert results["Overfit"][0] == ISSUES_FOUND and "above the training loss" in results["Overfit"][1]
    assert results["Overtraining"][0] == ISSUES_FOUND and "has not improved" in results["Overtraining"][1]


def test_poor_weight_initialization_fires_on_zero_initialised_layers(tmp_path):
    net = MLP()
    for module in net.modules():
        if isinstance(module, nn.Linear):
            nn.init.zeros_(module.weight)
            nn.init.zeros_(module.bias)
    status, detail = statuses(record(tmp_path / "trial", net, lr=0.01, epochs=3))["PoorWeightInitialization"]
    assert status == ISSUES_FOUND
    assert "variance differs inf-fold" in detail


def test_loss_not_decreasing_fires_when_the_learning_rate_is_zero(tmp_path):
    status, detail = statuses(record(tmp_path / "trial", kaiming(MLP()), lr=0.0, epochs=12))["LossNotDecreasing"]
    assert status == ISSUES_FOUND
    assert "fell 0.000% (EVAL step 0 -> 10)" in detail


def test_rule_without_the_tensors_it_reads_is_not_evaluated(tmp_path):
    import smdebug.pytorch as smd
    from smdebug import modes

    net, loss_fn = kaiming(MLP()), nn.CrossEntropyLoss()
    hook = smd.Hook(out_dir=str(tmp_path / "trial"), save_config=smd.SaveConfig(save_interval=1),
                    include_collections=["losses"])
    hook.register_module(net)
    hook.register_loss(loss_fn)
    hook.set_mode(modes.TRAIN)
    x, y = blobs(32, seed=1)
    for _ in range(3):
        loss_fn(net(x), y).backward()
    hook.close()
    results = {r.rule: r for r in run_rules(tmp_path / "trial")}
    assert results["VanishingGradient"].status == NOT_EVALUATED
    assert results["VanishingGradient"].detail == "no gradient tensors in the trial: save the 'gradients' collection"
    assert results["Overfit"].status == NOT_EVALUATED
    assert results["Overfit"].detail == "CrossEntropyLoss_output_0 needs values in both TRAIN and EVAL mode"


def test_debug_report_prints_the_table_and_writes_json_and_plots(healthy_trial, tmp_path, capsys, monkeypatch):
    import entry_points.debug_report as entry_point

    monkeypatch.setattr("dogbreed.cli.runner.configure_logging", lambda: None)
    assert entry_point.main(["--trial", str(healthy_trial), "--output-dir", str(tmp_path / "report")]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["rule", "status", "step", "detail"]
    assert sum(line.split()[1] == NO_ISSUES_FOUND for line in out.splitlines()[2:7]) == 5
    table = json.loads((tmp_path / "report" / "debug_rules.json").read_text())
    assert [r["rule"] for r in table["rules"]] == ["VanishingGradient", "Overfit", "Overtraining",
                                                   "PoorWeightInitialization", "LossNotDecreasing"]
    assert set(table["rules"][0]) == {"rule", "status", "step", "detail"}
    assert table["trial"] == str(healthy_trial)
    assert [(r["status"], r["step"]) for r in table["rules"]] == [(NO_ISSUES_FOUND, None)] * 5
    printed = {line.split()[0]: line for line in out.splitlines()[2:7]}
    assert all(r["detail"] in printed[r["rule"]] for r in table["rules"])  # the table and the JSON agree
    for png in ("debug_losses.png", "debug_gradient_norms.png"):
        check_plot(tmp_path / "report" / png, (1000, 400))


def test_debug_report_names_a_missing_trial(tmp_path, capsys):
    from entry_points.debug_report import main

    assert main(["--trial", str(tmp_path / "nothing"), "--output-dir", str(tmp_path / "o")]) == 2
    assert "no smdebug trial there (expected an index/ folder)" in capsys.readouterr().err
