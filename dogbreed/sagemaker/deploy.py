"""Small SageMaker deployment helpers for the notebook (SageMaker Python SDK v2, imported lazily).

The archive from :mod:`dogbreed.serving.packaging` already holds ``code/inference.py`` and ``code/dogbreed``,
so the model is created without ``entry_point``/``source_dir`` and the SDK never repacks it.
"""

from __future__ import annotations

import re
from typing import Any

ENTRY_POINT_ENV = {"SAGEMAKER_PROGRAM": "inference.py"}  # the SDK sends "" when entry_point is unset
WORKERS_ENV = "SAGEMAKER_MODEL_SERVER_WORKERS"
DEFAULT_ENDPOINT_INSTANCE_TYPE = "ml.m5.large"
# Newest PyTorch inference container SageMaker SDK 2.257 knows; pass image_uri= for a newer one.
FRAMEWORK_VERSION = "2.6"
PY_VERSION = "py312"
# vCPUs by instance size, for the general-purpose/compute/memory families (ml.m5.large: 2, ml.c5.xlarge: 4).
_SIZE_VCPUS = {"medium": 2, "large": 2, "xlarge": 4, "2xlarge": 8}
_ACCELERATED_FAMILIES = re.compile(r"^ml\.(p\d|g\d|inf\d|trn\d)")
SMALL_CPU_WORKERS = 1


def model_server_workers(instance_type: str) -> int | None:
    """Workers for TorchServe on ``instance_type``; None leaves TorchServe's default (one per GPU or vCPU).

    On a CPU instance with at most 4 vCPUs one worker is the sensible count: torch already spreads each
    forward over every core (intra-op threads), and each extra worker holds another ResNet50 and competes
    for the same cores (TorchServe would start 2 on ml.m5.large, 4 on ml.c5.xlarge). GPU instances and
    bigger CPU instances keep the default.
    """
    if instance_type.startswith("local") or _ACCELERATED_FAMILIES.match(instance_type):
        return None
    size = instance_type.rsplit(".", 1)[-1]
    vcpus = _SIZE_VCPUS.get(size)
    return SMALL_CPU_WORKERS if vcpus is not None and vcpus <= 4 else None


def serving_environment(instance_type: str | None, env: dict[str, str] | None = None) -> dict[str, str]:
    """The container environment: ``SAGEMAKER_PROGRAM``, the worker count for ``instance_type`` (see
    :func:`model_server_workers`), then ``env`` (the caller's values win)."""
    environment = dict(ENTRY_POINT_ENV)
    workers = model_server_workers(instance_type) if instance_type else None
    if workers is not None:
        environment[WORKERS_ENV] = str(workers)
    environment.update(env or {})
    return environment


def build_pytorch_model(model_data: str, role: str, sagemaker_session: Any = None, *,
                        instance_type: str | None = DEFAULT_ENDPOINT_INSTANCE_TYPE,
                        framework_version: str = FRAMEWORK_VERSION, py_version: str = PY_VERSION,
                        image_uri: str | None = None, env: dict[str, str] | None = None, **kwargs: Any) -> Any:
    """A ``sagemaker.pytorch.PyTorchModel`` for an archive built by ``python -m entry_points.package``.

    ``instance_type`` is the one you will deploy on (it sizes ``SAGEMAKER_MODEL_SERVER_WORKERS``); ``image_uri``
    serves with your own or a newer inference container; ``env`` may add e.g. ``{"DOGBREED_TOP_K": "3"}``;
    extra keyword arguments (``enable_network_isolation=True``, ``vpc_config``, ...) go to ``PyTorchModel``.
    """
    from sagemaker.pytorch import PyTorchModel

    if "entry_point" in kwargs or "source_dir" in kwargs:
        raise TypeError("the archive already contains code/inference.py: do not pass entry_point or source_dir")
    if image_uri:
        kwargs["image_uri"] = image_uri
    return PyTorchModel(model_data=model_data, role=role, framework_version=framework_version,
                        py_version=py_version, sagemaker_session=sagemaker_session,
                        env=serving_environment(instance_type, env), **kwargs)


def make_predictor(endpoint_name: str, sagemaker_session: Any = None, content_type: str = "image/jpeg") -> Any:
    """A ``sagemaker.predictor.Predictor`` that sends raw image bytes and returns the parsed JSON top-k."""
    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.predictor import Predictor
    from sagemaker.serializers import IdentitySerializer

    return Predictor(endpoint_name, sagemaker_session=sagemaker_session,
                     serializer=IdentitySerializer(content_type), deserializer=JSONDeserializer())


def _missing(exc: Exception) -> bool:
    """True for SageMaker's "Could not find ..." answer (a resource that was never created or is gone)."""
    return "could not find" in str(exc).lower() or "does not exist" in str(exc).lower()


def delete_deployment(sagemaker_session: Any, endpoint_name: str | None, model_name: str | None = None) -> list[str]:
    """Delete the endpoint, its endpoint config (the SDK names it after the endpoint) and the model, each on its
    own, whatever exists; never raises, so it can run in a ``finally`` after a failed deploy or predict.

    Returns one line per resource: deleted, not found, or the error that kept it (check those by hand).
    """
    client = sagemaker_session.sagemaker_client
    steps = []
    if endpoint_name:
        steps += [(f"endpoint {endpoint_name}", lambda: client.delete_endpoint(EndpointName=endpoint_name)),
                  (f"endpoint config {endpoint_name}",
                   lambda: client.delete_endpoint_config(EndpointConfigName=endpoint_name))]
    if model_name:
        steps.append((f"model {model_name}", lambda: client.delete_model(ModelName=model_name)))
    report = []
    for what, step in steps:
        try:
            step()
            report.append(f"deleted {what}")
        except Exception as exc:  # noqa: BLE001 - cleanup goes on and reports every resource it could not delete
            report.append(f"{what}: not found" if _missing(exc) else f"NOT deleted {what}: {exc}")
    return report
