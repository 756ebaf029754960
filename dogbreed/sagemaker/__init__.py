"""SageMaker adapters: the training-container contract (``environment``: SM_* variables, channels,
torchrun), estimator/tuner builders for jobs, deployment builders, and Debugger configs for the SDK.

The SageMaker Python SDK is imported lazily, inside the functions that build SDK objects.
"""
