"""A local SageMaker-style endpoint: ``python -m entry_points.serve --model-dir M [--port 8080]``."""

import sys

from dogbreed.cli.serve import main

if __name__ == "__main__":
    sys.exit(main())
