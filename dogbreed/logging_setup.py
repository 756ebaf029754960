"""Console logging for the command-line entry points."""

from __future__ import annotations

import logging
import warnings


def configure_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    # Lightning's banners (accelerator lines, tips) and hints about worker counts are noise here.
    logging.getLogger("pytorch_lightning.utilities.rank_zero").setLevel(logging.WARNING)
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    for pattern in (r".*does not have many workers.*", r".*The number of training batches.*", r".*LeafSpec.*"):
        warnings.filterwarnings("ignore", message=pattern)
