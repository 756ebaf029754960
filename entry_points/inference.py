"""SageMaker PyTorch serving handlers. Packaged as ``code/inference.py`` next to ``code/dogbreed/``.

All logic lives in :mod:`dogbreed.serving.handlers`; this module only exposes the four functions the
inference toolkit looks up by name.
"""

from __future__ import annotations

from dogbreed.serving.handlers import input_fn, model_fn, output_fn, predict_fn

__all__ = ["model_fn", "input_fn", "predict_fn", "output_fn"]
