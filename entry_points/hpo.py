"""Hyperparameter tuning: one trial in a SageMaker tuning job; ``--local`` runs an Optuna search here."""

import sys

from dogbreed.cli.hpo import main

if __name__ == "__main__":
    sys.exit(main())
