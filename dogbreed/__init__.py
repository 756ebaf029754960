"""dogbreed: fine-tune a ResNet50 to recognise dog breeds, locally and on SageMaker."""

__version__ = "0.1.0"
