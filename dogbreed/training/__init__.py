"""Training: one run as a checklist of phases (``run``), the LightningModule (``module``), its callbacks
(``callbacks``), where it runs (``runtime``) and how it is set up there (``setup``: workers, loader settings,
precision, preflight, loggers), signals (``guards``), checkpoints and resume (``checkpoints``), head-only training
on cached features (``head_training``), gradual fine-tuning (``gradual``), the test pass and the served model's
evaluation and calibration (``evaluation``), reports and plots (``reports``, ``plots``), the artifact (``export``)
and the printed metric lines (``metric_lines``).

Builds on ``config``, ``data``, ``core`` and ``serving.artifact``; knows nothing of SageMaker or of the
diagnostics: the caller passes the environment (``Runtime``) and any extra callbacks in. Only ``run`` holds the
whole ``TrainConfig``; the other modules take the section they need.
"""
