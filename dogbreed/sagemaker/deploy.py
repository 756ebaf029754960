"""Real-time endpoints through SageMaker SDK v3 (imported lazily): ``ModelBuilder`` -> ``Model`` -> ``Endpoint``.

The archive from :mod:`dogbreed.serving.packaging` already holds ``code/inference.py`` and ``code/dogbreed``.
``ModelBuilder`` with a first-party ``image_uri`` and no ``model``/``inference_spec`` passes it through as it is
(no repacking, no SDK code in the container): the PyTorch 2.6 inference image's toolkit loads our
``model_fn``/``input_fn``/``predict_fn``/``output_fn`` (``SAGEMAKER_PROGRAM=inference.py``). That image is the
last with this contract and is past AWS's support date (2026-06-30): see docs/sagemaker.md for the options.
Calls go through ``Endpoint.invoke``; :func:`delete_deployment` removes the Endpoint, EndpointConfig and Model.
"""

from __future__ import annotations

import json
import re
from typing import Any

from dogbreed.core.errors import ConfigError

# code/inference.py inside the archive (the toolkit reads the code from SAGEMAKER_SUBMIT_DIRECTORY).
ENTRY_POINT_ENV = {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code"}
WORKERS_ENV = "SAGEMAKER_MODEL_SERVER_WORKERS"
DEFAULT_ENDPOINT_INSTANCE_TYPE = "ml.m5.large"
# The last PyTorch inference image (TorchServe + the inference toolkit); pass image_uri= for your own.
FRAMEWORK_VERSION = "2.6.0"
PY_VERSION = "py312"
# vCPUs by instance size, for the general-purpose/compute/memory families (ml.m5.large: 2, ml.c5.xlarge: 4).
_SIZE_VCPUS = {"medium": 2, "large": 2, "xlarge": 4, "2xlarge": 8}
_ACCELERATED_FAMILIES = re.compile(r"^ml\.(p\d|g\d|inf\d|trn\d)")
SMALL_CPU_WORKERS = 1
JSON_ACCEPT = "application/json"


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


def inference_image(region: str, instance_type: str = DEFAULT_ENDPOINT_INSTANCE_TYPE,
                    version: str = FRAMEWORK_VERSION) -> str:
    """The PyTorch inference image (``pytorch-inference:2.6.0-cpu-py312`` on a CPU instance)."""
    from sagemaker.core import image_uris

    return str(image_uris.retrieve(framework="pytorch", region=region, version=version, py_version=PY_VERSION,
                                   instance_type=instance_type, image_scope="inference"))


def build_model_builder(model_data: str, role: str, sagemaker_session: Any = None, *,
                        instance_type: str = DEFAULT_ENDPOINT_INSTANCE_TYPE, image_uri: str | None = None,
                        env: dict[str, str] | None = None, **kwargs: Any) -> Any:
    """A v3 ``ModelBuilder`` serving an archive built by ``python -m entry_points.package`` unchanged.

    ``instance_type`` is the one you will deploy on (it sizes ``SAGEMAKER_MODEL_SERVER_WORKERS``); ``image_uri``
    serves with your own inference image (the default is :func:`inference_image` for the session's region);
    ``env`` may add e.g. ``{"DOGBREED_TOP_K": "3"}``; other keyword arguments go to ``ModelBuilder``.
    """
    from sagemaker.serve import ModelBuilder

    if not model_data.startswith("s3://"):
        raise ConfigError(f"model_data {model_data!r}: expected the s3:// URI of a model.tar.gz")
    if "source_code" in kwargs or "inference_spec" in kwargs or "model" in kwargs:
        raise TypeError("the archive already contains code/inference.py: do not pass source_code, "
                        "inference_spec or model")
    if image_uri is None:
        region = getattr(sagemaker_session, "boto_region_name", None)
        if not region:
            raise ConfigError("no AWS region: pass sagemaker_session (its region picks the image) or image_uri")
        image_uri = inference_image(region, instance_type)
    return ModelBuilder(image_uri=image_uri, s3_model_data_url=model_data, role_arn=role,
                       sagemaker_session=sagemaker_session, instance_type=instance_type,
                       env_vars=serving_environment(instance_type, env), **kwargs)


def invoke(endpoint: Any, body: bytes, content_type: str = "image/jpeg") -> Any:
    """One request through ``Endpoint.invoke``: raw image bytes in, the handler's parsed JSON out."""
    response = endpoint.invoke(body=body, content_type=content_type, accept=JSON_ACCEPT)
    payload = response.body.read() if hasattr(response.body, "read") else response.body
    return json.loads(payload)


def _missing(exc: Exception) -> bool:
    """True for SageMaker's "Could not find ..." answer (a resource that was never created or is gone)."""
    return "could not find" in str(exc).lower() or "does not exist" in str(exc).lower()


def _endpoint_config_name(endpoint_name: str, session: Any) -> str:
    """The endpoint's own config name (ModelBuilder names it after the model); the endpoint's name if it is gone."""
    from sagemaker.core.resources import Endpoint

    try:
        return str(Endpoint.get(endpoint_name=endpoint_name, session=session).endpoint_config_name)
    except Exception:  # noqa: BLE001 - an endpoint that is gone leaves the config to be found by its name
        return endpoint_name


def delete_deployment(sagemaker_session: Any, endpoint_name: str | None, model_name: str | None = None,
                      endpoint_config_name: str | None = None) -> list[str]:
    """Delete the Endpoint, its EndpointConfig and the Model, each on its own, whatever exists; never raises, so
    it can run in a ``finally`` after a failed deploy or invoke.

    Returns one line per resource: deleted, not found, or the error that kept it (check those by hand).
    """
    from sagemaker.core.resources import Endpoint, EndpointConfig, Model

    session = getattr(sagemaker_session, "boto_session", None)
    steps = []
    if endpoint_name:
        config_name = endpoint_config_name or _endpoint_config_name(endpoint_name, session)
        steps += [(f"endpoint {endpoint_name}",
                   lambda: Endpoint.get(endpoint_name=endpoint_name, session=session).delete()),
                  (f"endpoint config {config_name}",
                   lambda: EndpointConfig.get(endpoint_config_name=config_name, session=session).delete())]
    if model_name:
        steps.append((f"model {model_name}", lambda: Model.get(model_name=model_name, session=session).delete()))
    report = []
    for what, step in steps:
        try:
            step()
            report.append(f"deleted {what}")
        except Exception as exc:  # noqa: BLE001 - cleanup goes on and reports every resource it could not delete
            report.append(f"{what}: not found" if _missing(exc) else f"NOT deleted {what}: {exc}")
    return report
