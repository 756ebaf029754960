from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="dogbreed",
    version="0.1.0",
    description="Fine-tune a ResNet50 to recognise dog breeds, locally and on AWS SageMaker.",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["dogbreed", "dogbreed.*", "entry_points", "entry_points.*"]),
    install_requires=[
        # torch 2.6-2.8 is what SageMaker's PyTorch containers run; newer works too.
        "torch>=2.6",
        "torchvision>=0.21",
        "pytorch-lightning>=2.4,<3",
        "torchmetrics>=1.4",
        "Pillow>=10",
        "numpy<2.3",  # smdebug saves tensors with ndarray.tostring(), removed in numpy 2.3
        "matplotlib>=3.7",
        "tqdm>=4.60",
        "psutil>=5.9",  # system utilisation in profiled runs
    ],
    extras_require={
        # Submitting jobs, tuning, deploying (SageMaker Python SDK v2 API).
        "sagemaker": ["sagemaker>=2.257,<3", "boto3"],
        # smdebug 1.0.34 needs protobuf 3.20.x and numpy<2.3, and imports requests/pandas/psutil undeclared.
        "debug": ["smdebug==1.0.34", "protobuf>=3.20,<=3.20.3", "requests", "pandas", "psutil"],
        "hpo": ["optuna>=3.6"],
        # SageMaker's real PyTorch serving stack; it imports pkg_resources, gone from setuptools>=81.
        "serve": ["sagemaker-pytorch-inference>=2.0.25", "torchserve==0.12.0", "setuptools<81", "psutil"],
        "dev": [
            "pytest>=8",
            "sagemaker>=2.257,<3", "boto3", "sagemaker-training==4.9.*",
            "smdebug==1.0.34", "protobuf>=3.20,<=3.20.3", "requests", "pandas", "psutil",
            "optuna>=3.6",
            "sagemaker-pytorch-inference>=2.0.25", "torchserve==0.12.0", "setuptools<81",
            "moto[server]>=5", "nbclient", "nbformat", "ipykernel",
        ],
    },
)
