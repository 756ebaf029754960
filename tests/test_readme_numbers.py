"""The demo figures the README and the docs quote come from a demo run: each quoted number is pinned to its place
in ``metrics.json`` and compared at the precision it is printed with, so a changed demo cannot leave stale numbers
behind (the slow test runs ``make demo``'s command in a temp dir)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
_N = r"(\d+\.\d+|\d+)"
# (file, pattern with one number group, path in metrics.json). Pinned: every quoted demo figure is here.
QUOTED = [
    ("README.md", rf"reports test accuracy with its\n95% interval \({_N} \[", ("test", "acc")),
    ("README.md", rf"95% interval \(\d\.\d+ \[{_N}, ", ("test", "acc_ci95", 0)),
    ("README.md", rf"95% interval \(\d\.\d+ \[\d\.\d+, {_N}\] on our machine", ("test", "acc_ci95", 1)),
    ("docs/getting-started.md", rf"reports test accuracy with its\n95% interval \({_N} \[", ("test", "acc")),
    ("docs/calibration.md", rf"\(the demo on our machine: `test_acc {_N} \[", ("test", "acc")),
    ("docs/calibration.md", rf"\(the demo on our machine: `test_acc \d\.\d+ \[{_N}, ", ("test", "acc_ci95", 0)),
    ("docs/calibration.md", rf"\(the demo on our machine: `test_acc \d\.\d+ \[\d\.\d+, {_N}\]",
     ("test", "acc_ci95", 1)),
    ("docs/calibration.md", rf'"abstention": {{"applied": true, "score": "max_probability", "threshold": {_N}',
     ("abstention", "threshold")),
    ("docs/calibration.md", rf'"accept_rate": {{"test": {_N}', ("abstention", "accept_rate", "test")),
    ("docs/calibration.md", rf'"accept_rate": {{"test": \d\.\d+, "ood": {_N}', ("abstention", "accept_rate", "ood")),
    ("docs/calibration.md", rf"held-out halves \(AUROC {_N}, at least", ("abstention", "auroc_check")),
    ("docs/calibration.md", rf"its threshold, {_N}, turns away", ("abstention", "threshold")),
    ("docs/calibration.md", rf'"calibration": {{"applied": false, "temperature": {_N}', ("calibration", "temperature")),
    ("docs/calibration.md", rf'"wrong_answers": {_N}, "min_wrong_answers"', ("calibration", "wrong_answers")),
    ("docs/calibration.md", rf'"accept_rate_check": {{"valid": {_N}', ("abstention", "accept_rate_check", "valid")),
    ("docs/calibration.md", rf'"accept_rate_check": {{"valid": \d\.\d+, "ood": {_N}',
     ("abstention", "accept_rate_check", "ood")),
    ("docs/calibration.md", rf'"test": {{"ece_before": {_N}', ("calibration", "test", "ece_before")),
    ("docs/calibration.md", rf'"ece_after": {_N}', ("calibration", "test", "ece_after")),
    ("docs/calibration.md", rf'"ece_after_ci95": \[{_N}, ', ("calibration", "test", "ece_after_ci95", 0)),
    ("docs/calibration.md", rf'"ece_after_ci95": \[\d\.\d+, {_N}\]', ("calibration", "test", "ece_after_ci95", 1)),
    ("docs/calibration.md", rf'"nll_before": {_N}', ("calibration", "test", "nll_before")),
    ("docs/calibration.md", rf'"nll_after": {_N}', ("calibration", "test", "nll_after")),
    ("docs/calibration.md", rf'"auroc_check": {_N}', ("abstention", "auroc_check")),
    ("docs/calibration.md", rf'"auroc_test_vs_ood": {{"max_probability": {_N}',
     ("abstention", "auroc_test_vs_ood", "max_probability")),
    ("docs/calibration.md", rf'"auroc_test_vs_ood": {{"max_probability": \d\.\d+, "energy": {_N}',
     ("abstention", "auroc_test_vs_ood", "energy")),
    ("docs/calibration.md", rf'"auroc_test_vs_ood_ci95": \[{_N}, ', ("abstention", "auroc_test_vs_ood_ci95", 0)),
    ("docs/calibration.md", rf'"auroc_test_vs_ood_ci95": \[\d\.\d+, {_N}\]',
     ("abstention", "auroc_test_vs_ood_ci95", 1)),
    ("docs/calibration.md", rf'"quality": {{"better_than_chance": true, "test": {{"acc": {_N}',
     ("quality", "test", "acc")),
    ("docs/calibration.md", rf'"correct": {_N}, "images": 60', ("quality", "test", "correct")),
    ("docs/calibration.md", rf'"test": {{"acc": \d\.\d+, "acc_ci95": \[{_N}, ', ("test", "acc_ci95", 0)),
    ("docs/calibration.md", rf'"test": {{"acc": \d\.\d+, "acc_ci95": \[\d\.\d+, {_N}\]', ("test", "acc_ci95", 1)),
]


def _value(metrics: dict[str, Any], path: tuple) -> Any:
    value: Any = metrics
    for key in path:
        value = value[key]
    return value


def stale_figures(metrics: dict[str, Any], root: Path = REPO) -> list[str]:
    """Every quoted figure that is missing from its file or differs from ``metrics`` at its printed precision."""
    problems = []
    for name, pattern, path in QUOTED:
        match = re.search(pattern, (root / name).read_text(encoding="utf-8"))
        if match is None:
            problems.append(f"{name}: no figure matches {pattern!r}")
            continue
        quoted = match.group(1)
        decimals = len(quoted.split(".")[1]) if "." in quoted else 0
        actual = _value(metrics, path)
        if f"{float(actual):.{decimals}f}" != quoted:
            problems.append(f"{name}: quotes {quoted} for {'.'.join(map(str, path))}, the demo run gives {actual}")
    return problems


def _metrics_from_the_docs() -> dict[str, Any]:
    """A metrics dict holding exactly the quoted numbers (to show the checker passes and then fails)."""
    metrics: dict[str, Any] = {}
    for name, pattern, path in QUOTED:
        match = re.search(pattern, (REPO / name).read_text(encoding="utf-8"))
        assert match is not None, f"{name}: the quoted demo figure {pattern!r} is gone"
        node = metrics
        for key, following in zip(path[:-1], path[1:]):
            node = node.setdefault(key, [0.0, 0.0] if isinstance(following, int) else {})
        node[path[-1]] = float(match.group(1))
    return metrics


def test_every_pinned_figure_is_quoted_and_a_changed_one_is_caught():
    metrics = _metrics_from_the_docs()
    assert stale_figures(metrics) == []
    metrics["calibration"]["temperature"] += 0.1  # quoted as 1.0
    metrics["test"]["acc_ci95"][0] -= 0.01
    problems = stale_figures(metrics)
    assert len(problems) == 4  # the temperature once, the interval's low end in README and twice in calibration.md
    # Each problem whole, in QUOTED's order; only the quoted figure is a pattern: it is whatever the docs print now
    # (refreshed from a demo run on the machine QUOTED_ON names), so a refresh of the docs needs no edit here.
    low, temperature = metrics["test"]["acc_ci95"][0], metrics["calibration"]["temperature"]
    expected = [("README.md", "test.acc_ci95.0", low), ("docs/calibration.md", "test.acc_ci95.0", low),
                ("docs/calibration.md", "calibration.temperature", temperature),
                ("docs/calibration.md", "test.acc_ci95.0", low)]
    for problem, (name, key, gives) in zip(problems, expected):
        pattern = re.escape(f"{name}: quotes ") + _N + re.escape(f" for {key}, the demo run gives {gives}")
        assert re.fullmatch(pattern, problem), problem


# The floating-point environment the quoted figures come from (docs/calibration.md names the machine). Training
# rounds differently on other CPU kernels (ATen and oneDNN pick AVX2, AVX-512 or AMX code, summing in other
# orders), and 4 epochs from scratch amplify that: an AVX2-only CPU's demo gave test accuracy 0.983, not 1.000,
# and wrote no abstention rule. The figures are compared exactly in this environment; elsewhere the demo's
# acceptance and the consistency of its decisions are still checked, and the differing figures are reported.
QUOTED_ON = {"torch": "2.14.1", "cpu_capability": "AVX512", "amx": True, "threads": 2}


def floating_point_environment(env: dict[str, str]) -> dict[str, Any]:
    """What decides the demo's rounding, as seen by a process started like the demo."""
    probe = ("import json, torch; print(json.dumps({'torch': torch.__version__.split('+')[0], "
             "'cpu_capability': torch.backends.cpu.get_cpu_capability(), 'threads': torch.get_num_threads()}))")
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    found = json.loads(done.stdout)
    cpuinfo = Path("/proc/cpuinfo")
    found["amx"] = cpuinfo.is_file() and " amx_bf16" in cpuinfo.read_text()
    return {key: found[key] for key in QUOTED_ON}


def test_the_environment_probe_names_what_decides_the_rounding():
    env = floating_point_environment({**os.environ})
    assert set(env) == {"torch", "cpu_capability", "amx", "threads"}
    assert env["cpu_capability"] in {"DEFAULT", "AVX2", "AVX512", "ZVECTOR", "VSX", "SVE256", "NEON"}
    assert isinstance(env["amx"], bool) and env["threads"] >= 1 and env["torch"][0].isdigit()


def check_demo_decisions(metrics: dict[str, Any]) -> None:
    """Issue 21's demo acceptance, and each trust feature's decision consistent with its own held-out check."""
    assert metrics["quality"]["better_than_chance"] is True
    assert metrics["test"]["acc_ci95"][0] >= 0.9
    calibration = metrics["calibration"]
    wrong = calibration["wrong_answers"]
    if wrong < 4:  # too few wrong validation answers to fit and check a temperature: T = 1, with the reason
        assert calibration["applied"] is False and calibration["temperature"] == 1.0
        assert calibration["reason"].startswith(
            f"{wrong} wrong answer{'' if wrong == 1 else 's'} in 50 validation images: at least 4 are needed")
    abstention = metrics["abstention"]
    turned_away = 1 - abstention["accept_rate_check"]["ood"]
    passes = abstention["auroc_check"] >= 0.7 and turned_away >= 0.25
    assert abstention["applied"] is passes and ("threshold" in abstention) is passes
    if not passes:
        assert abstention["reason"].startswith(f"the {abstention['score']} rule ")


def test_demo_decisions_are_checked_for_consistency():
    on = {"quality": {"better_than_chance": True}, "test": {"acc_ci95": [0.95, 1.0]},
          "calibration": {"wrong_answers": 0, "applied": False, "temperature": 1.0,
                          "reason": "0 wrong answers in 50 validation images: at least 4 are needed (...)"},
          "abstention": {"accept_rate_check": {"valid": 0.92, "ood": 0.25}, "auroc_check": 0.789, "applied": True,
                         "threshold": 0.96, "score": "max_probability"}}
    check_demo_decisions(on)
    with pytest.raises(AssertionError):  # a rule that passes both checks but was not written
        check_demo_decisions({**on, "abstention": {**on["abstention"], "applied": False}})
    with pytest.raises(AssertionError):  # a rule written although it turns away only 6% of the non-dog images
        check_demo_decisions({**on, "abstention": {**on["abstention"], "accept_rate_check": {"ood": 0.9375}}})
    with pytest.raises(AssertionError):  # the reason miscounts the wrong answers
        check_demo_decisions({**on, "calibration": {**on["calibration"], "wrong_answers": 1}})


@pytest.mark.slow
def test_the_quoted_demo_figures_match_a_demo_run(tmp_path):
    """``make demo``'s command in a temp dir; also issue 21's demo acceptance: the model better than chance, test
    accuracy's interval above 0.9, calibration and abstention each applied exactly when its held-out check passes
    (see docs/calibration.md), and, in the environment the docs quote, every quoted figure."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "entry_points.train", "--demo"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=3000)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((tmp_path / "outputs" / "reports" / "metrics.json").read_text())
    check_demo_decisions(metrics)
    here = floating_point_environment(env)
    if here == QUOTED_ON:
        assert stale_figures(metrics) == []
    else:
        warnings.warn(f"the docs quote a demo run on {QUOTED_ON}, this machine is {here}: figures compared only for "
                      f"consistency; differing here: {stale_figures(metrics)}", stacklevel=1)
    assert "test_acc " in done.stdout and "better than chance" in done.stdout
