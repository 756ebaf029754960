"""The SageMaker Model Registry (SDK v3 resources, imported lazily): one model package group per project, one
model package per registered model, waiting for a person's approval (``PendingManualApproval``).

The package names the serving image and the archive (``code/inference.py`` inside, as for an endpoint) and carries
the run's held-out measurements from ``metrics.json``: test accuracy (with its interval when the run measured
one), ECE after calibration and the abstention AUROC (test vs out-of-distribution images), as customer metadata
(visible in Studio's model registry) and as a model-quality statistics JSON on S3 (``model_metrics``). A
measurement the run did not make is written as ``not measured``, never as a number.
"""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any, Mapping

from dogbreed.core.errors import ConfigError
from dogbreed.sagemaker.deploy import DEFAULT_ENDPOINT_INSTANCE_TYPE, JSON_ACCEPT
from dogbreed.sagemaker.job_output import split_s3_uri

DEFAULT_GROUP = "dogbreed"
APPROVAL_STATUS = "PendingManualApproval"
NOT_MEASURED = "not measured"
CONTENT_TYPES = ["image/jpeg", "image/png", "application/x-image"]
METRICS_FILE = "metrics.json"


def _number(value: Any) -> str:
    return f"{float(value):.6f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else NOT_MEASURED


def registration_metrics(metrics: Mapping[str, Any]) -> dict[str, str]:
    """The package's customer metadata from a run's ``metrics.json``: every value a string (the API's type)."""
    test = metrics.get("test") or {}
    interval = test.get("acc_ci95")  # the run's 95% bootstrap interval
    calibration = (metrics.get("calibration") or {}).get("test") or {}
    abstention = metrics.get("abstention") or {}
    auroc = (abstention.get("auroc_test_vs_ood") or {}).get(abstention.get("score", ""))
    return {
        "test_acc": _number(test.get("acc")),
        "test_acc_interval": (f"[{float(interval[0]):.6f}, {float(interval[1]):.6f}]"
                              if isinstance(interval, (list, tuple)) and len(interval) == 2 else NOT_MEASURED),
        "test_ece": _number(calibration.get("ece_after")),
        "abstention_score": str(abstention["score"]) if "score" in abstention else NOT_MEASURED,
        "abstention_auroc": _number(auroc),
    }


def model_quality_statistics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The model-quality statistics JSON (SageMaker's ``multiclass_classification_metrics`` layout) for the
    measurements the run made; a measurement it did not make is left out."""
    found = registration_metrics(metrics)
    values = {"accuracy": found["test_acc"], "expected_calibration_error": found["test_ece"],
              "abstention_auroc": found["abstention_auroc"]}
    return {"version": 0.0, "multiclass_classification_metrics": {
        name: {"value": float(value), "standard_deviation": "NaN"}
        for name, value in values.items() if value != NOT_MEASURED}}


def read_metrics(s3_client: Any, output_tar_uri: str) -> dict[str, Any]:
    """``metrics.json`` from a training job's ``output.tar.gz`` (``<output path>/<job>/output/output.tar.gz``)."""
    bucket, key = split_s3_uri(output_tar_uri)
    blob = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        member = next((m for m in tar.getmembers() if m.name.removeprefix("./") == METRICS_FILE), None)
        handle = tar.extractfile(member) if member is not None else None
        if handle is None:
            raise ConfigError(f"{output_tar_uri} holds no {METRICS_FILE}: was it written by entry_points.train?")
        return dict(json.loads(handle.read()))


def ensure_group(group_name: str, session: Any = None, description: str = "dogbreed models") -> Any:
    """The model package group, created when it does not exist yet."""
    from sagemaker.core.resources import ModelPackageGroup

    try:
        return ModelPackageGroup.get(model_package_group_name=group_name, session=session)
    except Exception as exc:  # botocore's ClientError for a group that does not exist yet
        if "does not exist" not in str(exc).lower() and "could not find" not in str(exc).lower():
            raise
    return ModelPackageGroup.create(model_package_group_name=group_name,
                                    model_package_group_description=description, session=session)


def register_model(builder: Any, *, metrics: Mapping[str, Any], group_name: str = DEFAULT_GROUP,
                   metrics_s3_uri: str | None = None, instance_type: str = DEFAULT_ENDPOINT_INSTANCE_TYPE,
                   description: str = "") -> str:
    """Register the archive of ``builder`` (:func:`dogbreed.sagemaker.deploy.build_model_builder`: the archive
    with ``code/inference.py`` and its serving image) in ``group_name`` as ``PendingManualApproval``, with
    :func:`registration_metrics` as customer metadata. With ``metrics_s3_uri`` (an ``s3://`` key) the model-quality
    statistics JSON is uploaded there and attached as the package's ``model_metrics``. Returns the package ARN."""
    from sagemaker.core.shapes.shapes import MetricsSource, ModelMetrics, ModelQuality

    session = builder.sagemaker_session.boto_session
    ensure_group(group_name, session)
    extra: dict[str, Any] = {}
    if metrics_s3_uri:
        bucket, key = split_s3_uri(metrics_s3_uri)
        session.client("s3").put_object(Bucket=bucket, Key=key, ContentType=JSON_ACCEPT,
                                        Body=json.dumps(model_quality_statistics(metrics)).encode())
        extra["model_metrics"] = ModelMetrics(model_quality=ModelQuality(
            statistics=MetricsSource(content_type=JSON_ACCEPT, s3_uri=metrics_s3_uri)))
    arn = builder.register(
        model_package_group_name=group_name,
        content_types=CONTENT_TYPES,
        response_types=[JSON_ACCEPT],
        inference_instances=[instance_type],
        transform_instances=[instance_type],
        approval_status=APPROVAL_STATUS,
        description=description or "dogbreed ResNet50 (entry_points.package archive)",
        customer_metadata_properties=registration_metrics(metrics),
        **extra,
    )
    if not arn:
        raise ConfigError(f"registering in model package group {group_name!r} returned no package ARN")
    return str(arn)
