"""Training with smdebug and a profiler on: ``python -m entry_points.profiled_train --help``."""

import sys

from dogbreed.cli.profiled_train import main

if __name__ == "__main__":
    sys.exit(main())
