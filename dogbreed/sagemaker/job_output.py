"""A finished training job's output, brought to a local dir: its ``output.tar.gz`` unpacked, or the files under an
S3 prefix downloaded (boto3).

Where SageMaker puts a job's output: ``SM_OUTPUT_DATA_DIR`` (``/opt/ml/output/data``) goes into
``<s3_output_path>/<job-name>/output/output.tar.gz`` when the job ends, and a job with a TensorBoard output config
has its local path (``/opt/ml/output/tensorboard``) synced to ``<s3 path>/<job-name>/tensorboard-output/`` while it
runs. A profiled run writes its profile to that TensorBoard path and copies the report's inputs into
``<output-dir>/profile`` (:mod:`dogbreed.diagnostics.profiling`), so either place is enough for
``python -m entry_points.profile_report``.
"""

from __future__ import annotations

import logging
import tarfile
from pathlib import Path
from typing import Any, Callable

from dogbreed.core.errors import ConfigError

logger = logging.getLogger(__name__)

Wanted = Callable[[str], bool]


def is_archive(source: str) -> bool:
    return source.endswith((".tar.gz", ".tgz", ".tar"))


def unpack_output_archive(archive: Path, destination: Path) -> Path:
    """Unpack a job's ``output.tar.gz`` (or any tar) into ``destination``; members that would land outside it
    (absolute paths, ``..``, links) are refused by tarfile's ``data`` filter."""
    archive = Path(archive)
    if not archive.is_file():
        raise ConfigError(f"{archive}: no such file; pass the job's output.tar.gz (aws s3 cp "
                          "s3://<bucket>/<prefix>/<job-name>/output/output.tar.gz .)")
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(destination, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ConfigError(f"{archive}: not a readable tar archive ({exc}); pass the job's output.tar.gz") from exc
    return destination


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/key`` -> ``("bucket", "some/key")``, the key as written. The one check of an S3 URI's
    form, so every command words the refusal the same way."""
    if not uri.startswith("s3://") or not uri[5:].split("/", 1)[0]:
        raise ConfigError(f"{uri!r} is not an S3 URI: expected s3://bucket/prefix")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


def split_s3_prefix(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ``("bucket", "some/prefix/")``: a prefix always ends in ``/``, so
    ``s3://b/run1`` does not also list ``s3://b/run10/``."""
    bucket, prefix = split_s3_uri(uri)
    return bucket, (prefix.rstrip("/") + "/") if prefix.strip("/") else ""


def download_prefix(uri: str, destination: Path, *, wanted: Wanted = lambda key: True,
                    s3_client: Any = None) -> tuple[list[Path], list[str]]:
    """Download the objects under ``uri`` whose key ``wanted`` accepts into ``destination``, keeping their paths
    relative to the prefix. Returns the local files and the keys (relative) left behind; a missing bucket or no
    access is a :class:`ConfigError`."""
    import boto3  # type: ignore[import-untyped]
    from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

    bucket, prefix = split_s3_prefix(uri)
    client = s3_client or boto3.client("s3")
    files: list[Path] = []
    skipped: list[str] = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                key = item["Key"]
                relative = key[len(prefix):]
                # a key with "//" after the prefix gives an absolute relative path, which destination / relative
                # would turn into that path itself: left behind like a ".." key
                if (not relative or relative.endswith("/") or Path(relative).is_absolute()
                        or ".." in Path(relative).parts or not wanted(key)):
                    skipped.append(relative)
                    continue
                target = destination / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                client.download_file(bucket, key, str(target))
                files.append(target)
    except (ClientError, BotoCoreError) as exc:
        raise ConfigError(f"{uri}: cannot read it from S3 ({exc}); check the bucket, the prefix and your AWS "
                          "credentials") from exc
    logger.info("downloaded %d file(s) from %s", len(files), uri)
    return files, skipped
