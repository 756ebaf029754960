"""A trial's debugger report: the five rules run over every saved step, the table (text + JSON), loss curves and
per-layer gradient norms (PNG)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from dogbreed.diagnostics.rules import (
    ERROR,
    ISSUES_FOUND,
    NO_ISSUES_FOUND,
    NOT_EVALUATED,
    RULE_CLASSES,
    SKIPPABLE,
    InsufficientInformationForRuleInvocation,
    RuleEvaluationConditionMet,
    TrialRule,
    create_trial,
)

RULES_JSON = "debug_rules.json"
LOSS_PLOT = "debug_losses.png"
GRADIENT_PLOT = "debug_gradient_norms.png"


@dataclass
class RuleResult:
    """One row of the table: status is IssuesFound, NoIssuesFound, Error (AWS's rule statuses) or NotEvaluated
    (the trial lacked the data the rule reads)."""

    rule: str
    status: str
    step: int | None
    detail: str


def load_trial(path: str) -> Any:
    """An smdebug trial from a local directory or an ``s3://bucket/prefix``."""
    return create_trial(str(path))


def evaluate_rule(rule: TrialRule) -> RuleResult:
    """Invoke ``rule`` at every saved step, as SageMaker's rule container does, and classify the outcome.
    A rule whose data is missing, or that never had two values to compare, is NotEvaluated, not NoIssuesFound."""
    try:
        rule.check_trial()
        for step in rule.base_trial.steps():
            try:
                rule.invoke(step)
            except SKIPPABLE:
                continue
    except RuleEvaluationConditionMet as met:
        return RuleResult(rule.rule_name, ISSUES_FOUND, int(met.step), rule.detail)
    except InsufficientInformationForRuleInvocation as missing:
        return RuleResult(rule.rule_name, NOT_EVALUATED, None, _insufficient_detail(missing))
    except Exception as exc:  # noqa: BLE001 - a rule that cannot run is reported, like AWS's "Error" status
        return RuleResult(rule.rule_name, ERROR, None, f"{type(exc).__name__}: {exc}")
    if not rule.evaluated:
        return RuleResult(rule.rule_name, NOT_EVALUATED, None,
                          rule.detail or "no saved step held the values this rule compares")
    return RuleResult(rule.rule_name, NO_ISSUES_FOUND, None, rule.detail)


def _insufficient_detail(missing: InsufficientInformationForRuleInvocation) -> str:
    """smdebug's message wraps ours ("Insufficient information to invoke rule X: <ours>"); keep ours."""
    return str(getattr(missing, "message", "") or missing)


def run_rules(trial: Any | str | Path, rules: Sequence[TrialRule] | None = None) -> list[RuleResult]:
    """Evaluate the five rules (AWS defaults) on ``trial`` (an smdebug trial or its path); one row per rule."""
    trial = load_trial(str(trial)) if isinstance(trial, (str, Path)) else trial
    rules = list(rules) if rules is not None else [cls(trial) for cls in RULE_CLASSES]
    return [evaluate_rule(rule) for rule in rules]


def format_table(rows: Sequence[RuleResult]) -> str:
    """A fixed-width table: rule, status, first step, detail."""
    header = f"{'rule':<26} {'status':<14} {'step':>6}  detail"
    lines = [header, "-" * len(header)]
    for row in rows:
        step = "-" if row.step is None else str(row.step)
        lines.append(f"{row.rule:<26} {row.status:<14} {step:>6}  {row.detail}")
    return "\n".join(lines)


def _loss_series(trial: Any) -> dict[str, tuple[list[int], list[float]]]:
    """{'TRAIN': (TRAIN steps, losses), 'EVAL': (EVAL steps, ...)} for the first tensor of the 'losses'
    collection: each mode counts its own steps, so each gets its own axis."""
    from smdebug import modes

    names = sorted(trial.tensor_names(collection="losses"))
    if not names:
        return {}
    tensor = trial.tensor(names[0])
    series: dict[str, tuple[list[int], list[float]]] = {}
    for mode in (modes.TRAIN, modes.EVAL):
        mode_steps = tensor.steps(mode=mode)
        if mode_steps:
            series[mode.name] = (list(mode_steps), [float(tensor.value(s, mode=mode)) for s in mode_steps])
    return series


def _gradient_norms(trial: Any, max_layers: int = 12) -> dict[str, tuple[list[int], list[float]]]:
    """L2 norm per saved step of each weight gradient (at most ``max_layers``, spread over the network)."""
    names = [n for n in trial.tensor_names() if n.startswith("gradient/") and n.endswith("weight")]
    if len(names) > max_layers:
        names = [names[i] for i in np.linspace(0, len(names) - 1, max_layers).round().astype(int)]
    norms = {}
    for name in names:
        tensor = trial.tensor(name)
        steps = tensor.steps()
        norms[name[len("gradient/"):]] = (steps, [float(np.linalg.norm(tensor.value(s))) for s in steps])
    return norms


def _colours(count: int) -> list[Any]:
    """``count`` distinct colours: matplotlib's 10-colour cycle repeats after 10 lines, tab20 holds 20."""
    import matplotlib

    palette = matplotlib.colormaps["tab10" if count <= 10 else "tab20"]
    return [palette(i) for i in range(count)] if count <= 20 else [palette(i / (count - 1)) for i in range(count)]


def loss_figure(series: dict[str, tuple[list[int], list[float]]]) -> Any:
    """One axis per mode (TRAIN, EVAL), each over that mode's own step counter."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(series), figsize=(10, 4), squeeze=False)
    for ax, (mode, (steps, values)) in zip(axes[0], series.items()):
        ax.plot(steps, values, marker="o", markersize=3, color="tab:blue" if mode == "TRAIN" else "tab:orange")
        ax.set(xlabel=f"{mode} step", ylabel="loss", title=f"{mode} loss")
        ax.grid(alpha=0.3)
    return fig


def gradient_figure(series: dict[str, tuple[list[int], list[float]]]) -> Any:
    """One line per layer, each its own colour, on a log scale; the legend beside the axis."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4))
    for (label, (steps, values)), colour in zip(series.items(), _colours(len(series))):
        ax.plot(steps, values, marker="o", markersize=3, label=label, color=colour)
    ax.set_yscale("log")
    ax.set(xlabel="global step", ylabel="norm", title="Gradient L2 norm per layer")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return fig


def _save(figure: Callable[[dict[str, tuple[list[int], list[float]]]], Any],
          series: dict[str, tuple[list[int], list[float]]], path: Path) -> Path | None:
    if not series:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = figure(series)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_debug_report(trial_path: str | Path, output_dir: Path) -> tuple[list[RuleResult], list[Path]]:
    """Run the rules on the trial and write the JSON table and the two plots into ``output_dir``."""
    trial = load_trial(str(trial_path))
    rows = run_rules(trial)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / RULES_JSON).write_text(json.dumps(
        {"trial": str(trial_path), "rules": [asdict(r) for r in rows]}, indent=2) + "\n")
    plots = [_save(loss_figure, _loss_series(trial), output_dir / LOSS_PLOT),
             _save(gradient_figure, _gradient_norms(trial), output_dir / GRADIENT_PLOT)]
    return rows, [p for p in plots if p is not None]
