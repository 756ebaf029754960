"""A model dir from a checkpoint or a torchvision ResNet50: ``python -m entry_points.import_model --state-dict F
--classes C --model-dir M``."""

import sys

from dogbreed.cli.import_model import main

if __name__ == "__main__":
    sys.exit(main())
