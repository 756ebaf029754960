"""Hyperparameter tuning: the search space (defined once, rendered for Optuna here and for SageMaker's
tuner in ``dogbreed.sagemaker.jobs``) and the local Optuna search."""
