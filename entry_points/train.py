"""Train, evaluate and export: ``python -m entry_points.train --help``. Local and SageMaker
(the training toolkit runs this file as ``python train.py --key value ...``)."""

import sys

from dogbreed.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
