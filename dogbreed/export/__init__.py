"""Portable exports of a model dir: ONNX (``python -m entry_points.export``) with the preprocessing, class names,
temperature and abstention rule in its metadata, checked against the PyTorch model in onnxruntime.

Built on ``serving`` (the artifact and the Predictor); onnx and onnxruntime come from the ``export`` extra and
never reach a serving container.
"""
