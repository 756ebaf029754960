"""Training: the LightningModule, one run (fit, test, export, reports), per-epoch checkpoints and resume,
the feature cache for head-only training, throughput settings and the printed metric lines.

Builds on ``config``, ``data``, ``core`` and ``serving.artifact``; knows nothing of SageMaker or of the
diagnostics: the caller passes the environment (``Runtime``) and any extra callbacks in.
"""
