"""The Debugger path says what it did not check: NotEvaluated for rules without data, smdebug's own INFO flood
turned down, and precision forced to 32-true (with a log line) whenever smdebug collects tensors."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from dogbreed.diagnostics import run_policy
from tests.helpers.builders import fast_config
from tests.helpers.smdebug_policy import needs_smdebug

REPO = Path(__file__).resolve().parents[2]
# The project's smdebug policy: a skip only when smdebug is absent and CI is not set; a broken smdebug fails.
pytestmark = needs_smdebug


def _short_train_only_trial(path: Path, steps: int = 3) -> Path:
    """Losses and gradients for ``steps`` TRAIN steps only: no EVAL step, too few steps to compare anything."""
    import smdebug.pytorch as smd
    from smdebug import modes

    torch.manual_seed(0)
    net, loss_fn = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3)), nn.CrossEntropyLoss()
    hook = smd.Hook(out_dir=str(path), save_config=smd.SaveConfig(save_interval=1),
                    include_collections=["losses", "gradients"])
    hook.register_module(net)
    hook.register_loss(loss_fn)
    hook.set_mode(modes.TRAIN)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    for _ in range(steps):
        optimizer.zero_grad()
        loss_fn(net(torch.randn(16, 8)), torch.randint(0, 3, (16,))).backward()
        optimizer.step()
    hook.close()
    return path


def test_rules_that_could_compare_nothing_are_not_evaluated(tmp_path):
    from dogbreed.diagnostics.rule_report import run_rules
    from dogbreed.diagnostics.rules import NO_ISSUES_FOUND, NOT_EVALUATED

    results = {r.rule: r for r in run_rules(_short_train_only_trial(tmp_path / "trial"))}
    assert results["VanishingGradient"].status == NO_ISSUES_FOUND  # it had gradients to check at every step
    assert results["Overfit"].status == NOT_EVALUATED
    assert results["Overfit"].detail == "CrossEntropyLoss_output_0 needs values in both TRAIN and EVAL mode"
    assert results["LossNotDecreasing"].status == NOT_EVALUATED
    assert results["LossNotDecreasing"].detail == "not checked: needs two TRAIN losses 10 steps apart"
    # Three TRAIN losses are compared with each other: Overtraining and PoorWeightInitialization did check.
    assert results["Overtraining"].status == NO_ISSUES_FOUND
    assert results["PoorWeightInitialization"].status == NO_ISSUES_FOUND
    assert all(r.step is None for r in results.values())


def test_a_rule_with_a_single_value_is_not_evaluated(tmp_path):
    from dogbreed.diagnostics.rule_report import run_rules
    from dogbreed.diagnostics.rules import NOT_EVALUATED

    results = {r.rule: r for r in run_rules(_short_train_only_trial(tmp_path / "trial", steps=1))}
    assert results["Overtraining"].status == NOT_EVALUATED
    assert results["Overtraining"].detail == "no saved step held the values this rule compares"


@pytest.mark.slow  # a training run or subprocess: make test, not make test-quick
def test_debug_report_keeps_smdebugs_info_lines_out_and_shows_not_evaluated(tmp_path):
    trial = _short_train_only_trial(tmp_path / "trial")
    proc = subprocess.run([sys.executable, "-m", "entry_points.debug_report", "--trial", str(trial),
                           "--output-dir", str(tmp_path / "report")], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["rule", "status", "step", "detail"]
    assert [line.split()[1] for line in lines[2:7]] == ["NoIssuesFound", "NotEvaluated", "NoIssuesFound",
                                                        "NoIssuesFound", "NotEvaluated"]
    # smdebug logs "[<time> host:pid INFO trial.py:...] Loading trial ..." lines by default.
    assert not [line for line in (proc.stdout + proc.stderr).splitlines() if " INFO " in line and ".py:" in line]


@pytest.mark.parametrize("asked", ["bf16-mixed", "16-mixed", "32-true"])
def test_precision_is_32_true_while_smdebug_collects_and_the_log_says_so(tmp_path, tiny_tree, monkeypatch, caplog,
                                                                          asked):
    seen = {}
    monkeypatch.setattr(run_policy, "train", lambda config, **kw: seen.setdefault("config", config))
    config = fast_config(tmp_path, tiny_tree, precision=asked, debug_dir=tmp_path / "trial")
    with caplog.at_level(logging.WARNING, logger="dogbreed.diagnostics.run_policy"):
        run_policy.train_with_diagnostics(config)
    assert seen["config"].runtime.precision == "32-true"
    messages = [r.getMessage() for r in caplog.records]
    if asked == "32-true":
        assert messages == []
    else:
        assert messages == [f"precision {asked} -> 32-true for this run: smdebug collects tensors (Debugger config or "
                            f"--debug-dir) and cannot save {asked.split('-')[0]} tensors"]


def test_precision_is_left_alone_without_smdebug(tmp_path, tiny_tree, monkeypatch):
    seen = {}
    monkeypatch.setattr(run_policy, "train", lambda config, **kw: seen.setdefault("config", config))
    run_policy.train_with_diagnostics(fast_config(tmp_path, tiny_tree, precision="bf16-mixed"))
    assert seen["config"].runtime.precision == "bf16-mixed"
