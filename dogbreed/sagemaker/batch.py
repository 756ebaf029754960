"""Batch Transform: the endpoint's handler over every image under an ``s3://`` prefix, no endpoint to pay for.

A transform job sends each S3 object under the input prefix to the same ``code/inference.py`` handler as one
request (``SingleRecord``, ``Content-Type: application/x-image``: the format is read from the bytes) and writes
the answer to ``<output path>/<the object's path under the prefix>.out``. :func:`batch_records` turns those
objects into what ``python -m entry_points.predict --jsonl`` writes for a directory of images: one JSON object per
image, ``{"image": <S3 key>, "predictions": [...]}`` (the handler's answer passed through: a dict answer's fields
are kept as they are), or ``{"image": <S3 key>, "error": "..."}``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Mapping

from dogbreed.sagemaker.deploy import DEFAULT_ENDPOINT_INSTANCE_TYPE, JSON_ACCEPT, serving_environment
from dogbreed.sagemaker.job_output import split_s3_uri

OUTPUT_SUFFIX = ".out"
IMAGE_CONTENT_TYPE = "application/x-image"
MAX_PAYLOAD_MB = 6  # the handler refuses bodies over DOGBREED_MAX_PAYLOAD_BYTES (6 MiB) anyway
MISSING_OUTPUT = ("no output object: the transform job did not process this image (a failed record fails the job: "
                  "see its CloudWatch logs)")


def build_transformer(model_name: str, *, output_path: str, sagemaker_session: Any = None,
                      instance_type: str = DEFAULT_ENDPOINT_INSTANCE_TYPE, instance_count: int = 1,
                      env: dict[str, str] | None = None, **kwargs: Any) -> Any:
    """A v3 ``Transformer`` (``sagemaker.core.transformer``) for a SageMaker Model built by
    :func:`dogbreed.sagemaker.deploy.build_model_builder` (``.build()``): one image per request, JSON answers, one
    ``.out`` object per image under ``output_path``.

    The worker count follows ``instance_type`` as for an endpoint; other keyword arguments (``max_concurrent_
    transforms``, ``volume_kms_key``, ``tags``...) go to ``Transformer``.
    """
    from sagemaker.core.transformer import Transformer

    split_s3_uri(output_path)
    return Transformer(model_name=model_name, instance_count=instance_count, instance_type=instance_type,
                       strategy="SingleRecord", assemble_with="None", output_path=output_path, accept=JSON_ACCEPT,
                       max_payload=MAX_PAYLOAD_MB, env=serving_environment(instance_type, env),
                       sagemaker_session=sagemaker_session, **kwargs)


def transform_arguments(input_uri: str) -> dict[str, Any]:
    """Keyword arguments of ``Transformer.transform`` for every image under ``input_uri`` (an S3 prefix)."""
    split_s3_uri(input_uri)
    return {"data": input_uri, "data_type": "S3Prefix", "content_type": IMAGE_CONTENT_TYPE, "split_type": "None"}


def _relative(key: str, prefix: str) -> str:
    return key[len(prefix):].lstrip("/") if prefix and key.startswith(prefix) else key


def _record(key: str, body: bytes | None) -> dict[str, Any]:
    if body is None:
        return {"image": key, "error": MISSING_OUTPUT}
    try:
        answer = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        return {"image": key, "error": f"the handler's answer is not JSON: {body[:200]!r}"}
    if isinstance(answer, list):
        return {"image": key, "predictions": answer}
    if isinstance(answer, dict):
        if "code" in answer and "message" in answer and "predictions" not in answer:  # the handler's error format
            return {"image": key, "error": str(answer["message"])}
        return {"image": key, **{k: v for k, v in answer.items() if k != "image"}}
    return {"image": key, "error": f"unexpected answer from the handler: {answer!r}"[:300]}


def batch_records(input_keys: Iterable[str], outputs: Mapping[str, bytes], *, input_prefix: str = "",
                  output_prefix: str = "") -> list[dict[str, Any]]:
    """One record per input image, in input-key order. Each output key ``<output_prefix>/.../<path>.out`` is matched
    to the input whose path under ``input_prefix`` it ends with (the longest match wins), so it does not matter
    whether the job repeats the input prefix's last folder in the output path."""
    by_relative = {}
    for out_key, body in outputs.items():
        if out_key.endswith(OUTPUT_SUFFIX):
            by_relative[_relative(out_key, output_prefix)[: -len(OUTPUT_SUFFIX)]] = body
    records = []
    for key in sorted(input_keys):
        relative = _relative(key, input_prefix)
        matches = [r for r in by_relative if r == relative or r.endswith("/" + relative)]
        records.append(_record(key, by_relative[min(matches, key=len)] if matches else None))
    return records


def list_keys(s3_client: Any, uri: str) -> list[str]:
    """Every object key under an S3 prefix (paginated)."""
    bucket, prefix = split_s3_uri(uri)
    keys: list[str] = []
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [item["Key"] for item in page.get("Contents", []) if not item["Key"].endswith("/")]
    return keys


def read_batch_output(s3_client: Any, input_uri: str, output_uri: str) -> list[dict[str, Any]]:
    """The transform job's ``.out`` objects under ``output_uri`` as :func:`batch_records` for ``input_uri``."""
    out_bucket, out_prefix = split_s3_uri(output_uri)
    outputs = {key: s3_client.get_object(Bucket=out_bucket, Key=key)["Body"].read()
               for key in list_keys(s3_client, output_uri) if key.endswith(OUTPUT_SUFFIX)}
    _, in_prefix = split_s3_uri(input_uri)
    return batch_records(list_keys(s3_client, input_uri), outputs, input_prefix=in_prefix, output_prefix=out_prefix)


def write_jsonl(records: Iterable[Mapping[str, Any]], path: Path | str) -> Path:
    """The records as JSON Lines (the ``predict --jsonl`` format)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path
