"""``python -m entry_points.serve``: SageMaker's PyTorch serving stack (toolkit + TorchServe) on 127.0.0.1."""

from __future__ import annotations

import argparse
import math
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Sequence

from dogbreed.cli.runner import Outcome, run_command
from dogbreed.config.parser import CommandParser
from dogbreed.core.errors import ConfigError
from dogbreed.core.fileio import check_writable_dir

PROG = "python -m entry_points.serve"
ARCHIVE_CODE_NOTE = (
    "note: {archive} carries code/inference.py, which the endpoint runs as Python code with your rights (that is "
    "how SageMaker serves an archive): serve only archives you trust, or pass --own-code to serve its weights "
    "with this dogbreed's own handlers"
)


def build_parser() -> CommandParser:
    parser = CommandParser(prog=PROG,
                           description="Serve a model locally with the SageMaker PyTorch serving stack.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model-dir", "--model_dir", type=Path, help="a model dir written by training")
    source.add_argument("--model-data", "--model_data", type=Path, help="a model.tar.gz from entry_points.package "
                        "(its code/inference.py is executed: serve archives you trust, or add --own-code)")
    parser.add_argument("--own-code", "--own_code", action="store_true",
                        help="with --model-data: take only model.pth and model_config.json from the archive and "
                             "serve them with this dogbreed's handlers; the archive's code/ is never unpacked")
    parser.add_argument("--port", type=int, default=8080, help="HTTP port on 127.0.0.1 (default: 8080; "
                        "TorchServe behind it uses port+1, metrics and gRPC port+2..port+4)")
    parser.add_argument("--workers", type=int, default=1, help="model worker processes (default: 1)")
    parser.add_argument("--work-dir", "--work_dir", type=Path, default=None,
                        help="where everything is written (default: a temp dir removed on exit)")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for the model to load")
    parser.add_argument("--response-timeout", "--response_timeout", type=int, default=60,
                        help="seconds TorchServe gives one request before answering 500 (default: 60)")
    return parser


MAX_WORKERS = 64  # each worker is a Python process holding its own copy of the model
MAX_TIMEOUT_S = 24 * 3600  # --timeout and --response-timeout: a day is a typo guard, not a wait anyone wants


def check_arguments(args: argparse.Namespace) -> None:
    """Refuse bad values before any directory is made or Java starts (``--timeout nan`` used to start the server,
    fail, and leave its temp dir behind)."""
    if not (math.isfinite(args.timeout) and 0 < args.timeout <= MAX_TIMEOUT_S):
        raise ConfigError(f"--timeout must be a finite number above 0 and at most {MAX_TIMEOUT_S} (the seconds to "
                          f"wait for the model to load; default: 180), got {args.timeout}")
    if not 1 <= args.response_timeout <= MAX_TIMEOUT_S:
        raise ConfigError(f"--response-timeout must be between 1 and {MAX_TIMEOUT_S} seconds (default: 60), got "
                          f"{args.response_timeout}")
    if not 1 <= args.workers <= MAX_WORKERS:
        raise ConfigError(f"--workers must be between 1 and {MAX_WORKERS} (each worker process holds its own copy "
                          f"of the model), got {args.workers}")
    if args.work_dir is not None:
        check_writable_dir(args.work_dir, "--work-dir")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _warn_if_at_chance(model_root: Path) -> None:
    """One line on stderr when the served model was no better than chance when trained."""
    from dogbreed.core.errors import ArtifactError
    from dogbreed.serving.artifact import quality_warning, read_model_config

    try:
        warning = quality_warning(read_model_config(model_root))
    except ArtifactError:  # the endpoint loaded it; a config it cannot read here adds no warning
        return
    if warning:
        print(warning, file=sys.stderr, flush=True)


def serve_command(argv: Sequence[str] | None) -> Outcome:
    args = build_parser().parse_args(argv)
    check_arguments(args)
    from dogbreed.serving.local_endpoint import STOP_SIGNALS, LocalEndpoint, ServeError, serve_until_interrupted

    if args.own_code and args.model_data is None:
        raise ServeError("--own-code applies to --model-data (an archive); a --model-dir is always served with "
                         "this dogbreed's handlers")
    # Also while starting (SIGHUP too: a closed terminal): never leave a server or a temp dir behind.
    previous = {signum: signal.signal(signum, _interrupt) for signum in STOP_SIGNALS}
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="dogbreed-serve-"))
    keep_work_dir = args.work_dir is not None
    try:
        endpoint = LocalEndpoint(work_dir, model_dir=args.model_dir, model_data=args.model_data, port=args.port,
                                 workers=args.workers, own_code=args.own_code,
                                 response_timeout=args.response_timeout)
        endpoint.check_model_source()  # a missing model is named before any note or server check
        if args.model_data is not None and not args.own_code:
            print(ARCHIVE_CODE_NOTE.format(archive=args.model_data), file=sys.stderr, flush=True)
        try:
            endpoint.start(timeout=args.timeout)
        except ServeError:
            keep_work_dir = keep_work_dir or endpoint.log_path.is_file()  # the error points into its log
            raise
        _warn_if_at_chance(work_dir / "ml" / "model")
        announce = f"serving {endpoint.url}/invocations (work dir {work_dir}); Ctrl-C to stop"
        return Outcome(status=serve_until_interrupted(endpoint, announce))
    finally:
        if not keep_work_dir:
            shutil.rmtree(work_dir, ignore_errors=True)
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(lambda: serve_command(argv))
