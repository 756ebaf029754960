"""Fixtures shared across the test folders: tiny generated ImageFolder trees, a trained model dir shared by the
slow tests, a random-weights model dir, an offline SageMaker session. Plain helpers live in ``tests/helpers/``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")

from tests.helpers.builders import fast_config, write_tree


@pytest.fixture
def tiny_tree(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "data", {"train": 4, "valid": 2, "test": 2})


@pytest.fixture(scope="session")
def learnable_tree(tmp_path_factory) -> Path:
    return write_tree(tmp_path_factory.mktemp("learnable") / "data", {"train": 24, "valid": 8, "test": 8}, seed=1)


@pytest.fixture(scope="session")
def trained(tmp_path_factory, learnable_tree):
    """One short real training run, shared by the artifact, predict and CLI tests."""
    from dogbreed.training.run import train

    out = tmp_path_factory.mktemp("trained")
    # 6 epochs, not 4: after 4 the test accuracy ranged 0.63-1.0 over seeds (main included), so a 1e-4 change in
    # preprocessing could fail test_short_training_learns_fake_data; by epoch 5-6 validation has converged.
    config = fast_config(out, learnable_tree, epochs=6, image_size=48)
    result = train(config)
    return config, result


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A servable model dir in about a second: a randomly initialised ResNet50 for the three fixture breeds at
    32 px. For tests of request handling, packaging and loading, where accuracy does not matter."""
    import torch

    from dogbreed.core.network import build_resnet50
    from dogbreed.core.transforms import Preprocessing
    from dogbreed.serving.artifact import ModelConfig, save_artifact

    torch.manual_seed(0)
    model_dir = tmp_path_factory.mktemp("tiny_model") / "model"
    config = ModelConfig(class_names=["Affenpinscher", "Afghan hound", "Airedale terrier"],
                         preprocessing=Preprocessing(image_size=32))
    return save_artifact(model_dir, build_resnet50(3).eval(), config)


@pytest.fixture
def offline_session(monkeypatch):
    """A SageMaker SDK v3 session that never reaches AWS, for the builders: fake credentials, a fixed default
    bucket, no IAM role validation (``SAGEMAKER_VALIDATE_ROLE=false``: callers pass a full role ARN)."""
    import boto3

    monkeypatch.setenv("SAGEMAKER_VALIDATE_ROLE", "false")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    from sagemaker.core.helper.session_helper import Session

    return Session(boto_session=boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                              region_name="us-east-1"), default_bucket="example-bucket")


def pytest_collection_modifyitems(config, items) -> None:
    """``gpu``-marked tests run where CUDA is present and are skipped without it (the only accepted skip)."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (gpu marker)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
