"""Explanations of predictions: Grad-CAM heat maps (Captum's ``LayerGradCam`` on the last ResNet stage) drawn
over the input image, for ``predict --explain`` and the notebook.

Built on ``serving`` (the Predictor and the artifact); never imported by serving or core, so Captum and
matplotlib stay out of an endpoint (``pip install -e '.[explain]'`` provides Captum).
"""
