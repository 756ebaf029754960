"""``python -m entry_points.profiled_train``: training with Lightning's PyTorch profiler, the system monitor and the
data-wait timer on, and an smdebug trial where smdebug can run (see :mod:`dogbreed.diagnostics.run_policy` for the
defaults). The profile goes to the run's profile dir: ``--profile-dir``, else ``<output-dir>/profile`` locally and
the TensorBoard output path in a SageMaker job (:func:`dogbreed.sagemaker.environment.config_defaults`)."""

from __future__ import annotations

from typing import Sequence

from dogbreed.cli.run_claim import claimed_outputs
from dogbreed.cli.runner import run_command
from dogbreed.config.parser import parse_command
from dogbreed.sagemaker.environment import config_defaults, in_sagemaker_training, runtime

PROG = "python -m entry_points.profiled_train"
DESCRIPTION = ("Training with a profiler on: the same options as entry_points.train; --profiler defaults to "
               "pytorch (Lightning's PyTorchProfiler, a TensorBoard-readable trace) plus system utilisation and "
               "data-wait timing, written with profiler_report.md to --profile-dir (default <output-dir>/profile; "
               "in a SageMaker job the TensorBoard output path). smdebug is optional: locally a trial goes to "
               "<output-dir>/debug-trial when smdebug is installed; in a job only with --debug-dir, on an image "
               "that can hold it.")


# The options whose default differs here from entry_points.train (dogbreed.diagnostics.run_policy applies them).
HELP_OVERRIDES = {
    "profiler": "Lightning profiler: simple, advanced or pytorch (default here: pytorch)",
    "debug_dir": "where the smdebug trial goes (default here: <output-dir>/debug-trial when smdebug is installed, "
                 "none in a SageMaker job; refused where smdebug cannot run, e.g. the AL2023 PyTorch images)",
}


def profiled_train_command(argv: Sequence[str] | None) -> str:
    parsed = parse_command(argv, prog=PROG, description=DESCRIPTION, environment_defaults=config_defaults(),
                           help_overrides=HELP_OVERRIDES)
    from dogbreed.diagnostics.run_policy import profiled_config, train_with_diagnostics

    config = profiled_config(parsed.config, default_trial=not in_sagemaker_training())
    with claimed_outputs(config):
        result = train_with_diagnostics(config, runtime=runtime())
    trial = config.diagnostics.debug_dir or "none"
    profile = config.diagnostics.profile_dir_for(config.outputs.output_dir)
    return (f"model artifact: {result.model_dir}/  profile: {profile}/  debug trial: {trial}\n"
            f"report again from this or a job's output: python -m entry_points.profile_report {profile} "
            "--out DIR")


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(lambda: profiled_train_command(argv))
