"""Serving: the model artifact, the ``Predictor``, the SageMaker handlers and request decoding, the
``model.tar.gz`` packaging and the local endpoint (SageMaker's serving stack on 127.0.0.1).

Like the core, it never imports Lightning, torchmetrics, matplotlib or scipy: ``model.tar.gz`` carries
``dogbreed.core`` and this package only, and an endpoint starts with no pip install.
``from dogbreed.serving import Predictor`` works (loaded on first use).
"""

from __future__ import annotations

from typing import Any

__all__ = ["Answer", "BreedPrediction", "Predictor"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from dogbreed.serving import predictor

        return getattr(predictor, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
