"""The Model Registry calls without a server (the moto round trip is the slow test in test_registry.py): the
group is created only when it does not exist yet, and register() gets every field written out."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from dogbreed.core.errors import ConfigError
from dogbreed.sagemaker import registry


class FakeGroups:
    def __init__(self, error: Exception | None) -> None:
        self.error, self.calls = error, []

    def get(self, **kwargs):
        self.calls.append(("get", kwargs))
        if self.error:
            raise self.error
        return "existing"

    def create(self, **kwargs):
        self.calls.append(("create", kwargs))
        return "created"


@pytest.fixture
def groups(monkeypatch):
    import sagemaker.core.resources as resources

    def install(error):
        fake = FakeGroups(error)
        monkeypatch.setattr(resources, "ModelPackageGroup", fake)
        return fake
    return install


@pytest.mark.parametrize("error, result", [
    (None, "existing"),
    (Exception("An error occurred (ValidationException): Model Package Group dogs does not exist."), "created"),
    (Exception("Could not find model package group 'dogs'"), "created"),
])
def test_the_group_is_created_only_when_it_does_not_exist(groups, error, result):
    fake = groups(error)
    assert registry.ensure_group("dogs", session="S", description="d") == result
    expected = [("get", {"model_package_group_name": "dogs", "session": "S"})]
    if result == "created":
        expected.append(("create", {"model_package_group_name": "dogs", "model_package_group_description": "d",
                                    "session": "S"}))
    assert fake.calls == expected


def test_any_other_error_is_raised_and_nothing_created(groups):
    denied = PermissionError("AccessDeniedException: not authorized to perform DescribeModelPackageGroup")
    fake = groups(denied)
    with pytest.raises(PermissionError) as raised:
        registry.ensure_group("dogs", session="S")
    assert raised.value is denied  # the very error, not one wrapping it
    assert str(raised.value) == "AccessDeniedException: not authorized to perform DescribeModelPackageGroup"
    assert [name for name, _ in fake.calls] == ["get"]


class FakeBuilder:
    def __init__(self, arn) -> None:
        self.arn, self.kwargs = arn, None
        self.sagemaker_session = SimpleNamespace(boto_session="boto")

    def register(self, **kwargs):
        self.kwargs = kwargs
        return self.arn


def test_register_passes_every_field_and_returns_the_arn(monkeypatch):
    seen = []
    monkeypatch.setattr(registry, "ensure_group", lambda name, session: seen.append((name, session)))
    builder = FakeBuilder("arn:aws:sagemaker:us-east-1:1:model-package/dogs/3")
    metrics = {"test": {"acc": 0.8125}}
    arn = registry.register_model(builder, metrics=metrics, group_name="dogs", instance_type="ml.c7i.xlarge")
    assert arn == "arn:aws:sagemaker:us-east-1:1:model-package/dogs/3" and seen == [("dogs", "boto")]
    assert builder.kwargs == {
        "model_package_group_name": "dogs",
        "content_types": ["image/jpeg", "image/png", "application/x-image"],
        "response_types": ["application/json"],
        "inference_instances": ["ml.c7i.xlarge"],
        "transform_instances": ["ml.c7i.xlarge"],
        "approval_status": "PendingManualApproval",
        "description": "dogbreed ResNet50 (entry_points.package archive)",
        "customer_metadata_properties": registry.registration_metrics(metrics),
    }
    registry.register_model(builder, metrics=metrics, description="breeds v2")
    assert builder.kwargs["description"] == "breeds v2" and builder.kwargs["model_package_group_name"] == "dogbreed"


def test_a_registration_without_an_arn_is_an_error(monkeypatch):
    monkeypatch.setattr(registry, "ensure_group", lambda name, session: None)
    with pytest.raises(ConfigError) as caught:
        registry.register_model(FakeBuilder(None), metrics={}, group_name="dogs")
    assert str(caught.value) == "registering in model package group 'dogs' returned no package ARN"


def _tar(members: dict[str, bytes | None]) -> bytes:
    """A gzipped tar; a member whose body is None is a directory (tar has no data for it)."""
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, body in members.items():
            info = tarfile.TarInfo(name)
            if body is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(body)
                tar.addfile(info, io.BytesIO(body))
    return buffer.getvalue()


@pytest.mark.parametrize("members", [{"./metrics.json": b'{"test": {"acc": 0.5}}'},
                                     {"metrics.json": b'{"test": {"acc": 0.5}}', "other.txt": b"x"}])
def test_metrics_are_read_from_the_jobs_output_archive(members):
    s3 = SimpleNamespace(get_object=lambda Bucket, Key: {"Body": SimpleNamespace(read=lambda: _tar(members))})
    assert registry.read_metrics(s3, "s3://b/jobs/j1/output/output.tar.gz") == {"test": {"acc": 0.5}}


@pytest.mark.parametrize("members", [{"other.txt": b"x"}, {"metrics.json": None},  # absent, or not a file
                                     {".metrics.json": b'{"a": 1}'}, {"../metrics.json": b'{"a": 1}'},
                                     {"reports/metrics.json": b'{"a": 1}'}])  # another file, outside, elsewhere
def test_an_output_archive_without_metrics_is_refused(members):
    s3 = SimpleNamespace(get_object=lambda Bucket, Key: {"Body": SimpleNamespace(read=lambda: _tar(members))})
    with pytest.raises(ConfigError) as refused:
        registry.read_metrics(s3, "s3://b/jobs/j2/output/output.tar.gz")
    assert str(refused.value) == ("s3://b/jobs/j2/output/output.tar.gz holds no metrics.json: was it written by "
                                  "entry_points.train?")
