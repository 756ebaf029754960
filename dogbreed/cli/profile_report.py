"""``python -m entry_points.profile_report SOURCE --out DIR``: a profiled run's report (the bottleneck in words,
the batch-size advice, the plots) built from what the run wrote, the same way for a local run and a SageMaker job.

SOURCE is a dir (a run's ``--profile-dir`` or ``--output-dir``, an unpacked job output), a job's ``output.tar.gz``,
or an ``s3://`` prefix: the job's ``<job-name>/tensorboard-output/`` (where SageMaker syncs the TensorBoard path the
profile goes to) or its ``<job-name>/output/`` (``output.tar.gz``). Only the report's inputs are downloaded
(``profile_run.json``, ``utilisation.csv``, ``step_times.csv``; not the traces). smdebug is not needed.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Sequence

from dogbreed.cli.runner import run_command
from dogbreed.config.parser import CommandParser
from dogbreed.core.fileio import check_writable_dir

PROG = "python -m entry_points.profile_report"
DEFAULT_OUT = Path("outputs/profile-report")


def build_parser() -> CommandParser:
    parser = CommandParser(prog=PROG,
                           description="Build a profiled run's report (bottleneck, batch-size advice, plots) from "
                                       "its output: a local dir, a job's output.tar.gz or an s3:// prefix.")
    parser.add_argument("source", metavar="SOURCE",
                        help="a profiled run's --profile-dir or --output-dir, a SageMaker job's output.tar.gz, or "
                             "s3://bucket/prefix/<job-name>/tensorboard-output/ (or .../output/)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"where profiler_report.md and its plots go (default: {DEFAULT_OUT})")
    return parser


def _local_root(source: str, work: Path) -> Path:
    """A local dir holding SOURCE's files: SOURCE itself, an unpacked archive, or what S3 held (archives
    among it unpacked)."""
    from dogbreed.diagnostics.profile_data import REPORT_INPUTS, no_profile_data
    from dogbreed.sagemaker.job_output import download_prefix, is_archive, unpack_output_archive

    if source.startswith("s3://"):
        files, skipped = download_prefix(source, work / "s3", wanted=lambda key: key.rsplit("/", 1)[-1] in
                                         REPORT_INPUTS or is_archive(key))
        if not files:
            raise no_profile_data(source, skipped)
        for archive in (f for f in files if is_archive(f.name)):
            unpack_output_archive(archive, archive.with_name(archive.name + ".unpacked"))
        return work / "s3"
    if is_archive(source):
        return unpack_output_archive(Path(source), work / "archive")
    return Path(source)


def _where(source: str, root: Path, profile: Path) -> str:
    """Where the profile lies, as the user named it."""
    if profile == Path(source):
        return str(profile)
    relative = profile.relative_to(root).as_posix()
    return source if relative == "." else f"{source.rstrip('/')} ({relative})"


def profile_report_command(argv: Sequence[str] | None) -> str:
    args = build_parser().parse_args(argv)
    check_writable_dir(args.out, "--out")  # before any download
    from dogbreed.diagnostics.profile_data import find_profile_dir, read_profile_data
    from dogbreed.diagnostics.profile_report import analyse, write_profile_report

    with tempfile.TemporaryDirectory(prefix="dogbreed-profile-") as work:
        root = _local_root(args.source, Path(work))
        profile = find_profile_dir(root, source=args.source)
        samples, facts = read_profile_data(profile)
        report = write_profile_report(args.out, samples, facts, data_dir=_where(args.source, root, profile))
    return f"Bottleneck: {analyse(samples, facts).bottleneck}\nreport: {report}"


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(lambda: profile_report_command(argv))
