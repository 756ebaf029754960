"""A finished job's profile read from S3 (the local moto server) and reported, with smdebug blocked: the
TensorBoard output prefix SageMaker syncs (``<s3_output_path>/<job-name>/tensorboard-output/``) and the job's
``output/output.tar.gz``."""

from __future__ import annotations

import re

import pytest

from dogbreed.core.errors import ConfigError
from dogbreed.sagemaker.job_output import download_prefix, split_s3_prefix
from tests.helpers.moto_aws import moto_endpoint
from tests.helpers.profile_files import BOTTLENECK, check_report, write_job_output_archive, write_profile_files
from tests.helpers.smdebug_policy import block_smdebug, smdebug_modules_loaded

BUCKET = "dogbreed-jobs"
JOB = "dogbreed-profiled-2026-12-06-23-00-00-000"


@pytest.fixture
def s3(monkeypatch):
    block_smdebug(monkeypatch)
    monkeypatch.setattr("dogbreed.cli.runner.configure_logging", lambda: None)
    with moto_endpoint() as url:
        import boto3

        # moto's state lives as long as the process (and its reset fails once other suites have used SageMaker
        # there): start from an empty bucket of our own
        client = boto3.client("s3", endpoint_url=url)
        if BUCKET in [b["Name"] for b in client.list_buckets().get("Buckets", [])]:
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
                for item in page.get("Contents", []):
                    client.delete_object(Bucket=BUCKET, Key=item["Key"])
        else:
            client.create_bucket(Bucket=BUCKET)
        yield client
    assert smdebug_modules_loaded() == []


def _upload_dir(client, local, prefix: str) -> None:
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        client.upload_file(str(path), BUCKET, f"{prefix}/{path.relative_to(local).as_posix()}")


def _report(source: str, out, capsys) -> tuple[int, str, str]:
    from entry_points.profile_report import main

    code = main([source, "--out", str(out)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_report_from_the_jobs_tensorboard_output_on_s3(s3, tmp_path, capsys):
    _upload_dir(s3, write_profile_files(tmp_path / "tensorboard", trace_bytes=4096), f"out/{JOB}/tensorboard-output")
    source = f"s3://{BUCKET}/out/{JOB}/tensorboard-output/"
    code, out, err = _report(source, tmp_path / "report", capsys)
    assert code == 0, err
    assert out.splitlines()[0] == f"Bottleneck: {BOTTLENECK}"
    report = (tmp_path / "report" / "profiler_report.md").read_text()
    check_report(report)
    assert f"in {source}." in report


def test_only_the_report_inputs_are_downloaded_not_the_traces(s3, tmp_path, caplog):
    _upload_dir(s3, write_profile_files(tmp_path / "tensorboard", trace_bytes=4096), f"out/{JOB}/tensorboard-output")
    with caplog.at_level("INFO", logger="dogbreed"):
        files, skipped = download_prefix(f"s3://{BUCKET}/out/{JOB}/tensorboard-output", tmp_path / "down",
                                         wanted=lambda key: not key.endswith(".pt.trace.json"))
    assert [r.getMessage() for r in caplog.records if r.name == "dogbreed.sagemaker.job_output"] == [
        f"downloaded 3 file(s) from s3://{BUCKET}/out/{JOB}/tensorboard-output"]
    assert sorted(f.name for f in files) == ["profile_run.json", "step_times.csv", "utilisation.csv"]
    assert skipped == ["fit-profile.1765000000.pt.trace.json"]
    downloaded, uploaded = tmp_path / "down" / "step_times.csv", tmp_path / "tensorboard" / "step_times.csv"
    assert downloaded.read_text() == uploaded.read_text()


def test_report_from_the_jobs_output_prefix_unpacks_output_tar_gz(s3, tmp_path, capsys):
    archive = write_job_output_archive(tmp_path / "output.tar.gz", tmp_path / "job")
    s3.upload_file(str(archive), BUCKET, f"out/{JOB}/output/output.tar.gz")
    code, _, err = _report(f"s3://{BUCKET}/out/{JOB}/output", tmp_path / "report", capsys)
    assert code == 0, err
    check_report((tmp_path / "report" / "profiler_report.md").read_text())


def test_an_s3_prefix_without_profile_data_says_so(s3, tmp_path, capsys):
    s3.put_object(Bucket=BUCKET, Key=f"out/{JOB}/tensorboard-output/events.out.tfevents.1.host", Body=b"x")
    source = f"s3://{BUCKET}/out/{JOB}/tensorboard-output/"
    code, _, err = _report(source, tmp_path / "report", capsys)
    assert code == 2
    assert err == (f"error: {source} holds no profile data (no profile_run.json; found events.out.tfevents.1.host): "
                   "run a profiled training first (python -m entry_points.profiled_train ..., or any training command "
                   "with --profiler pytorch) and pass its --profile-dir (default <output-dir>/profile), the job's "
                   "output.tar.gz, or its s3://.../<job-name>/tensorboard-output/ prefix\n")


def test_a_missing_bucket_is_a_one_line_error(s3, tmp_path, capsys):
    code, _, err = _report("s3://no-such-bucket/out/x/tensorboard-output/", tmp_path / "report", capsys)
    # in parentheses botocore's error: its code and operation are known, the service's description is not ours
    pattern = (r"error: s3://no-such-bucket/out/x/tensorboard-output/: cannot read it from S3 \(An error occurred "
               r"\(NoSuchBucket\) when calling the ListObjectsV2 operation: ([^()\n]+)\); check the bucket, the prefix "
               r"and your AWS credentials\n")
    assert code == 2 and re.fullmatch(pattern, err) and len(err.splitlines()) == 1, err


@pytest.mark.parametrize("uri, parts", [("s3://b/out/job/tensorboard-output", ("b", "out/job/tensorboard-output/")),
                                        ("s3://b/out/", ("b", "out/")), ("s3://b/out//", ("b", "out/")),
                                        ("s3://b/", ("b", "")), ("s3://b", ("b", ""))])
def test_s3_uris_split_into_bucket_and_prefix(uri, parts):
    assert split_s3_prefix(uri) == parts


@pytest.mark.parametrize("uri", ["s3://", "s3:///key", "https://bucket/key"])
def test_a_malformed_s3_uri_is_refused(uri):
    with pytest.raises(ConfigError) as refused:
        split_s3_prefix(uri)
    # worded as batch transform and the model registry word it: one check of an S3 URI's form
    assert str(refused.value) == f"{uri!r} is not an S3 URI: expected s3://bucket/prefix"


def test_the_download_filter_is_asked_with_each_objects_full_key(tmp_path):
    """``wanted`` sees the object's whole key (as the docstring says), files land at their path under the prefix,
    and a folder marker or a ``..`` key is left behind; a stand-in client, no S3."""
    keys = ["runs/r1/a.csv", "runs/r1/sub/b.json", "runs/r1/sub/", "runs/r1/../escape.txt", "runs/r1/skip.bin"]
    asked: list[str] = []
    fetched: list[tuple[str, str, str]] = []

    class Pages:
        def paginate(self, Bucket: str, Prefix: str) -> list[dict]:  # boto3's argument names
            assert (Bucket, Prefix) == ("bkt", "runs/r1/")
            return [{"Contents": [{"Key": key} for key in keys[:3]]}, {"Contents": [{"Key": k} for k in keys[3:]]}]

    class Client:
        def get_paginator(self, name: str) -> Pages:
            assert name == "list_objects_v2"
            return Pages()

        def download_file(self, bucket: str, key: str, target: str) -> None:
            fetched.append((bucket, key, target))

    def wanted(key: str) -> bool:
        asked.append(key)
        return not key.endswith(".bin")

    files, skipped = download_prefix("s3://bkt/runs/r1", tmp_path, wanted=wanted, s3_client=Client())
    assert asked == ["runs/r1/a.csv", "runs/r1/sub/b.json", "runs/r1/skip.bin"]
    assert fetched == [("bkt", "runs/r1/a.csv", str(tmp_path / "a.csv")),
                       ("bkt", "runs/r1/sub/b.json", str(tmp_path / "sub" / "b.json"))]
    assert files == [tmp_path / "a.csv", tmp_path / "sub" / "b.json"]
    assert skipped == ["sub/", "../escape.txt", "skip.bin"]


def test_a_key_with_a_slash_after_the_prefix_is_left_behind_not_written_outside_the_destination(tmp_path):
    """S3 keys may hold "//": under the prefix "runs/r1/" the key "runs/r1//<abs>/step_times.csv" is the relative
    path "/<abs>/step_times.csv", which ``destination / relative`` would turn into that absolute path itself (here
    a folder of tmp_path, so a regression writes nothing outside the test's own dir)."""
    outside = tmp_path / "outside" / "step_times.csv"
    keys = [f"runs/r1/{outside}", "runs/r1/ok/step_times.csv"]
    fetched: list[str] = []

    class Pages:
        def paginate(self, **names: str) -> list[dict]:
            return [{"Contents": [{"Key": key} for key in keys]}]

    class Client:
        def get_paginator(self, name: str) -> Pages:
            return Pages()

        def download_file(self, bucket: str, key: str, target: str) -> None:
            fetched.append(target)

    destination = tmp_path / "down"
    files, skipped = download_prefix("s3://bkt/runs/r1/", destination, s3_client=Client())
    assert fetched == [str(destination / "ok" / "step_times.csv")]
    assert files == [destination / "ok" / "step_times.csv"]
    assert skipped == [str(outside)]
    assert not (tmp_path / "outside").exists()  # not even its folder made
