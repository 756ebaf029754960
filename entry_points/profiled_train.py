"""Training with smdebug and a profiler on: ``python -m entry_points.profiled_train --help``.

Same options as ``entry_points.train``. Defaults: ``--profiler simple``; locally the smdebug trial goes to
``<output-dir>/debug-trial``; in a SageMaker job configured with Debugger, its hook config wins.
Outputs: ``<output-dir>/profile/`` (profiler output, utilisation, profiler_report.md) and the trial.
"""

from __future__ import annotations

import sys
from typing import Sequence

from dogbreed.config import parse_config
from dogbreed.errors import DogBreedError
from dogbreed.logging_setup import configure_logging
from dogbreed.sagemaker_env import config_defaults

PROG = "python -m entry_points.profiled_train"


def main(argv: Sequence[str] | None = None) -> int:
    configure_logging()
    try:
        from dogbreed.profiling import profile_dir, with_profiling_defaults

        config = with_profiling_defaults(parse_config(argv, prog=PROG, environment_defaults=config_defaults()))
        from dogbreed.training import train  # heavy imports after the flags are known to be valid

        result = train(config)
    except DogBreedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    trial = config.debug_dir or "the SageMaker Debugger output (S3)"
    print(f"model artifact: {result.model_dir}/  profile: {profile_dir(config)}/  debug trial: {trial}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
