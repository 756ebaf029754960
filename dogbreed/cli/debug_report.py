"""``python -m entry_points.debug_report``: the Debugger rules on an smdebug trial, with plots.

``--trial DIR_OR_S3 [--output-dir O]`` prints the rule table and writes ``debug_rules.json``,
``debug_losses.png`` and ``debug_gradient_norms.png`` into O.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from dogbreed.cli.runner import run_command
from dogbreed.config.parser import CommandParser
from dogbreed.core.errors import ConfigError

PROG = "python -m entry_points.debug_report"


def build_parser() -> CommandParser:
    parser = CommandParser(prog=PROG,
                           description="Evaluate the Debugger rules on an smdebug trial and plot it.")
    parser.add_argument("--trial", required=True, help="smdebug trial: a local directory or s3://bucket/prefix")
    parser.add_argument("--output-dir", "--output_dir", type=Path, default=Path("outputs/debug-report"),
                        help="where the JSON table and the plots go (default: outputs/debug-report)")
    return parser


def debug_report_command(argv: Sequence[str] | None) -> str:
    args = build_parser().parse_args(argv)
    trial = args.trial
    if not trial.startswith("s3://") and not (Path(trial) / "index").is_dir():
        raise ConfigError(f"--trial {trial}: no smdebug trial there (expected an index/ folder); "
                          "pass the --debug-dir of a profiled run or the job's S3 debug-output path")
    from dogbreed.diagnostics.rule_report import RULES_JSON, format_table, write_debug_report

    rows, plots = write_debug_report(trial, args.output_dir)
    return (f"{format_table(rows)}\n"
            f"table: {args.output_dir / RULES_JSON}  plots: {', '.join(str(p) for p in plots)}")


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(lambda: debug_report_command(argv))
