"""Small SageMaker deployment helpers for the notebook (SageMaker Python SDK v2, imported lazily).

The archive from :mod:`dogbreed.packaging` already holds ``code/inference.py`` and ``code/dogbreed``,
so the model is created without ``entry_point``/``source_dir`` and the SDK never repacks it.
"""

from __future__ import annotations

from typing import Any

ENTRY_POINT_ENV = {"SAGEMAKER_PROGRAM": "inference.py"}  # the SDK sends "" when entry_point is unset


def build_pytorch_model(model_data: str, role: str, sagemaker_session: Any = None, *,
                        framework_version: str = "2.6", py_version: str = "py312",
                        env: dict[str, str] | None = None, **kwargs: Any) -> Any:
    """A ``sagemaker.pytorch.PyTorchModel`` for an archive built by ``python -m entry_points.package``.

    ``env`` may add e.g. ``{"DOGBREED_TOP_K": "3"}``; extra keyword arguments go to ``PyTorchModel``.
    """
    from sagemaker.pytorch import PyTorchModel

    if "entry_point" in kwargs or "source_dir" in kwargs:
        raise TypeError("the archive already contains code/inference.py: do not pass entry_point or source_dir")
    return PyTorchModel(model_data=model_data, role=role, framework_version=framework_version,
                        py_version=py_version, sagemaker_session=sagemaker_session,
                        env={**ENTRY_POINT_ENV, **(env or {})}, **kwargs)


def make_predictor(endpoint_name: str, sagemaker_session: Any = None, content_type: str = "image/jpeg") -> Any:
    """A ``sagemaker.predictor.Predictor`` that sends raw image bytes and returns the parsed JSON top-k."""
    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.predictor import Predictor
    from sagemaker.serializers import IdentitySerializer

    return Predictor(endpoint_name, sagemaker_session=sagemaker_session,
                     serializer=IdentitySerializer(content_type), deserializer=JSONDeserializer())
