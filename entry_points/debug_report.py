"""Evaluate the Debugger rules on an smdebug trial and plot it.

``python -m entry_points.debug_report --trial DIR_OR_S3 [--output-dir O]`` prints the rule table and
writes ``debug_rules.json``, ``debug_losses.png`` and ``debug_gradient_norms.png`` into O.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from dogbreed.errors import DogBreedError
from dogbreed.logging_setup import configure_logging


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m entry_points.debug_report", description=__doc__.splitlines()[0])
    parser.add_argument("--trial", required=True, help="smdebug trial: a local directory or s3://bucket/prefix")
    parser.add_argument("--output-dir", type=Path, default=Path("outputs/debug-report"),
                        help="where the JSON table and the plots go (default: outputs/debug-report)")
    args = parser.parse_args(argv)
    configure_logging()
    trial = args.trial
    if not trial.startswith("s3://") and not (Path(trial) / "index").is_dir():
        print(f"error: --trial {trial}: no smdebug trial there (expected an index/ folder); "
              "pass the --debug-dir of a profiled run or the job's S3 debug-output path", file=sys.stderr)
        return 2
    try:
        from dogbreed.debug_report import format_table, write_debug_report

        rows, plots = write_debug_report(trial, args.output_dir)
    except DogBreedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_table(rows))
    print(f"table: {args.output_dir / 'debug_rules.json'}  plots: {', '.join(str(p) for p in plots)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
