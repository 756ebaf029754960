"""The torch-only core: what every other layer builds on, and all a serving container needs.

Owns the constants and exception types, image decoding (``images``), the one preprocessing definition
(``transforms``), the ResNet50 network with its backbone weights and fine-tuning split (``network``) and
atomic file writes (``fileio``). Imports nothing beyond torch, torchvision, Pillow, NumPy and the standard
library (an import-linter contract in ``make lint`` enforces it). This file imports nothing, so the
stdlib-only modules (``constants``, ``errors``) stay cheap for the config layer.
"""
