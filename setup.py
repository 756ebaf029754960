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
    ],
    extras_require={
        "dev": ["pytest>=8"],
    },
)
