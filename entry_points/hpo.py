"""Hyperparameter tuning.

In a SageMaker tuning job the tuner runs this file once per trial with that trial's hyperparameters.
Locally, ``python -m entry_points.hpo --local --trials N --data-dir D`` runs the same search with Optuna.
"""

import sys

from dogbreed.cli import run_hpo

if __name__ == "__main__":
    sys.exit(run_hpo())
