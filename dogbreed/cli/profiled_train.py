"""``python -m entry_points.profiled_train``: training with a profiler and smdebug on (see
:mod:`dogbreed.diagnostics.run_policy` for the defaults)."""

from __future__ import annotations

from typing import Sequence

from dogbreed.cli.run_claim import claimed_outputs
from dogbreed.cli.runner import run_command
from dogbreed.config.parser import parse_command
from dogbreed.sagemaker.environment import config_defaults, runtime

PROG = "python -m entry_points.profiled_train"
DESCRIPTION = ("Training with a profiler and smdebug on: the same options as entry_points.train; --profiler "
               "defaults to simple and the smdebug trial to <output-dir>/debug-trial (a SageMaker Debugger "
               "config wins in a job). Outputs: <output-dir>/profile/ and the trial.")


# The options whose default differs here from entry_points.train (dogbreed.diagnostics.run_policy applies them).
HELP_OVERRIDES = {
    "profiler": "Lightning profiler: simple, advanced or pytorch (default here: simple)",
    "debug_dir": "where the smdebug trial goes (default here: <output-dir>/debug-trial; in a SageMaker job "
                 "the Debugger config wins)",
}


def profiled_train_command(argv: Sequence[str] | None) -> str:
    parsed = parse_command(argv, prog=PROG, description=DESCRIPTION, environment_defaults=config_defaults(),
                           help_overrides=HELP_OVERRIDES)
    from dogbreed.diagnostics.profiling import profile_dir
    from dogbreed.diagnostics.run_policy import profiled_config, train_with_diagnostics

    config = profiled_config(parsed.config)
    with claimed_outputs(config):
        result = train_with_diagnostics(config, runtime=runtime())
    trial = config.diagnostics.debug_dir or "the SageMaker Debugger output (S3)"
    profile = profile_dir(config.outputs.output_dir)
    return f"model artifact: {result.model_dir}/  profile: {profile}/  debug trial: {trial}"


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(lambda: profiled_train_command(argv))
