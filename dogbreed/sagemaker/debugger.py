"""SageMaker SDK (v2) objects for a Debugger + profiler training job; the notebook passes them to the estimator.

The original project's configuration, minus ``FrameworkProfile``: framework profiling is deprecated from
PyTorch 2.0 (the SDK warns and collects nothing), so only system monitoring is asked for; operator-level
profiling comes from ``--profiler pytorch`` inside the job instead. ``sagemaker`` is imported lazily.
"""

from __future__ import annotations

from typing import Any

TRAIN_SAVE_INTERVAL = 100
EVAL_SAVE_INTERVAL = 10
SYSTEM_MONITOR_INTERVAL_MS = 500


def debugger_rules() -> list[Any]:
    """The original project's five rules: four tensor rules and the profiler report."""
    from sagemaker.debugger import ProfilerRule, Rule, rule_configs

    return [
        Rule.sagemaker(rule_configs.vanishing_gradient()),
        Rule.sagemaker(rule_configs.overfit()),
        Rule.sagemaker(rule_configs.overtraining()),
        Rule.sagemaker(rule_configs.poor_weight_initialization()),
        ProfilerRule.sagemaker(rule_configs.ProfilerReport()),
    ]


def debugger_hook_config(s3_output_path: str | None = None, *, train_interval: int = TRAIN_SAVE_INTERVAL,
                         eval_interval: int = EVAL_SAVE_INTERVAL) -> Any:
    """Save tensors every ``train_interval`` TRAIN steps and every ``eval_interval`` EVAL steps."""
    from sagemaker.debugger import DebuggerHookConfig

    return DebuggerHookConfig(
        s3_output_path=s3_output_path,
        hook_parameters={"train.save_interval": str(train_interval), "eval.save_interval": str(eval_interval)},
    )


def profiler_config(interval_ms: int = SYSTEM_MONITOR_INTERVAL_MS) -> Any:
    """System monitoring (CPU/GPU/memory/network) every ``interval_ms``; no deprecated framework profiling."""
    from sagemaker.debugger import ProfilerConfig

    return ProfilerConfig(system_monitor_interval_millis=interval_ms)


def debugging_estimator_kwargs(s3_output_path: str | None = None) -> dict[str, Any]:
    """``rules``, ``debugger_hook_config`` and ``profiler_config`` for ``sagemaker.pytorch.PyTorch(...)``."""
    return {
        "rules": debugger_rules(),
        "debugger_hook_config": debugger_hook_config(s3_output_path),
        "profiler_config": profiler_config(),
    }
