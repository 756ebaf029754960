"""``python -m entry_points.serve``: SageMaker's PyTorch serving stack (toolkit + TorchServe) on 127.0.0.1."""

from __future__ import annotations

import shutil
import signal
import tempfile
from pathlib import Path
from typing import Sequence

from dogbreed.cli.runner import Outcome, run_command
from dogbreed.config.parser import CommandParser

PROG = "python -m entry_points.serve"


def build_parser() -> CommandParser:
    parser = CommandParser(prog=PROG, allow_abbrev=False,
                           description="Serve a model locally with the SageMaker PyTorch serving stack.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model-dir", "--model_dir", type=Path, help="a model dir written by training")
    source.add_argument("--model-data", "--model_data", type=Path, help="a model.tar.gz from entry_points.package")
    parser.add_argument("--port", type=int, default=8080, help="HTTP port on 127.0.0.1 (default: 8080; "
                        "metrics and gRPC use port+2..port+4)")
    parser.add_argument("--workers", type=int, default=1, help="model worker processes (default: 1)")
    parser.add_argument("--work-dir", "--work_dir", type=Path, default=None,
                        help="where everything is written (default: a temp dir removed on exit)")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for the model to load")
    return parser


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def serve_command(argv: Sequence[str] | None) -> Outcome:
    args = build_parser().parse_args(argv)
    from dogbreed.serving.local_endpoint import LocalEndpoint, serve_until_interrupted

    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="dogbreed-serve-"))
    signal.signal(signal.SIGTERM, _interrupt)  # also while starting: never leave a server behind
    try:
        endpoint = LocalEndpoint(work_dir, model_dir=args.model_dir, model_data=args.model_data,
                                 port=args.port, workers=args.workers)
        endpoint.start(timeout=args.timeout)
        print(f"serving {endpoint.url}/invocations (work dir {work_dir}); Ctrl-C to stop", flush=True)
        return Outcome(status=serve_until_interrupted(endpoint))
    finally:
        if args.work_dir is None:
            shutil.rmtree(work_dir, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(lambda: serve_command(argv))
