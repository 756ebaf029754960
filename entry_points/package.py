"""A SageMaker model archive: ``python -m entry_points.package --model-dir M --output model.tar.gz``."""

import sys

from dogbreed.cli.package import main

if __name__ == "__main__":
    sys.exit(main())
